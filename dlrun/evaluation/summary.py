"""A run's ``summary.json`` as a typed record, and the one accessor for a metric's headline.

A cv summary keeps, per metric, a block of estimates (``folds``, ``corrected``, …) and the key of
the one to report under ``headline``; a train summary keeps one number per metric. Every
reader (console tables, sweep and batch tables, the run index, comparisons, plots) goes through
:func:`headline_block` or :class:`Summary` instead of reading those keys itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.store.layout import SUMMARY_JSON


def headline_block(block: Any) -> dict[str, Any]:
    """The statistics a cv metric block reports: its ``headline`` estimate, else its fold statistics.

    Args:
        block: One entry of a cv summary's ``metrics`` (or ``baseline.metrics``).

    Returns:
        That estimate's dict (``n``, ``mean``, ``std``, ``se``, ``ci_low``, ``ci_high``, ``method``, …),
        or ``{}`` when ``block`` is not a block of estimates (a train run's single number).
    """
    if not isinstance(block, Mapping):
        return {}
    chosen = block.get(str(block.get("headline") or "folds"))
    if isinstance(chosen, Mapping) and chosen:
        return dict(chosen)
    folds = block.get("folds")
    return dict(folds) if isinstance(folds, Mapping) else {}


def headline_name(block: Any) -> str:
    """Which estimate :func:`headline_block` reports (``single`` for a train run's number)."""
    if not isinstance(block, Mapping):
        return "single"
    return str(block.get("headline") or "folds")


@dataclass(frozen=True)
class Estimate:
    """One metric's reported value: a cv headline estimate with its interval, or a single score.

    Attributes:
        metric: The metric's name.
        kind: ``single`` (one held-out score) or the estimate's key (``corrected``, ``folds``, …).
        mean: The value (None when missing).
        ci_low: Lower end of its interval (None without one).
        ci_high: Upper end of its interval.
        n: Scores behind it.
        std: Sample standard deviation of those scores (None for a single score).
        se: Standard error of the estimate.
        method: How the interval was computed, in words.
    """

    metric: str
    kind: str
    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    std: float | None = None
    se: float | None = None
    method: str = ""


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Summary:
    """A run's ``summary.json``, read-only, with typed access to what readers need.

    Attributes:
        data: The JSON content as written.
    """

    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Summary:
        """Read a ``summary.json`` file (or the one in a run folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / SUMMARY_JSON
        return cls(json.loads(p.read_text(encoding="utf-8")))

    @property
    def name(self) -> str:
        """The run's name."""
        return str(self.data.get("name", ""))

    @property
    def command(self) -> str:
        """``train`` or ``cv``."""
        return str(self.data.get("command", ""))

    @property
    def mode(self) -> str:
        """The evaluation mode."""
        return str(self.data.get("mode", ""))

    @property
    def main_metric(self) -> str | None:
        """The metric the headline uses."""
        m = self.data.get("main_metric")
        return None if m is None else str(m)

    @property
    def metrics(self) -> list[str]:
        """Every held-out metric."""
        return list(self.data.get("metrics") or {})

    @property
    def headline(self) -> str:
        """The sentence the CLI prints under the table ("" when the run has none)."""
        head = self.data.get("headline")
        return str(head.get("text", "")) if isinstance(head, Mapping) else ""

    def estimate(self, metric: str | None = None, *, baseline: bool = False) -> Estimate:
        """The reported value of ``metric`` (default: the main one), or of the no-skill baseline.

        Raises:
            KeyError: The summary has no such metric.
        """
        name = metric or self.main_metric or (self.metrics[0] if self.metrics else "")
        blocks = (self.data.get("baseline") or {}).get("metrics", {}) if baseline else self.data.get("metrics", {})
        if name not in blocks:
            raise KeyError(name)
        block = blocks[name]
        if not isinstance(block, Mapping):
            return Estimate(name, "single", _float(block), n=1)
        d = headline_block(block)
        n = d.get("n")
        return Estimate(
            metric=name,
            kind=headline_name(block),
            mean=_float(d.get("mean")),
            ci_low=_float(d.get("ci_low")),
            ci_high=_float(d.get("ci_high")),
            n=None if n is None else int(n),
            std=_float(d.get("std")),
            se=_float(d.get("se")),
            method=str(d.get("method", "")),
        )
