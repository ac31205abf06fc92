"""Tests of dlrun.cli.progress: plain flushed lines for logs, and the --log-every switch."""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

import pytest

from dlrun.cli.progress import (
    NullReporter,
    PlainReporter,
    fmt_duration,
    fmt_logs,
    label_transformed_target,
    transformed_target_note,
)
from dlrun.engines.base import EpochEvent

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
