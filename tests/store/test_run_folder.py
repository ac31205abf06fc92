"""RunFolder: the refusals (lock held, another config, a run already there), the reclaim of a failed
start, and every way a run can end, as unit tests (nothing trains)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec

from dlrun.errors import InputError, Interrupted, LockError, RunError
from dlrun.spec.schema import Spec, validate
from dlrun.store import layout
from dlrun.store.fingerprint import FingerprintMismatch
from dlrun.store.run_folder import RunFolder, check_command, resume_command
from dlrun.store.runs_folder import RunsFolder

DEVICE = {"device": "cpu"}


def _spec(epochs: int = 3, mode: str = "kfold") -> Spec:
    return validate(tiny_spec(mode=mode, epochs=epochs))


def _state(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / layout.STATE).read_text()))


def _events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (path / layout.PROGRESS).read_text().splitlines()]


def test_a_held_lock_refuses_a_second_opener(tmp_path: Path) -> None:
    spec = _spec()
    with RunFolder.open(spec, tmp_path / "run", resume=False):
        with pytest.raises(LockError, match="in use by another dlrun process"):
            RunFolder.open(spec, tmp_path / "run", resume=True)
    RunFolder.open(spec, tmp_path / "run", resume=True).unlock()  # released on leaving the block


def test_resuming_another_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.record_fingerprint(_spec(epochs=3), "d" * 64, "s")
    (folder.path / layout.STATE).write_text("{}")
    with pytest.raises(FingerprintMismatch, match=r"training\.epochs: 3 → 4"):
        RunFolder.open(_spec(epochs=4), folder.path, resume=True)
    with pytest.raises(FingerprintMismatch, match="the data"):
        folder.record_fingerprint(_spec(epochs=3), "e" * 64, "s")
    RunFolder.open(_spec(epochs=3), folder.path, resume=True).unlock()  # the same config goes on


def test_a_folder_with_a_run_needs_resume(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    (path / layout.STATE).write_text(json.dumps({"status": "finished", "finished_models": 3}))
    with pytest.raises(InputError, match="already holds a run"):
        RunFolder.open(_spec(), path, resume=False)
    with pytest.raises(InputError, match="--resume needs --out"):
        RunFolder.open(_spec(), None, resume=True)


def test_a_run_that_failed_before_training_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    (path / layout.STATE).write_text(json.dumps({"status": "failed", "finished_models": 0, "error": "bad data"}))
    (path / layout.CONFIG).write_text("name: old\n")
    (path / layout.PROGRESS).write_text('{"event": "failed"}\n')
    notes: list[str] = []
    with RunFolder.open(_spec(epochs=9), path, resume=False, note=notes.append) as folder:
        assert folder.read_state() is None and not (path / layout.CONFIG).exists()
    assert notes and "failed before training anything (bad data)" in notes[0]
    assert (path / layout.PROGRESS).exists()  # the failed attempt's log stays


def test_a_spec_for_the_other_command_is_refused_before_any_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dlrun train"):
        RunFolder.open(_spec(), tmp_path / "run", resume=False, command="train")
    assert not (tmp_path / "run").exists()
    check_command(_spec(mode="split"), "train")


def test_a_run_moves_from_starting_to_running_to_finished(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    spec = _spec()
    with folder.running(spec, "cv", ["dlrun", "cv", "c.yaml"]) as run:
        assert _state(folder.path)["phase"] == "starting"
        run.begin(3, DEVICE, {"python": "3"})
        assert _state(folder.path)["status"] == "running" and _state(folder.path)["total_models"] == 3
        assert (folder.path / layout.CONFIG).exists() and (folder.path / layout.ENV).exists()
        run.finish(3)
    state = _state(folder.path)
    assert state["status"] == "finished" and state["finished_models"] == 3
    assert state["resume_command"] == f"dlrun cv c.yaml --out {folder.path} --resume"
    assert _events(folder.path) == ["start", "finished"]


def test_a_failure_marks_the_run_failed_with_its_error(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    ended: list[bool] = []
    with pytest.raises(RunError), folder.running(_spec(), "cv", on_end=lambda: ended.append(True)) as run:
        run.begin(3, DEVICE, {})
        raise RunError("loss diverged\n at epoch 2")
    state = _state(folder.path)
    assert state["status"] == "failed" and state["error"] == "loss diverged at epoch 2"
    assert ended == [True] and _events(folder.path)[-1] == "failed"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Interrupted])
def test_a_stop_marks_the_run_interrupted_with_its_resume_command(tmp_path: Path, stop: type) -> None:
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(Interrupted, match=r"after 1/3 folds; resume with: dlrun cv c\.yaml") as info:
        with folder.running(_spec(), "cv", ["dlrun", "cv", "c.yaml"]) as run:
            run.begin(3, DEVICE, {})
            run.state["finished_models"] = 1
            raise stop()
    assert "--resume" in str(info.value)
    state = _state(folder.path)
    assert state["status"] == "interrupted" and state["error"] == "stopped by a signal"


def test_another_config_found_at_start_up_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.write_state({"status": "finished", "name": "theirs", "finished_models": 5})
    before = folder.read_state()
    with pytest.raises(FingerprintMismatch), folder.running(_spec(), "cv"):
        raise FingerprintMismatch("another config")
    after = folder.read_state()
    assert after is not None and before is not None
    assert {k: v for k, v in after.items() if k != "updated"} == {k: v for k, v in before.items() if k != "updated"}


def test_a_resumed_run_keeps_its_start_and_its_engine(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.write_state({"status": "interrupted", "started": "2020-01-01T00:00:00+00:00", "engine": "stacked"})
    with folder.running(_spec(), "cv") as run:
        assert run.previous_engine == "stacked" and run.state["resumed"] is True
        run.begin(3, DEVICE, {})
        run.finish(3)
    assert _state(folder.path)["started"] == "2020-01-01T00:00:00+00:00"


def test_a_folder_of_runs_reads_its_runs_and_names_its_resume_line(tmp_path: Path) -> None:
    runs = RunsFolder(tmp_path / "sweep", "sweep")
    point = runs.path / "lr_0.1"
    point.mkdir(parents=True)
    assert RunsFolder.run_status(point) is None
    (point / layout.STATE).write_text('{"status": "fini')  # truncated: an unfinished run
    assert RunsFolder.run_status(point) == "running" and RunsFolder.run_state(point) == {}
    runs.write_status(layout.SWEEP_STATE, {"status": "running"})
    assert runs.read_status(layout.SWEEP_STATE) == {"status": "running"}
    assert str(runs.interrupted(["dlrun", "sweep", "c.yaml"])) == (
        f"sweep interrupted; resume with: dlrun sweep c.yaml --out {runs.path} --resume"
    )
    assert resume_command(None, Path("d"), "batch") == "dlrun batch --out d --resume"
