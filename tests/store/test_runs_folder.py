"""RunsFolder: a folder of runs (sweep, batch, search) as unit tests: its fingerprint, leftovers,
damaged status file, abandoned runs, how it ends, and its resume line (nothing trains)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import tiny_spec

from dlrun.errors import Interrupted
from dlrun.spec.schema import validate
from dlrun.store import layout, signals
from dlrun.store.fingerprint import FingerprintMismatch
from dlrun.store.lock import RunLock
from dlrun.store.run_folder import resume_command
from dlrun.store.runs_folder import RunsFolder

ARGV = ["dlrun", "search", "s.yaml", "--trials", "6", "--set", "training.epochs=20", "--executor", "local"]


def test_resuming_with_another_spec_is_refused_naming_the_field(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "search", "search")
    folder.check_spec(validate(tiny_spec(epochs=20)))  # a new folder: recorded
    assert (folder.path / layout.FINGERPRINT).exists()
    folder.check_spec(validate(tiny_spec(epochs=20, name="other", output_dir="x")))  # what cannot change results
    with pytest.raises(FingerprintMismatch, match=r"training\.epochs: 20 → 30"):
        folder.check_spec(validate(tiny_spec(epochs=30)))


def test_a_damaged_fingerprint_of_a_folder_of_runs_is_named_and_recorded_again(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "sweep", "sweep")
    folder.check_spec(validate(tiny_spec()))
    fp = folder.path / layout.FINGERPRINT
    fp.write_text(fp.read_text()[:20])
    notes: list[str] = []
    folder.check_spec(validate(tiny_spec()), notes.append)
    assert len(notes) == 1 and str(fp) in notes[0] and json.loads(fp.read_text())["spec"]


def test_temporary_files_are_cleared_everywhere_but_in_a_live_run(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "search", "search")
    dead = folder.path / "trials" / "trial_0000" / "plots"
    live = folder.path / "trials" / "trial_0001"
    for where in (folder.path, folder.path / "plots", dead, dead.parent / "parts", live / "plots"):
        where.mkdir(parents=True, exist_ok=True)
    (dead.parent / layout.LOCK).write_text("")  # a killed run's lock: free
    with RunLock(live):  # a run another live holder is writing keeps its files
        for where in (folder.path, folder.path / "plots", dead, dead.parent / "parts", live / "plots"):
            (where / ".a.png.x1.tmp").write_bytes(b"half")
        removed = folder.clear_temporaries()
    assert len(removed) == 4
    assert [p.relative_to(folder.path).as_posix() for p in folder.path.rglob("*.tmp")] == [
        "trials/trial_0001/plots/.a.png.x1.tmp"
    ]


def test_a_damaged_status_file_is_moved_aside_and_named(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "search", "search")
    folder.write_status(layout.SEARCH_STATE, {"status": "running"})
    path = folder.path / layout.SEARCH_STATE
    path.write_text('{"status": "runn')
    notes: list[str] = []
    assert folder.read_status(layout.SEARCH_STATE, notes.append) == {}
    assert not path.exists() and (folder.path / "search.json.corrupt").exists()
    assert str(path) in notes[0] and "rebuilt" in notes[0]


def test_ending_agrees_with_how_the_command_ends(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "search", "search")
    folder.write_status(layout.SEARCH_STATE, {"status": "running", "trials": 6})

    def status() -> str:
        return str(folder.read_status(layout.SEARCH_STATE)["status"])

    with folder.ending(layout.SEARCH_STATE, ARGV):
        pass
    assert status() == "finished" and folder.read_status(layout.SEARCH_STATE)["trials"] == 6
    try:
        with pytest.raises(Interrupted, match=r"--trials 6 --set training\.epochs=20 --executor local"):
            with folder.ending(layout.SEARCH_STATE, ARGV):
                signals._handler(signal.SIGTERM, None)  # SIGTERM while the outputs are written
    finally:
        signals.reset_stop()
    assert status() == "interrupted"
    with pytest.raises(OSError):
        with folder.ending(layout.SEARCH_STATE, ARGV):
            raise OSError(28, "No space left on device")
    assert status() == "failed"


def test_an_abandoned_run_is_marked_and_points_at_the_folder(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "search", "search")
    folder.write_status(layout.SEARCH_STATE, {"status": "running"})
    trial = folder.path / "trials" / "trial_0003"
    trial.mkdir(parents=True)
    (trial / layout.STATE).write_text(json.dumps({"status": "running", "command": "cv"}))
    folder.mark_abandoned(trial, "interrupted; asked again", ARGV)
    state = json.loads((trial / layout.STATE).read_text())
    assert state["status"] == "abandoned" and state["error"] == "interrupted; asked again"
    assert state["resume_command"] == (
        f"dlrun search s.yaml --trials 6 --set training.epochs=20 --executor local --out {folder.path} --resume"
    )


def test_a_run_inside_a_folder_of_runs_resumes_the_folder(tmp_path: Path) -> None:
    search = tmp_path / "search"
    trial = search / "trials" / "trial_0002"
    trial.mkdir(parents=True)
    (search / layout.SEARCH_STATE).write_text("{}")
    assert resume_command(ARGV, trial, "cv").endswith(f"--executor local --out {search} --resume")
    nested = tmp_path / "nested"
    (nested / "outer" / "r0_f1" / "trials" / "trial_0000").mkdir(parents=True)
    (nested / "outer" / "r0_f1" / layout.SEARCH_STATE).write_text("{}")
    inner = nested / "outer" / "r0_f1" / "trials" / "trial_0000"
    assert resume_command(ARGV, inner, "cv").endswith(f"--out {nested} --resume")
    # a run of its own is untouched
    assert resume_command(["dlrun", "cv", "c.yaml"], trial, "cv") == f"dlrun cv c.yaml --out {trial} --resume"


def test_the_resume_line_without_a_command_line_names_the_config(tmp_path: Path) -> None:
    folder = RunsFolder(tmp_path / "s", "search", "configs/x.yaml")
    assert folder.resume_command(None) == f"dlrun search configs/x.yaml --out {folder.path} --resume"
