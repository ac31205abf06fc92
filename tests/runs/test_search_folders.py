"""A search folder is as safe as a run folder: its fingerprint, its resume line, damaged files,
leftovers of a kill, abandoned trials, and a state that agrees with the exit code."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from conftest import run_main, write_spec
from test_search import search_spec

from dlrun.errors import Interrupted
from dlrun.report.runs_table import runs_rows, status_rows
from dlrun.runs.search import optimize
from dlrun.store import io as report
from dlrun.store import signals
from dlrun.store.index import find_runs

pytestmark = pytest.mark.xdist_group("search_folders")


def _interrupt_after_first_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search is stopped (Ctrl-C) once every trial of its first batch saved one fold."""
    real = optimize.train_trials

    def once(works: Any, folds: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(optimize, "train_trials", real)
        real(works, folds[:1], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(optimize, "train_trials", once)


def _hint(err: str) -> list[str]:
    """The arguments of the printed ``resume with: dlrun ...`` line."""
    line = err.split("resume with: ", 1)[1].strip().splitlines()[0]
    args = shlex.split(line)
    assert args[0] == "dlrun"
    return args[1:]


def _finished(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "trials.csv")
    cols = [c for c in table.columns if c not in ("trial", "seconds", "path", "error")]
    return table[table["status"] == "finished"][cols].reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dlrun.runs.search import run_search

    out = tmp_path_factory.mktemp("ref") / "search"
    run_search(search_spec(batch=2), out)
    return out


@pytest.fixture
def interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, list[str]]:
    """A search stopped mid-training by Ctrl-C: (its folder, the arguments of its resume line)."""
    cfg = write_spec(tmp_path / "s.yaml", search_spec())
    out = tmp_path / "search"
    _interrupt_after_first_fold(monkeypatch)
    code, _, err = run_main(["search", cfg, "--trials", "2", "--batch", "2", "--set", "seed=3", "--out", out], capsys)
    assert code == 130, err
    return out, _hint(err)


def test_the_resume_line_repeats_every_option_and_reproduces_the_search(
    interrupted: tuple[Path, list[str]], uninterrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, hint = interrupted
    assert hint[-3:] == ["--out", str(out), "--resume"]
    assert ["--trials", "2"] == hint[2:4] and "--batch" in hint and "seed=3" in hint
    code, stdout, err = run_main(hint, capsys)
    assert code == 0, err
    pd.testing.assert_frame_equal(_finished(out), _finished(uninterrupted), check_dtype=False)
    assert yaml.safe_load((out / "best_config.yaml").read_text()) == yaml.safe_load(
        (uninterrupted / "best_config.yaml").read_text()
    )
    # the re-asked trials are not counted twice in "the best of N"
    assert "the best of 2)" in stdout
    # listed as a search, finished, with its best trial's estimate
    found = find_runs(out.parent, folders=True)
    row = next(r for r in runs_rows(found, out.parent) if r["run"] == "search")
    assert row["command"] == "search" and row["status"] == "finished" and row["result"].startswith("accuracy ")
    # the interrupted trials' folders are marked abandoned, and point at the search, not at themselves
    state = json.loads((out / "trials" / "trial_0000" / report.STATE).read_text())
    assert state["status"] == "abandoned"
    assert state["resume_command"].split(" --out ")[1] == f"{out} --resume"


def test_a_changed_spec_is_refused_naming_the_field(
    interrupted: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, hint = interrupted
    code, _, err = run_main([*hint, "--set", "training.epochs=3"], capsys)
    assert code == 2 and "training.epochs: 2 → 3" in err
    assert not (out / "trials" / "trial_0002").exists()  # nothing trained


def test_a_damaged_part_is_named_and_not_carried_into_the_rerun(
    interrupted: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, hint = interrupted
    part = next((out / "trials" / "trial_0000" / report.PARTS).glob("r*_f*.json"))
    part.write_bytes(part.read_bytes()[:40])
    code, stdout, err = run_main(hint, capsys)
    assert code == 0, err
    assert f"{part} " in stdout + err and "moved to" in stdout + err
    rerun = [p for p in (out / "trials").iterdir() if p.name not in ("trial_0000", "trial_0001")]
    assert rerun and not any(p.name.endswith(".corrupt") for r in rerun for p in r.rglob("*"))


def test_leftover_temporary_files_are_cleared_everywhere_by_resume(
    interrupted: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, hint = interrupted
    # what a SIGKILL while plots, parts and tables were written leaves behind
    for where in ("trials/trial_0000/plots", "trials/trial_0001/parts", "plots", "trials", "."):
        (out / where).mkdir(parents=True, exist_ok=True)
        (out / where / ".learning_curve_loss.png.x1y2.tmp").write_bytes(b"half")
    code, _, err = run_main(hint, capsys)
    assert code == 0, err
    assert list(out.rglob("*.tmp")) == []


def test_a_killed_search_is_listed_by_status_and_runs(interrupted: tuple[Path, list[str]]) -> None:
    out, _ = interrupted
    runs = {r.path: r for r in find_runs(out.parent, folders=True)}
    assert out in runs and runs[out].state["command"] == "search"
    assert runs[out].status == "interrupted"
    row = next(r for r in status_rows(list(runs.values()), out.parent) if r["run"] == "search")
    assert row["progress"] == "0/2 trials"


def test_a_damaged_search_json_is_rebuilt_from_the_journal(
    interrupted: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, hint = interrupted
    state = out / "search.json"
    state.write_text(state.read_text()[:30])
    code, stdout, err = run_main(hint, capsys)
    assert code == 0, err
    assert f"{state} " in stdout + err and (out / "search.json.corrupt").exists()
    assert json.loads(state.read_text())["status"] == "finished"


def test_a_signal_while_the_outputs_are_written_ends_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrun.runs.search import run_search

    real = optimize.write_outputs

    def with_sigterm(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        signals._handler(signal.SIGTERM, None)  # the CLI's flag: SIGTERM arrived while plots were drawn
        return outcome

    monkeypatch.setattr(optimize, "write_outputs", with_sigterm)
    out = tmp_path / "search"
    try:
        with pytest.raises(Interrupted, match="resume with: dlrun search"):
            run_search(search_spec(trials=1), out)
    finally:
        signals.reset_stop()
    assert json.loads((out / "search.json").read_text())["status"] == "interrupted"

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(optimize, "write_outputs", full_disk)
    with pytest.raises(OSError):
        run_search(search_spec(trials=1), out)
    assert json.loads((out / "search.json").read_text())["status"] == "failed"
    monkeypatch.setattr(optimize, "write_outputs", real)  # the disk is freed: resumed to the end
    run_search(search_spec(trials=1), out)
    assert json.loads((out / "search.json").read_text())["status"] == "finished"


def test_a_nested_search_names_its_resume_line_and_refuses_another_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrun.runs.search import nested
    from dlrun.store.fingerprint import FingerprintMismatch

    def stopped(*args: Any, **kwargs: Any) -> Any:
        raise Interrupted("search interrupted")

    monkeypatch.setattr(nested, "run_search", stopped)
    raw = search_spec()
    raw["evaluation"]["outer"] = {"folds": 2}
    out = tmp_path / "nested"
    argv = ["dlrun", "search", "n.yaml", "--trials", "3", "--set", "training.epochs=2", "--out", str(out)]
    with pytest.raises(Interrupted) as info:
        nested.run_nested(raw, out, argv=argv, trials=3)
    assert str(info.value) == (
        "nested search interrupted in outer fold r0_f0; resume with: "
        f"dlrun search n.yaml --trials 3 --set training.epochs=2 --out {out} --resume"
    )
    raw["training"]["epochs"] = 3
    with pytest.raises(FingerprintMismatch, match=r"training\.epochs: 2 → 3"):
        nested.run_nested(raw, out, argv=argv, trials=3)
