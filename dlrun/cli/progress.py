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


def fmt_eta(seconds: float | None) -> str:
    """The ETA, or ``estimating…`` while there are too few timed epochs to extrapolate from."""
    return "estimating\u2026" if seconds is None else fmt_duration(seconds)


def fmt_logs(logs: dict[str, float], limit: int = 6) -> str:
    """``loss=0.4123 accuracy=0.8125`` for the first few metrics."""
    parts = [f"{k}={v:.4g}" for k, v in list(logs.items())[:limit]]
    return " ".join(parts)


_TRANSFORM_WORDS = {"log": "log-transformed", "standard": "standardised", "minmax": "min-max-scaled"}


def transformed_target_note(transform: str, targets: list[str], task: str) -> str:
    """What Keras' loss and metrics are measured in when the target is transformed before training.

    Args:
        transform: ``preprocessing.target.transform`` (``none``, ``log``, ``standard``, ``minmax``).
        targets: The target column names.
        task: The run's task; only regression targets are transformed.

    Returns:
        ``"min-max-scaled quality"``, or ``""`` when the target is used as it is.
    """
    if task != "regression" or transform in ("none", "", None):
        return ""
    return f"{_TRANSFORM_WORDS.get(transform, transform + '-transformed')} {', '.join(targets) or 'target'}"


class TransformedTargetLogs:
    """A reporter wrapper that names Keras' per-epoch values as being on a transformed target.

    Training minimises the loss on the transformed target (e.g. min-max-scaled quality), while
    the summary scores predictions mapped back to the original units; without a word, the
    logged ``mae=0.1`` and the summary's ``mae 0.5`` look like a contradiction.

    Args:
        inner: The reporter that prints.
        units: What the logged values are in, e.g. ``"min-max-scaled quality"``.
    """

    def __init__(self, inner: Reporter, units: str) -> None:
        self.inner = inner
        self.units = units
        self._tag = "[" + units.split(" ")[0] + "]"

    def note(self, text: str) -> None:
        self.inner.note(text)

    def start(self, run: str, total_models: int, epochs: int, done_models: int = 0) -> None:
        self.inner.note(
            f"{run}: per-epoch loss and metrics marked {self._tag} are on the {self.units} "
            "(the summary reports the original units)"
        )
        self.inner.start(run, total_models, epochs, done_models)

    def epoch(self, event: EpochEvent) -> None:
        logs = {f"{k}{self._tag}": v for k, v in event.logs.items()}
        self.inner.epoch(EpochEvent(keys=event.keys, epoch=event.epoch, epochs=event.epochs, logs=logs))

    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        self.inner.model_done(key, scores, seconds)

    def finish(self) -> None:
        self.inner.finish()


def label_transformed_target(reporter: Reporter, transform: str, targets: list[str], task: str) -> Reporter:
    """``reporter`` itself, or wrapped in :class:`TransformedTargetLogs` when the target is transformed."""
    units = transformed_target_note(transform, targets, task)
    return TransformedTargetLogs(reporter, units) if units else reporter


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
        self.mark_time = None
        self.mark_work = 0.0
        self.timed_epochs = 0

    def fraction(self) -> float:
        work = self.done_models * self.epochs + sum(self.in_flight.values())
        return min(1.0, work / (self.total * self.epochs))

    def advance(self, keys: tuple[tuple[int, int], ...], epoch: int) -> None:
        """The models ``keys`` finished ``epoch`` (1-based)."""
        self.models_in_flight = len(keys)
        self.epoch_now = epoch
        for k in keys:
            self.in_flight[k] = max(self.in_flight.get(k, 0), epoch)
        self.tick()

    def finish(self, key: tuple[int, int]) -> None:
        """Model ``key`` is done (trained and scored)."""
        self.done_models += 1
        self.in_flight.pop(key, None)
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

    def finish(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None
