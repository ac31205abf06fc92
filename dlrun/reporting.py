"""What a run reports while it trains: the :class:`Reporter` protocol, a silent reporter, and
the formatting of values, durations and metric logs that reports and summaries share.

Nothing here prints; the CLI's reporters (:mod:`dlrun.cli.progress`) own the console.
"""

from __future__ import annotations

from typing import Any, Protocol

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
