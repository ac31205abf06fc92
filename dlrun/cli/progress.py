"""Progress reporting: a rich live view on a terminal, plain flushed lines otherwise.

Off a terminal the default is :class:`LogReporter` (a line per tenth of the work, naming the
finished folds); ``--log-every N`` asks for :class:`PlainReporter`'s line every N epochs.

The core calls a :class:`~dlrun.reporting.Reporter`; the CLI decides which one and owns the console.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from dlrun.engines.base import EpochEvent
from dlrun.reporting import (
    finished_folds,
    fmt_duration,
    fmt_eta,
    fmt_logs,
    step_text,
)

__all__ = ["LogReporter", "PlainReporter", "RichReporter"]


class _Clock:
    """Elapsed time and ETA from finished epochs of finished and running models.

    The first epoch of a run includes compiling the training step (seconds, against
    milliseconds for later epochs), so the ETA extrapolates only from the epochs after it,
    and only once two of them are timed.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.total = 1
        self.epochs = 1
        self.done_models = 0
        self.base_models = 0
        self.models_in_flight = 1
        self.epoch_now = 0
        # epochs reached by each model still training: the stacked engine trains blocks of models
        # on two threads, so events of different blocks interleave and one "current epoch" would
        # send the ETA back and forth
        self.in_flight: dict[tuple[int, int], int] = {}
        self.flight_work = 0  # sum of in_flight's epochs
        self.mark_time: float | None = None
        self.mark_work = 0.0
        self.timed_epochs = 0

    def start(self, total: int, epochs: int, done: int) -> None:
        self.t0 = time.monotonic()
        self.total = max(total, 1)
        self.epochs = max(epochs, 1)
        self.done_models = done
        self.base_models = done
        self.in_flight = {}
        self.flight_work = 0
        self.mark_time = None
        self.mark_work = 0.0
        self.timed_epochs = 0

    def fraction(self) -> float:
        # the in-flight sum is kept as events arrive: summing hundreds of stacked models on every
        # epoch event would cost the run time the log is meant to report
        work = self.done_models * self.epochs + self.flight_work
        return min(1.0, work / (self.total * self.epochs))

    def advance(self, keys: tuple[tuple[int, int], ...], epoch: int) -> None:
        """The models ``keys`` finished ``epoch`` (1-based)."""
        self.models_in_flight = len(keys)
        self.epoch_now = epoch
        for k in keys:
            before = self.in_flight.get(k, 0)
            if epoch > before:
                self.in_flight[k] = epoch
                self.flight_work += epoch - before
        self.tick()

    def finish(self, key: tuple[int, int]) -> None:
        """Model ``key`` is done (trained and scored)."""
        self.done_models += 1
        self.flight_work -= self.in_flight.pop(key, 0)
        self.epoch_now = 0

    def tick(self) -> None:
        """An epoch ended: the first one sets the mark the ETA is timed from."""
        if self.mark_time is None:
            self.mark_time = time.monotonic()
            self.mark_work = self.fraction()
        else:
            self.timed_epochs += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def eta(self) -> float | None:
        """Seconds left, or None until two epochs after the first have been timed."""
        if self.mark_time is None or self.timed_epochs < 2:
            return None
        frac = self.fraction() - self.mark_work
        if frac <= 0:
            return None
        return (time.monotonic() - self.mark_time) * (1.0 - self.fraction()) / frac


def _who(keys: tuple[tuple[int, int], ...], total: int) -> str:
    """``"repeat 2 fold 3"``, ``"10 models"``, or ``""`` for a run of one model (no folds to name)."""
    if len(keys) != 1:
        return f"{len(keys)} models"
    if total <= 1:
        return ""
    r, f = keys[0]
    return f"repeat {r + 1} fold {f + 1}"


