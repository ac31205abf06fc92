"""Tests of dlrun.cli.progress: few lines for a log file (LogReporter), a line per epoch with --log-every
(PlainReporter), the trials count of the terminal bar."""

from __future__ import annotations

import io
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import HAVE_SHARED_DATA, SHARED_DATA

from dlrun.cli.progress import LogReporter, PlainReporter
from dlrun.engines.base import EpochEvent
from dlrun.reporting import (
    NullReporter,
    finished_folds,
    fmt_duration,
    fmt_logs,
    label_transformed_target,
    step_text,
    transformed_target_note,
)

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # everything but \t and \n


class FlushCounter(io.StringIO):
    """A stream that remembers how much text had been flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed_upto = 0
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        self.flushed_upto = len(self.getvalue())
        super().flush()


def _event(epoch: int, epochs: int, keys: Any = ((0, 0),), **logs: float) -> EpochEvent:
    return EpochEvent(keys=tuple(keys), epoch=epoch, epochs=epochs, logs=logs or {"loss": 0.5, "accuracy": 0.75})


def _drive(reporter: Any, epochs: int = 6, models: int = 1) -> None:
    reporter.start("exp", models, epochs)
    for m in range(models):
        for e in range(1, epochs + 1):
            reporter.epoch(_event(e, epochs, keys=((0, m),), loss=1.0 / e, accuracy=0.5 + e / 100))
        reporter.model_done((0, m), {"accuracy": 0.9}, 1.5)
    reporter.finish()


def _epoch_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "| epoch " in ln]


def test_plain_reporter_one_clean_line_per_epoch() -> None:
    stream = FlushCounter()
    _drive(PlainReporter(stream), epochs=5)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert not CONTROL.search(text)
    assert text.endswith("\n")
    lines = _epoch_lines(text)
    assert len(lines) == 5
    for i, line in enumerate(lines, start=1):
        # one model (a single split): no repeat or fold to name
        assert re.match(r"^\d\d:\d\d:\d\d exp \| epoch \d+/5 \| ", line), line
        assert f"epoch {i}/5" in line
        assert "loss=" in line and "accuracy=" in line
        assert re.search(r"elapsed \d", line), line
        assert re.search(r"eta (\d|estimating\u2026)", line), line
    assert "fold" not in text and "repeat" not in text
    assert "model done (1/1)" in text
    assert "exp: finished in" in text.splitlines()[-1]


def test_plain_reporter_flushes_every_line() -> None:
    stream = FlushCounter()
    reporter = PlainReporter(stream)
    reporter.start("exp", 1, 3)
    for e in range(1, 4):
        reporter.epoch(_event(e, 3))
        assert stream.flushed_upto == len(stream.getvalue()), "each line is flushed as it is written"
    assert stream.flushes >= 4


def test_eta_waits_for_two_timed_epochs_after_the_compiling_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlrun.cli.progress as progress

    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.start("exp", 1, 10)
    etas = []
    for epoch, seconds in ((1, 60.0), (2, 1.0), (3, 1.0), (4, 1.0)):  # epoch 1 compiles for a minute
        now[0] += seconds
        reporter.epoch(_event(epoch, 10))
        etas.append(_epoch_lines(stream.getvalue())[-1].rsplit("eta ", 1)[1])
    assert etas[:2] == ["estimating\u2026"] * 2
    # timed from the end of epoch 1: 1 s per epoch, not (62 s / 3 epochs) x 7 epochs left
    assert etas[2:] == ["7.0s", "6.0s"]


def test_models_of_a_cv_run_are_named_by_repeat_and_fold() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.start("exp", 3, 2)
    reporter.epoch(_event(1, 2, keys=((1, 2),)))
    reporter.model_done((1, 2), {"accuracy": 0.9}, 1.0)
    text = stream.getvalue()
    assert "| repeat 2 fold 3 | epoch 1/2 |" in text
    assert "| repeat 2 fold 3 done (1/3) |" in text


@pytest.mark.parametrize(
    ("transform", "task", "units"),
    [("minmax", "regression", "min-max-scaled quality"), ("none", "regression", ""), ("standard", "binary", "")],
)
def test_transformed_target_note(transform: str, task: str, units: str) -> None:
    assert transformed_target_note(transform, ["quality"], task) == units


def test_logs_on_a_transformed_target_say_so() -> None:
    stream = io.StringIO()
    reporter = label_transformed_target(PlainReporter(stream), "minmax", ["quality"], "regression")
    reporter.start("wine", 1, 2)
    reporter.epoch(_event(1, 2, loss=0.1, mae=0.09))
    text = stream.getvalue()
    assert "on the min-max-scaled quality (the summary reports the original units)" in text
    assert "loss[min-max-scaled]=0.1 mae[min-max-scaled]=0.09" in text
    plain = io.StringIO()
    assert isinstance(label_transformed_target(PlainReporter(plain), "none", ["quality"], "regression"), PlainReporter)


@pytest.mark.parametrize(
    ("log_every", "epochs", "expected"),
    [
        (1, 6, [1, 2, 3, 4, 5, 6]),
        (2, 6, [2, 4, 6]),
        (4, 6, [4, 6]),  # the last epoch always prints
        (10, 6, [6]),
        (0, 6, []),  # per model only
    ],
)
def test_log_every(log_every: int, epochs: int, expected: list[int]) -> None:
    stream = io.StringIO()
    _drive(PlainReporter(stream, log_every=log_every), epochs=epochs)
    shown = [int(re.search(r"epoch (\d+)/", ln).group(1)) for ln in _epoch_lines(stream.getvalue())]  # type: ignore[union-attr]
    assert shown == expected
    assert "done (1/1)" in stream.getvalue(), "a finished model always gets a line"


def test_log_every_zero_reports_each_model() -> None:
    stream = io.StringIO()
    _drive(PlainReporter(stream, log_every=0), epochs=3, models=3)
    text = stream.getvalue()
    assert _epoch_lines(text) == []
    assert [m.group(1) for m in re.finditer(r"done \((\d)/3\)", text)] == ["1", "2", "3"]


def test_stacked_events_name_the_model_count() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.start("exp", 4, 2)
    reporter.epoch(_event(1, 2, keys=((0, 0), (0, 1), (0, 2), (0, 3))))
    assert "| 4 models | epoch 1/2 |" in stream.getvalue()


def test_note_and_resume_start_lines() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.note("engine: sequential (reason)")
    reporter.start("exp", 10, 5, done_models=4)
    text = stream.getvalue()
    assert "engine: sequential (reason)" in text
    assert "training 10 model(s) x 5 epochs, 4 already done" in text


def test_null_reporter_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    _drive(NullReporter())
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("nan"), "?"), (-1, "?"), (0, "0.0s"), (12.34, "12.3s"), (185, "3m05s"), (3720, "1h02m")],
)
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_fmt_logs_limits_and_rounds() -> None:
    logs = {f"m{i}": 1.0 / 3 for i in range(8)}
    text = fmt_logs(logs, limit=3)
    assert text == "m0=0.3333 m1=0.3333 m2=0.3333"


def test_progress_of_interleaved_blocks_only_grows() -> None:
    """Two blocks of models reporting in turn (the stacked engine's two threads) never move progress back."""
    from dlrun.cli.progress import _Clock

    clock = _Clock()
    clock.start(total=40, epochs=300, done=0)
    blocks = [tuple((0, f) for f in range(b * 10, b * 10 + 10)) for b in range(4)]
    seen: list[float] = []
    for pair in (blocks[:2], blocks[2:]):
        for epoch in range(50, 301, 50):
            for keys in pair:
                clock.advance(keys, epoch)
                seen.append(clock.fraction())
        for keys in pair:
            for key in keys:
                clock.finish(key)
                seen.append(clock.fraction())
    assert all(b >= a for a, b in itertools.pairwise(seen))
    assert seen[11] == pytest.approx(0.5)  # both blocks of the first pair at epoch 300: half of all work
    assert seen[-1] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- log files (LogReporter)
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


def _drive_log(reporter: LogReporter, repeats: int, folds: int, epochs: int) -> None:
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
    _drive_log(LogReporter(stream), repeats, folds, epochs)
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
