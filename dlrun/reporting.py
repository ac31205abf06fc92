"""What a run reports while it trains: the :class:`Reporter` protocol, a silent reporter, and
the formatting of values, durations and metric logs that reports and summaries share.

Nothing here prints; the CLI's reporters (:mod:`dlrun.cli.progress`) own the console.
"""

from __future__ import annotations

import math
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
    """A table cell: floats to ``digits`` decimals (significant digits where that would show 0.0000),
    ``None`` and NaN as a dash: the one formatter of table cells, console and pages alike."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and math.isfinite(v) and abs(v) < 10 ** (1 - digits):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v)


def fmt_eta(seconds: float | None) -> str:
    """The ETA, or ``estimating…`` while there are too few timed epochs to extrapolate from."""
    return "estimating\u2026" if seconds is None else fmt_duration(seconds)


def fmt_logs(logs: dict[str, float], limit: int = 6) -> str:
    """``loss=0.4123 accuracy=0.8125`` for the first few metrics."""
    parts = [f"{k}={v:.4g}" for k, v in list(logs.items())[:limit]]
    return " ".join(parts)


def _ranges(numbers: list[int]) -> str:
    """``1-4, 7, 9-10`` from sorted 1-based numbers."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def finished_folds(keys: set[tuple[int, int]] | list[tuple[int, int]], limit: int = 4) -> str:
    """Which (repeat, fold) models are done, 1-based and compressed for a log line.

    Consecutive repeats with the same finished folds share one group:
    ``repeats 1-12 folds 1-10; repeat 13 folds 1-4``. A run of one model per repeat reads
    ``repeats 1-3``; nothing finished reads ``none``. Past ``limit`` groups (folds finishing out of
    order on several workers) the rest is counted, not listed.
    """
    if not keys:
        return "none"
    by_repeat: dict[int, list[int]] = {}
    for r, f in sorted(set(keys)):
        by_repeat.setdefault(r + 1, []).append(f + 1)
    if all(folds == [1] for folds in by_repeat.values()) and len(by_repeat) > 1:
        return f"repeats {_ranges(sorted(by_repeat))}"
    groups: list[tuple[list[int], list[int]]] = []  # (repeats, folds)
    for r in sorted(by_repeat):
        folds = by_repeat[r]
        if groups and groups[-1][1] == folds and groups[-1][0][-1] == r - 1:
            groups[-1][0].append(r)
        else:
            groups.append(([r], folds))
    texts = [
        f"{'repeats' if len(rs) > 1 else 'repeat'} {_ranges(rs)} {'folds' if len(fs) > 1 else 'fold'} {_ranges(fs)}"
        for rs, fs in groups
    ]
    if len(texts) > limit:
        rest = sum(len(rs) for rs, _ in groups[limit:])
        texts = [*texts[:limit], f"{rest} more repeat(s) in part"]
    return "; ".join(texts)


def step_text(done: int, total: int, unit: str, best: str = "") -> str:
    """``trials 3/20 done | best so far: trial 2, accuracy 0.8610 [0.83, 0.89]``."""
    return f"{unit} {done}/{total} done" + (f" | best so far: {best}" if best else "")


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

    def step(self, done: int, total: int, unit: str, best: str = "") -> None:
        self.inner.step(done, total, unit, best)

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

    def step(self, done: int, total: int, unit: str, best: str = "") -> None:
        """``done`` of ``total`` trials or points (``unit``) are over; ``best``: the best so far, as text."""

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

    def step(self, done: int, total: int, unit: str, best: str = "") -> None:
        pass

    def finish(self) -> None:
        pass
