"""Stopping rules that look at the result after every chunk of repeats, and what keeps them honest.

``dlrun compare --until-decided`` and ``evaluation.repeats: auto`` add repeats until a statement
holds; benchmarks/sequential.py measures how often the statement they end on is wrong.
"""

from __future__ import annotations

import math
from typing import Any

from dlrun.evaluation.stats.intervals import bounded_interval


def looks(start: int, max_repeats: int, chunk: int) -> int:
    """How many times a rule that starts at ``start`` repeats and adds ``chunk`` up to ``max_repeats`` looks."""
    if max_repeats <= start:
        return 1
    return 1 + math.ceil((max_repeats - start) / chunk)


def decision_threshold(start: int, max_repeats: int, chunk: int, level: float = 0.95) -> float:
    """The posterior probability a region needs at every look so that all looks together err at most 1 − level.

    Bonferroni over the looks: each look decides only at ``1 − (1 − level)/L``, L = :func:`looks`.
    """
    return 1.0 - (1.0 - level) / looks(start, max_repeats, chunk)


def halfwidth_floor(block: dict[str, Any]) -> float | None:
    """The narrowest half-width more repeats could give a ``nadeau_bengio`` block, or None without a floor.

    Repeats re-test the same rows, so they remove only the split-to-split part of the corrected
    variance: the se cannot go below ``se_floor``; its half-width is taken at a normal quantile,
    mapped through the metric's scale at the current mean.
    """
    if block.get("se_floor") is None or block.get("mean") is None:
        return None
    mean = float(block["mean"])
    scale = str(block.get("scale") or "identity")
    lo, hi, _ = bounded_interval(mean, float(block["se_floor"]), 10**6, float(block["confidence"]), scale)
    return max(mean - lo, hi - mean)


def decided(bayes: dict[str, Any], threshold: float) -> str | None:
    """The region of a ``bayesian_correlated_ttest`` result whose probability reaches ``threshold``, or None."""
    for region in ("a_better", "equal", "b_better"):
        if bayes[f"p_{region}"] >= threshold:
            return region
    return None
