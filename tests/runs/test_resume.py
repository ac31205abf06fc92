"""Crash safety: SIGKILL and resume, SIGTERM, the lock, and `status` on a live run.

These start real `python -m dlrun` processes and kill them mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from dlrun.errors import InputError
from dlrun.store import io as report
from dlrun.store import layout
from dlrun.store.checkpoint import decode_checkpoint
from dlrun.store.lock import RunLock

TIMING = ["seconds"]


def _spec(tmp_path: Path, name: str, **over: Any) -> Path:
    raw: dict[str, Any] = {
        "name": name,
        "seed": 7,
        "data": {"source": "make_classification", "params": {"n_samples": 120, "n_features": 6, "random_state": 0}},
        "model": {
            "layers": [
                {"Dense": {"units": 8, "activation": "relu"}},
                {"Dropout": {"rate": 0.1}},
                {"Dense": {"units": 1, "activation": "sigmoid"}},
            ]
        },
        "compile": {"optimizer": {"SGD": {"learning_rate": 0.05, "momentum": 0.9}}},
        "training": {"batch_size": 16, "epochs": 40},
        "evaluation": {"mode": "kfold", "folds": 5},
        "runtime": {"engine": "sequential"},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _dlrun(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dlrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for(pred: Any, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"process ended before the condition held (rc {proc.returncode}):\n{out}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the run to make progress")
        time.sleep(0.02)


def _scores(path: Path) -> pd.DataFrame:
    return pd.read_csv(path / report.SCORES).drop(columns=TIMING)


def _parts(path: Path) -> int:
    return report.count_saved_folds(path)


@pytest.mark.parametrize("engine", ["sequential", "stacked"])
def test_kill9_then_resume_matches_uninterrupted(tmp_path: Path, engine: str) -> None:
    # with its programs compiled (by the reference run) the stacked engine trains a 40-epoch fold in
    # about 10 ms: 1,000 epochs leave the kill a window between the first saved fold and the last
    epochs = 1000 if engine == "stacked" else 40
    spec = _spec(
        tmp_path, f"kill_{engine}", runtime__engine=engine, runtime__max_models_per_chunk=1, training__epochs=epochs
    )
    ref = tmp_path / "ref"
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", "cv", str(spec), "--out", str(ref)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    run = tmp_path / "killed"
    proc = _dlrun("cv", str(spec), "--out", str(run))
    _wait_for(lambda: 1 <= _parts(run) < 5, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = report.read_json(run / report.STATE)
    assert state["status"] == "running"  # killed: nobody could mark it
    assert not (run / report.SCORES).exists() or _parts(run) == 5
    kept = _parts(run)
    assert 1 <= kept < 5
    # a SIGKILL mid-write may leave a temporary file (never a half-written final one); resume deletes it

    resumed = subprocess.run(
        [sys.executable, "-m", "dlrun", "cv", str(spec), "--out", str(run), "--resume"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{kept} already done" in resumed.stdout
    assert not list(run.rglob("*.tmp")), "a temporary file survived the resume"
    pd.testing.assert_frame_equal(_scores(run), _scores(ref))
    hist_a = pd.read_csv(run / report.HISTORY)
    hist_b = pd.read_csv(ref / report.HISTORY)
    pd.testing.assert_frame_equal(hist_a, hist_b)
    assert report.read_json(run / report.STATE)["status"] == "finished"
    assert len(pd.read_csv(run / report.SCORES)) == 5  # no duplicated rows


def test_train_resumes_mid_training_from_checkpoint(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        "train_ckpt",
        evaluation={"mode": "split", "test_size": 0.25},
        training__epochs=60,
        training__checkpoint_every=5,
    )
    ref = tmp_path / "ref"
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(spec), "--out", str(ref)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    run = tmp_path / "killed"
    proc = _dlrun("train", str(spec), "--out", str(run))
    ckpt = layout.checkpoint_file(run)

    def saved_epoch() -> int:
        try:
            return decode_checkpoint(report.read_sealed(ckpt), ckpt)["epoch"]
        except (OSError, InputError):  # not there yet, or being replaced
            return 0

    _wait_for(lambda: saved_epoch() >= 10, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at = saved_epoch()
    assert 10 <= at < 60
    resumed = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(spec), "--out", str(run), "--resume"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    hist = pd.read_csv(run / report.HISTORY)
    assert list(hist["epoch"]) == list(range(1, 61))
    ref_hist = pd.read_csv(ref / report.HISTORY)
    pd.testing.assert_frame_equal(hist, ref_hist, rtol=1e-5, atol=1e-6)
    a = pd.read_csv(run / report.PREDICTIONS)
    b = pd.read_csv(ref / report.PREDICTIONS)
    pd.testing.assert_frame_equal(a, b, rtol=1e-4, atol=1e-5)
    assert not ckpt.exists()


def test_sigterm_marks_interrupted_and_says_how_to_resume(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "term", training__epochs=200)
    run = tmp_path / "run"
    proc = _dlrun("cv", str(spec), "--out", str(run))
    _wait_for(lambda: (run / report.STATE).exists() and (run / report.PROGRESS).exists(), proc)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "--resume" in out
    assert "Traceback" not in out
    assert report.read_json(run / report.STATE)["status"] == "interrupted"


def test_lock_refuses_a_second_process(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "locked")
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        res = subprocess.run(
            [sys.executable, "-m", "dlrun", "cv", str(spec), "--out", str(run), "--resume"],
            capture_output=True,
            text=True,
        )
    assert res.returncode == 2
    assert "in use by another dlrun process" in res.stderr
    assert "Traceback" not in res.stderr


def test_status_reads_a_running_job(tmp_path: Path) -> None:
    # long enough that the other four folds are still training when status looks (killed right after)
    spec = _spec(tmp_path, "live", training__epochs=600)
    root = tmp_path / "outputs"
    run = root / "live" / "r1"
    proc = _dlrun("cv", str(spec), "--out", str(run))
    try:
        _wait_for(lambda: _parts(run) >= 1, proc)
        res = subprocess.run([sys.executable, "-m", "dlrun", "status", str(root)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "running" in res.stdout
        assert "/5 models" in res.stdout
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    res = subprocess.run([sys.executable, "-m", "dlrun", "status", str(root)], capture_output=True, text=True)
    assert "dead" in res.stdout  # recorded running, but no live process holds the lock


def test_resuming_a_finished_train_run_changes_nothing(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "done", evaluation={"mode": "split", "test_size": 0.25}, training__epochs=3)
    run = tmp_path / "run"
    first = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(spec), "--out", str(run)], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    before = (run / report.PREDICTIONS).read_bytes(), (run / report.SUMMARY_JSON).read_bytes()
    again = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(spec), "--out", str(run), "--resume"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert "finished earlier" in again.stdout
    assert ((run / report.PREDICTIONS).read_bytes(), (run / report.SUMMARY_JSON).read_bytes()) == before


@pytest.mark.parametrize("when", ["interpreter", "start-up"])
def test_sigterm_before_training_exits_130_and_marks_the_run(tmp_path: Path, when: str) -> None:
    spec = _spec(tmp_path, f"early_{when.replace('-', '_')}", training__epochs=200)
    run = tmp_path / "run"
    proc = _dlrun("cv", str(spec), "--out", str(run))
    if when == "start-up":  # the run folder is marked, the data and the backend are loading
        _wait_for(lambda: (run / report.STATE).exists(), proc)
    else:
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    if (run / report.STATE).exists():
        assert report.read_json(run / report.STATE)["status"] == "interrupted"
        assert f"dlrun cv {spec} --out {run} --resume" in out


def test_a_second_sweep_into_a_live_sweep_folder_is_refused_at_once(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "sw", training__epochs=30, evaluation={"mode": "split", "test_size": 0.25})
    folder = tmp_path / "sweep"
    first = _dlrun("sweep", str(spec), "--grid", "training.batch_size=8,16", "--out", str(folder))
    _wait_for(lambda: (folder / "sweep.json").exists(), first)
    t0 = time.monotonic()
    grid = ["--grid", "training.batch_size=8,16"]
    second = subprocess.run(
        [sys.executable, "-m", "dlrun", "sweep", str(spec), *grid, "--out", str(folder), "--resume"],
        capture_output=True,
        text=True,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert "in use by another dlrun process" in second.stderr
    assert time.monotonic() - t0 < 30
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    table = pd.read_csv(folder / "sweep.csv")
    assert list(table["status"]) == ["finished", "finished"]
    assert report.read_json(folder / "sweep.json")["status"] == "finished"
