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
