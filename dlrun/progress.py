"""Progress reporting: a rich live view on a terminal, plain flushed lines otherwise.

The core calls a :class:`Reporter`; the CLI decides which one and owns the console.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, TextIO

from dlrun.engines.base import EpochEvent


def fmt_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``12.3s``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def fmt_value(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, ``None`` as a dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fmt_logs(logs: dict[str, float], limit: int = 6) -> str:
    """``loss=0.4123 accuracy=0.8125`` for the first few metrics."""
    parts = [f"{k}={v:.4g}" for k, v in list(logs.items())[:limit]]
    return " ".join(parts)


class Reporter(Protocol):
    """What the core tells whoever watches a run."""

    def note(self, text: str) -> None:
        """A one-line remark (engine fallback, inferred task, ...)."""

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        """Training of ``total_models`` models of ``epochs`` epochs begins."""

    def epoch(self, event: EpochEvent) -> None:
        """An epoch ended for the models in ``event.keys``."""

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        """A model (fold) finished and was scored."""

    def finish(self) -> None:
        """Training is over (success or not)."""


class NullReporter:
    """Reports nothing (library use, tests)."""

    def note(self, text: str) -> None:
        pass

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        pass

    def epoch(self, event: EpochEvent) -> None:
        pass

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        pass

    def finish(self) -> None:
        pass


class _Clock:
    """Elapsed time and ETA from finished epochs of finished and running models."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.total = 1
        self.epochs = 1
        self.done_models = 0
        self.base_models = 0
        self.models_in_flight = 1
        self.epoch_now = 0

    def start(self, total: int, epochs: int, done: int) -> None:
        self.t0 = time.monotonic()
        self.total = max(total, 1)
        self.epochs = max(epochs, 1)
        self.done_models = done
        self.base_models = done

    def fraction(self) -> float:
        work = self.done_models * self.epochs + self.models_in_flight * self.epoch_now
        return min(1.0, work / (self.total * self.epochs))

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def eta(self) -> float | None:
        base = self.base_models / self.total
        frac = self.fraction() - base
        if frac <= 0:
            return None
        return self.elapsed() * (1.0 - self.fraction()) / frac


class PlainReporter:
    """One flushed line per epoch (or every ``log_every`` epochs) with no control characters.

    Args:
        stream: Where lines go (stdout under nohup or a Makefile redirect).
        log_every: Print every N-th epoch (the last epoch always prints); 0 prints per model only.
    """

    def __init__(self, stream: TextIO, log_every: int = 1) -> None:
        self.stream = stream
        self.log_every = log_every
        self.clock = _Clock()
        self.run = ""

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self._line(text)

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self.run = run
        self.clock.start(total_models, epochs, done_models)
        already = f", {done_models} already done" if done_models else ""
        self._line(f"{run}: training {total_models} model(s) x {epochs} epochs{already}")

    def epoch(self, event: EpochEvent) -> None:
        self.clock.models_in_flight = len(event.keys)
        self.clock.epoch_now = event.epoch
        if self.log_every <= 0 or (event.epoch % self.log_every and event.epoch != event.epochs):
            return
        if len(event.keys) == 1:
            r, f = event.keys[0]
            who = f"repeat {r + 1} fold {f + 1}"
        else:
            who = f"{len(event.keys)} models"
        self._line(
            f"{self.run} | {who} | epoch {event.epoch}/{event.epochs} | {fmt_logs(event.logs)} | "
            f"elapsed {fmt_duration(self.clock.elapsed())} | eta {fmt_duration(self.clock.eta())}"
        )

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        self.clock.done_models += 1
        self.clock.epoch_now = 0
        r, f = key
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(scores.items())[:4])
        shown = f"{shown} | " if shown else ""
        if self.log_every == 0 or self.clock.models_in_flight == 1:
            self._line(
                f"{self.run} | repeat {r + 1} fold {f + 1} done ({self.clock.done_models}/{self.clock.total}) | "
                f"{shown}{fmt_duration(seconds)} | eta {fmt_duration(self.clock.eta())}"
            )

    def finish(self) -> None:
        if self.run:
            self._line(f"{self.run}: finished in {fmt_duration(self.clock.elapsed())}")
            self.run = ""


class RichReporter:
    """A live progress bar (repeat, fold, epoch, ETA) for an interactive terminal.

    Args:
        console: The ``rich.console.Console`` that owns the terminal.
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.clock = _Clock()
        self.run = ""

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self.run = run
        self.clock.start(total_models, epochs, done_models)
        self.progress.start()
        self.task = self.progress.add_task(run, total=total_models * epochs, completed=done_models * epochs, info="")

    def epoch(self, event: EpochEvent) -> None:
        self.clock.models_in_flight = len(event.keys)
        self.clock.epoch_now = event.epoch
        if len(event.keys) == 1:
            r, f = event.keys[0]
            who = f"repeat {r + 1} fold {f + 1}"
        else:
            who = f"{len(event.keys)} models"
        done = self.clock.fraction() * self.clock.total * self.clock.epochs
        self.progress.update(
            self.task, completed=done, info=f"{who} epoch {event.epoch}/{event.epochs} {fmt_logs(event.logs, 3)}"
        )

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        self.clock.done_models += 1
        self.clock.epoch_now = 0
        self.progress.update(self.task, completed=self.clock.fraction() * self.clock.total * self.clock.epochs)

    def finish(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None
