"""The one type for a finished run: what ``train``/``cv`` return and what ``dlrun.load`` reads back."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.evaluation.summary import Estimate, Summary
from dlrun.store import layout


@dataclass
class RunResult:
    """A finished run (also written to its folder).

    Attributes:
        path: The run folder.
        summary: The content of ``summary.json``.
        engine: The engine that trained (``summary.json``'s when read back).
        notes: Lines the run had to say (e.g. why adaptive repeats stopped).
    """

    path: Path
    summary: dict[str, Any]
    engine: str = ""
    notes: list[str] = field(default_factory=list)

    @functools.cached_property
    def scores(self) -> pd.DataFrame:
        """``scores.csv`` for a cv run (one row per repeat and fold); for a train run one row with
        the held-out, ``train_`` and ``baseline_`` value of each metric."""
        path = Path(self.path) / layout.SCORES
        if path.is_file():
            return pd.read_csv(path)
        row: dict[str, Any] = {}
        for key, prefix in (("metrics", ""), ("train_metrics", "train_")):
            row.update({f"{prefix}{m}": v for m, v in (self.summary.get(key) or {}).items()})
        baseline = (self.summary.get("baseline") or {}).get("metrics") or {}
        row.update({f"baseline_{m}": v for m, v in baseline.items()})
        return pd.DataFrame([row]) if row else pd.DataFrame()

    @functools.cached_property
    def history(self) -> pd.DataFrame:
        """``history.csv``: one row per epoch (and, for cv, per repeat and fold)."""
        path = Path(self.path) / layout.HISTORY
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    @property
    def headline(self) -> str:
        """The sentence the CLI prints under its table ("" when the run has none)."""
        return Summary(self.summary).headline

    @property
    def main_metric(self) -> str | None:
        """The metric of the headline."""
        m = self.summary.get("main_metric")
        return None if m is None else str(m)

    def estimate(self, metric: str | None = None) -> Estimate:
        """The reported value of ``metric`` (default: the main one) as an :class:`Estimate`."""
        return Summary(self.summary).estimate(metric)
