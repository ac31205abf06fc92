"""`dlrun.store.io.read_summary`: one reader, one wording, for `dlrun.load` and `dlrun compare`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import dlrun
from dlrun.errors import InputError
from dlrun.evaluation import compare as cmp
from dlrun.store import io


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, r"must hold summary\.json \(a finished run\)"),
        ('{"mode": "kfold", "metr', "must be valid JSON"),
        ("[1, 2]", "must hold a JSON object; got list"),
        ('{"metrics": {}}', "must have a 'mode' key; it has metrics"),
        ('{"mode": "kfold"}', "must have a 'metrics' key; it has mode"),
        ('{"mode": "kfold", "metrics": [1]}', "'metrics' must be an object; got list"),
    ],
)
@pytest.mark.parametrize("reader", [io.read_summary, dlrun.load, cmp.load_run], ids=["io", "load", "compare"])
def test_every_reader_refuses_a_bad_summary_alike(
    tmp_path: Path, content: str | None, expect: str, reader: Callable[[Path], object]
) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(InputError, match=expect):
        reader(tmp_path)


def test_a_good_summary_is_returned_as_written(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"mode": "kfold", "metrics": {"accuracy": {}}, "name": "x"}')
    assert io.read_summary(tmp_path) == {"mode": "kfold", "metrics": {"accuracy": {}}, "name": "x"}


# ----------------------------------------------------------------------------- a run that failed at start
def _started_run(folder: Path, **state: object) -> Path:
    """A folder as a run leaves it when it fails before training: its start files and log."""
    folder.mkdir()
    io.write_json(folder / io.STATE, {"status": "failed", "finished_models": 0, "error": "bad width", **state})
    for name in (io.CONFIG, io.ENV, io.FINGERPRINT, io.FOLDS, io.PROGRESS):
        (folder / name).write_text("x\n")
    (folder / io.PARTS).mkdir()
    return folder


@pytest.mark.parametrize(
    ("change", "empty"),
    [
        (lambda f: None, True),
        (lambda f: (f / io.PARTS / "r0000_f0000.json").write_text("{}"), False),  # a saved fold
        (lambda f: (f / io.MODEL).write_text("m"), False),
        (lambda f: (f / io.SUMMARY_JSON).write_text("{}"), False),
        (lambda f: (f / "notes.txt").write_text("the user's"), False),  # a file dlrun did not write
        (lambda f: io.write_json(f / io.STATE, {"status": "interrupted", "finished_models": 0}), False),
        (lambda f: io.write_json(f / io.STATE, {"status": "failed", "finished_models": 2}), False),
        (lambda f: (f / io.STATE).write_text('{"status": "fai'), False),  # unreadable: not known empty
    ],
    ids=["start-files-only", "saved-fold", "model", "summary", "foreign-file", "interrupted", "models-done", "torn"],
)
def test_only_a_run_that_failed_before_training_anything_is_cleared(
    tmp_path: Path, change: Callable[[Path], object], empty: bool
) -> None:
    folder = _started_run(tmp_path / "run")
    change(folder)
    error = io.failed_before_training(folder)
    assert (error == "bad width") if empty else error is None
    if empty:
        io.clear_failed_run(folder)
        assert sorted(p.name for p in folder.iterdir()) == [io.PROGRESS]  # the log of the failed attempt stays
