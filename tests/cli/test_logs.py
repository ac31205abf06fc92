"""The log-file reporter: few lines, each naming the finished folds (dlrun.cli.progress.LogReporter)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HAVE_SHARED_DATA, SHARED_DATA

from dlrun.cli.progress import LogReporter
from dlrun.engines.base import EpochEvent
from dlrun.reporting import finished_folds, step_text

ROOT = Path(__file__).resolve().parents[2]
# the offline datasets next to the repository, or where DLRUN_DATA_DIR points (a worktree elsewhere)
DATA_DIR = SHARED_DATA if HAVE_SHARED_DATA else Path(os.environ.get("DLRUN_DATA_DIR", "/nonexistent"))
HAVE_SONAR = (DATA_DIR / "sonar.csv").is_file()


@pytest.mark.parametrize(
    ("keys", "text"),
    [
        ([], "none"),
        ([(0, 0)], "repeat 1 fold 1"),
        ([(0, f) for f in range(10)] + [(1, 0), (1, 1)], "repeat 1 folds 1-10; repeat 2 folds 1-2"),
        ([(r, f) for r in range(3) for f in range(5)], "repeats 1-3 folds 1-5"),
        ([(0, 0), (1, 0), (2, 0), (4, 0)], "repeats 1-3, 5"),
        ([(0, 0), (0, 2), (0, 3)], "repeat 1 folds 1, 3-4"),
        ([(r, r % 2) for r in range(6)], "repeat 1 fold 1; repeat 2 fold 2; repeat 3 fold 1; repeat 4 fold 2; 2 more"),
    ],
)
def test_finished_folds(keys: list[tuple[int, int]], text: str) -> None:
    assert finished_folds(keys).startswith(text)


def test_step_text() -> None:
    text = step_text(3, 20, "trials", "trial 2, accuracy 0.86")
    assert text == "trials 3/20 done | best so far: trial 2, accuracy 0.86"
    assert step_text(1, 4, "points") == "points 1/4 done"


def _drive(reporter: LogReporter, repeats: int, folds: int, epochs: int) -> None:
    reporter.start("exp", repeats * folds, epochs)
    for r in range(repeats):
        for f in range(folds):
            for e in range(1, epochs + 1):
                reporter.epoch(EpochEvent(keys=((r, f),), epoch=e, epochs=epochs, logs={"loss": 0.5}))
            reporter.model_done((r, f), {"accuracy": 0.5 + f / 100}, 0.1)
    reporter.finish()


@pytest.mark.parametrize(("repeats", "folds", "epochs"), [(30, 10, 300), (1, 3, 5), (1, 1, 50)])
def test_at_most_one_line_per_tenth(repeats: int, folds: int, epochs: int) -> None:
    stream = io.StringIO()
    _drive(LogReporter(stream), repeats, folds, epochs)
    lines = stream.getvalue().splitlines()
    progress = [ln for ln in lines if "% | " in ln]
    assert 1 <= len(progress) <= 9
    assert len(lines) == len(progress) + 2  # the start and the end
    for line in progress:
        assert re.search(r"\d+/\d+ done: (none|repeats? \d)", line), line
        assert "eta " in line
    assert "training" in lines[0] and f"finished {repeats * folds} model(s)" in lines[-1]
    if repeats * folds > 1:
        assert "accuracy 0." in progress[-1] and "running mean" in progress[-1]


def test_steps_of_a_search_and_epochs_without_start() -> None:
    stream = io.StringIO()
    reporter = LogReporter(stream)
    reporter.epoch(EpochEvent(keys=((0, 0),), epoch=1, epochs=2, logs={}))  # a search's trial: no start
    reporter.step(2, 10, "trials", "trial 1, accuracy 0.8")
    assert stream.getvalue().splitlines()[0].endswith("trials 2/10 done | best so far: trial 1, accuracy 0.8")
    assert len(stream.getvalue().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SONAR, reason="needs the offline datasets (DLRUN_DATA_DIR)")
def test_sonar_30x10_cv_log_is_short(tmp_path: Path) -> None:
    """What a nohup log of `dlrun cv` on Sonar 30x10 holds: at most 40 lines, every progress line naming folds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLRUN_DATA_DIR": str(DATA_DIR)}
    cmd = [sys.executable, "-m", "dlrun", "cv", str(ROOT / "configs" / "sonar_baseline.yaml")]
    cmd += ["--set", "evaluation.mode=repeated_kfold", "--set", "evaluation.repeats=30"]
    cmd += ["--set", "training.epochs=2", "--out", str(tmp_path / "run")]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) <= 40, done.stdout
    progress = [ln for ln in lines if re.search(r"\| \d+% \|", ln)]
    assert progress, done.stdout
    for line in progress:
        assert re.search(r"\d+/300 done: (none|repeats? \d+(-\d+)? folds? )", line), line
    assert "finished 300 model(s)" in done.stdout and "repeats 1-30 folds 1-10" in done.stdout


def test_rich_bar_counts_trials() -> None:
    from rich.console import Console

    from dlrun.cli.progress import RichReporter

    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True, width=120))
    reporter.step(1, 3, "trials", "trial 0, accuracy 0.8")
    reporter.step(3, 3, "trials", "trial 2, accuracy 0.9")
    assert "trials 3/3" in stream.getvalue() and "best so far: trial 2" in stream.getvalue()