class _Lines:
    """What both line reporters share: time-stamped, flushed lines without control characters."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.clock = _Clock()
        self.run = ""

    def _line(self, text: str) -> None:
        self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self._line(text)

    def _start_line(self, run: str, total_models: int, epochs: int, done_models: int) -> None:
        self.run = run
        self.clock.start(total_models, epochs, done_models)
        already = f", {done_models} already done" if done_models else ""
        self._line(f"{run}: training {total_models} model(s) x {epochs} epochs{already}")

    def step(self, done: int, total: int, unit: str, best: str = "") -> None:
        self._line(step_text(done, total, unit, best))


class PlainReporter(_Lines):
    """One flushed line per epoch (or every ``log_every`` epochs) with no control characters.

    Args:
        stream: Where lines go (stdout under nohup or a Makefile redirect).
        log_every: Print every N-th epoch (the last epoch always prints); 0 prints per model only.
    """

    def __init__(self, stream: TextIO, log_every: int = 1) -> None:
        super().__init__(stream)
        self.log_every = log_every

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self._start_line(run, total_models, epochs, done_models)

    def epoch(self, event: EpochEvent) -> None:
        self.clock.advance(event.keys, event.epoch)
        if self.log_every <= 0 or (event.epoch % self.log_every and event.epoch != event.epochs):
            return
        who = _who(event.keys, self.clock.total)
        who = f"{who} | " if who else ""
        self._line(
            f"{self.run} | {who}epoch {event.epoch}/{event.epochs} | {fmt_logs(event.logs)} | "
            f"elapsed {fmt_duration(self.clock.elapsed())} | eta {fmt_eta(self.clock.eta())}"
        )

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        self.clock.finish(key)
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(scores.items())[:4])
        shown = f"{shown} | " if shown else ""
        if self.log_every == 0 or self.clock.models_in_flight == 1:
            who = _who((key,), self.clock.total) or "model"
            self._line(
                f"{self.run} | {who} done ({self.clock.done_models}/{self.clock.total}) | "
                f"{shown}{fmt_duration(seconds)} | eta {fmt_eta(self.clock.eta())}"
            )

    def finish(self) -> None:
        if self.run:
            self._line(f"{self.run}: finished in {fmt_duration(self.clock.elapsed())}")
            self.run = ""


class LogReporter(_Lines):
    """Few lines for a log file: the start, one line per tenth of the work, and the end.

    A progress line is written each time the work done (epochs of every model, finished or in
    training) passes another 10% of the run, so a run writes at most ten of them whatever its
    size: stacked runs, whose models all train at once, report as often as sequential ones. Each
    line names the repeats and folds finished, the running mean of their first score and the ETA.

    Args:
        stream: Where lines go (stdout under nohup or a Makefile redirect).
        steps: Progress lines per run (10: every 10% of the work).
    """

    def __init__(self, stream: TextIO, steps: int = 10) -> None:
        super().__init__(stream)
        self.steps = steps
        self.done: set[tuple[int, int]] = set()
        self.scores: list[float] = []
        self.metric = ""
        self.shown = 0  # tenths of the work already reported

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self.done = set()
        self.scores = []
        self._start_line(run, total_models, epochs, done_models)
        self.shown = int(self.clock.fraction() * self.steps)

    def _progress(self) -> None:
        step = int(self.clock.fraction() * self.steps + 1e-9)
        if step <= self.shown or step >= self.steps:  # the end has its own line
            return
        self.shown = step
        self._line(self.progress_text())

    def _done_text(self) -> str:
        if self.clock.total <= 1:  # one model (a single split): no repeat or fold to name
            return "the model" if self.done else "none"
        return finished_folds(self.done)

    def progress_text(self) -> str:
        """``exp | 40% | folds done: repeats 1-12 folds 1-10 | accuracy 0.86 (mean of 120) | eta 3m05s``."""
        pct = int(round(self.clock.fraction() * 100))
        text = f"{self.run} | {pct}% | {len(self.done)}/{self.clock.total} done: {self._done_text()}"
        if self.scores:
            mean = sum(self.scores) / len(self.scores)
            text += f" | {self.metric} {mean:.4f} (running mean of {len(self.scores)})"
        return f"{text} | elapsed {fmt_duration(self.clock.elapsed())} | eta {fmt_eta(self.clock.eta())}"

    def epoch(self, event: EpochEvent) -> None:
        if not self.run:  # epochs of a search's trials: its step lines say where it is
            return
        self.clock.advance(event.keys, event.epoch)
        self._progress()

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        if not self.run:
            return
        self.clock.finish(key)
        self.done.add(key)
        if scores:
            self.metric, value = next(iter(scores.items()))
            if value == value:  # a NaN score (a fold without both classes) is left out of the mean
                self.scores.append(float(value))
        self._progress()

    def finish(self) -> None:
        if self.run:
            self._line(
                f"{self.run}: finished {len(self.done)} model(s) in {fmt_duration(self.clock.elapsed())}"
                f" (done: {self._done_text()})"
            )
            self.run = ""


class RichReporter:
    """A live progress bar (repeat, fold, epoch, ETA) for an interactive terminal.

    Args:
        console: The ``rich.console.Console`` that owns the terminal.
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            # our own ETA, not rich's: rich's would count the compiling first epoch
            TextColumn("eta {task.fields[eta]}"),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.steps_task: Any = None  # trials or points of a search or sweep, beside the models' bar
        self.clock = _Clock()
        self.run = ""

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self.run = run
        self.clock.start(total_models, epochs, done_models)
        self.progress.start()
        self.task = self.progress.add_task(
            run, total=total_models * epochs, completed=done_models * epochs, info="", eta=fmt_eta(None)
        )

    def epoch(self, event: EpochEvent) -> None:
        self.clock.advance(event.keys, event.epoch)
        who = _who(event.keys, self.clock.total)
        who = f"{who} " if who else ""
        done = self.clock.fraction() * self.clock.total * self.clock.epochs
        self.progress.update(
            self.task,
            completed=done,
            info=f"{who}epoch {event.epoch}/{event.epochs} {fmt_logs(event.logs, 3)}",
            eta=fmt_eta(self.clock.eta()),
        )

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        self.clock.finish(key)
        self.progress.update(
            self.task,
            completed=self.clock.fraction() * self.clock.total * self.clock.epochs,
            eta=fmt_eta(self.clock.eta()),
        )

    def step(self, done: int, total: int, unit: str, best: str = "") -> None:
        info = f"best so far: {best}" if best else ""
        if self.steps_task is None:
            self.progress.start()
            self.steps_task = self.progress.add_task(unit, total=total, completed=done, info=info, eta="")
        else:
            self.progress.update(self.steps_task, total=total, completed=done, info=info)
        self.progress.update(self.steps_task, description=f"{unit} {done}/{total}")
        if done >= total:
            self.progress.stop()
            self.steps_task = None

    def finish(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None
