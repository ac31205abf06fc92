"""The run lock: its holder clears what a killed holder left mid-write, and nothing else."""

from __future__ import annotations

from pathlib import Path

from dlrun.store import io as report
from dlrun.store.lock import RunLock


def test_lock_holder_deletes_a_killed_writers_temporary_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / report.PARTS).mkdir(parents=True)
    report.write_json(run / report.STATE, {"status": "running"})
    stale = [run / ".state.json.k2j3.tmp", run / report.PARTS / ".r0_f1.pkl.x8z.tmp"]
    for p in stale:
        p.write_text("half a file")
    nested = run / "point_000"  # a run of its own (a sweep point): its lock, its business
    nested.mkdir()
    (nested / report.LOCK).write_text("")
    theirs = nested / ".history.csv.q1.tmp"
    theirs.write_text("being written")

    with RunLock(run):
        assert not any(p.exists() for p in stale)
        assert theirs.exists()
        assert report.read_json(run / report.STATE) == {"status": "running"}
