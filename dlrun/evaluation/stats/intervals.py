"""Intervals for a mean: bounded scales, the independent-draws summary, the headline sentence, running intervals.

Intervals of bounded metrics (accuracy, ROC AUC, F1, precision, recall, balanced accuracy in [0, 1];
R² ≤ 1; errors ≥ 0) are built on a scale that respects the bound (logit, log) with the delta method
and mapped back, or capped (R² at 1), so they never leave the metric's range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlrun.evaluation.metrics import METRIC_SCALES, metric_scale
from dlrun.evaluation.stats.common import (
    MIN_INFORMATIVE_DF,
    _check_confidence,
    _dropped_text,
    _finite,
    _interval,
    _t_quantile,
    decimals_for,
    format_confidence,
    format_number,
    scipy_stats,
)

__all__ = [
    "METRIC_SCALES",
    "bounded_interval",
    "describe",
    "headline_sentence",
    "interval_of",
    "metric_scale",
    "running_stats",
]

#: The range of each scale's metric, for messages: ``(low, high)`` with None for no bound.
_SCALE_RANGE: dict[str, tuple[float | None, float | None]] = {
    "logit": (0.0, 1.0),
    "clip01": (0.0, 1.0),
    "log1m": (None, 1.0),
    "cap1": (None, 1.0),
    "log": (0.0, None),
    "identity": (None, None),
}


def _to_scale(x: float, scale: str) -> tuple[float, float] | None:
    """``(g(x), g'(x))`` on ``scale``, or None when ``x`` sits on (or past) the bound."""
    if scale == "logit":
        if not 0.0 < x < 1.0:
            return None
        return math.log(x / (1.0 - x)), 1.0 / (x * (1.0 - x))
    if scale == "log1m":
        if not x < 1.0:
            return None
        return math.log(1.0 - x), -1.0 / (1.0 - x)
    if scale == "log":
        if not x > 0.0:
            return None
        return math.log(x), 1.0 / x
    return x, 1.0


def _from_scale(g: float, scale: str) -> float:
    if scale in ("log1m", "log") and g > 700.0:  # exp would overflow: the end is unbounded
        return -math.inf if scale == "log1m" else math.inf
    if scale == "logit":
        return 1.0 / (1.0 + math.exp(-g)) if g >= 0 else math.exp(g) / (1.0 + math.exp(g))
    if scale == "log1m":
        return 1.0 - math.exp(g)
    if scale == "log":
        return math.exp(g)
    return g


def bounded_interval(mean: float, se: float, df: float, confidence: float, scale: str) -> tuple[float, float, str]:
    """Student-t interval built on ``scale`` by the delta method, mapped back to the metric.

    On the transformed scale the interval is ``g(mean) ± t·se·|g'(mean)|``; mapping it back
    keeps it inside the metric's range and makes it asymmetric near a bound (where the
    sampling distribution of a bounded score is skewed).

    Args:
        mean: The estimate.
        se: Its standard error on the metric's own scale.
        df: Degrees of freedom of the t quantile.
        confidence: Coverage asked for.
        scale: One of ``clip01`` (plain, clipped to [0, 1]), ``logit``, ``log1m``, ``log``,
            ``cap1`` (plain, capped at 1), ``identity``
            (see :data:`METRIC_SCALES`).

    Returns:
        ``(low, high, scale_used)``; ``scale_used`` is ``identity`` when ``mean`` sits on the
        bound (then the plain interval is clipped to the range, and zero-width when se is 0).
    """
    if scale == "cap1":
        lo, hi = _interval(mean, se, df, confidence)
        return min(lo, 1.0), min(hi, 1.0), "cap1"
    if scale == "clip01":
        lo, hi = _interval(mean, se, df, confidence)
        return min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0), "clip01"
    if scale != "identity":
        g = _to_scale(mean, scale)
        if g is not None:
            half = _t_quantile(confidence, df) * se * abs(g[1])
            a, b = _from_scale(g[0] - half, scale), _from_scale(g[0] + half, scale)
            if math.isfinite(a) and math.isfinite(b):
                return min(a, b), max(a, b), scale
    lo, hi = _interval(mean, se, df, confidence)
    rlo, rhi = _SCALE_RANGE.get(scale, (None, None))
    if rlo is not None:
        lo, hi = max(lo, rlo), max(hi, rlo)
    if rhi is not None:
        lo, hi = min(lo, rhi), min(hi, rhi)
    return lo, hi, "identity"


def _scale_text(scale: str) -> str:
    return {
        "logit": "built on the logit scale and mapped back, so it stays inside [0, 1]",
        "log1m": "built on the log(1 \u2212 R\u00b2) scale and mapped back, so it stays at or below 1",
        "cap1": "capped at 1, the largest possible value",
        "clip01": "clipped to [0, 1], the metric's range",
        "log": "built on the log scale and mapped back, so it stays positive",
    }.get(scale, "")


def describe(values: npt.ArrayLike, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, spread and Student-t interval of values treated as independent draws.

    Args:
        values: Scores, shape ``(n,)``. NaN and infinite values are dropped and counted.
        confidence: Coverage of the interval for the mean, strictly between 0 and 1.

    Returns:
        Dict with keys ``n`` (finite values used), ``n_nan`` (non-finite values dropped),
        ``mean``, ``std`` (sample, ddof=1), ``se`` (std / sqrt(n)), ``ci_low``, ``ci_high``
        (Student-t with n-1 df), ``df``, ``confidence``, ``min``, ``max`` and ``method``
        (one sentence). ``std``, ``se``, ``df`` and the interval are None when n < 2, and
        every number is None when no finite value remains.

    Raises:
        InputError: If ``values`` is empty or not 1-D numeric, or ``confidence`` is invalid.
    """
    c = _check_confidence(confidence)
    x, n_nan = _finite(values, "values")
    n = int(x.size)
    out: dict[str, Any] = {
        "n": n,
        "n_nan": n_nan,
        "mean": None,
        "std": None,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "df": None,
        "confidence": c,
        "min": None,
        "max": None,
    }
    dropped = _dropped_text(n_nan)
    if n == 0:
        out["method"] = f"no finite values{dropped}; nothing to estimate"
        return out
    mean = float(x.mean())
    out.update(mean=mean, min=float(x.min()), max=float(x.max()))
    if n == 1:
        out["method"] = (
            f"single value{dropped}; no standard deviation or interval can be estimated from one observation"
        )
        return out
    std = float(x.std(ddof=1))
    se = std / math.sqrt(n)
    df = n - 1
    lo, hi = _interval(mean, se, df, c)
    out.update(std=std, se=se, df=df, ci_low=lo, ci_high=hi)
    out["method"] = (
        f"mean of {n} values{dropped}; sample std (ddof=1); {format_confidence(c)} Student-t interval with {df} df"
        + ("; all values identical, so the interval has zero width" if std == 0.0 else "")
    )
    return out


def interval_of(block: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """The interval of any summary block, whatever it is named (``ci_``, ``naive_``, ``precision_``)."""
    if not block:
        return None, None
    for prefix in ("ci", "naive", "precision"):
        if f"{prefix}_low" in block:
            return block.get(f"{prefix}_low"), block.get(f"{prefix}_high")
    return None, None


def headline_sentence(metric: str, summary: dict[str, Any], how: str, where: str, *, ci_word: str = "CI") -> str:
    """One sentence stating an estimate, its standard error and its interval.

    Args:
        metric: Metric name.
        summary: A ``describe``/``nadeau_bengio`` dict.
        how: Name of the interval, e.g. ``"interval corrected for correlated folds"``.
        where: What it is over, e.g. ``"over 3×10 folds"``.
        ci_word: What the interval is called: ``CI`` only where its coverage was checked.

    Returns:
        E.g. ``"accuracy 0.861 ± 0.015 SE (95% CI 0.830 to 0.892), interval corrected for
        correlated folds over 3×10 folds"``; a sentence saying the interval is not informative is
        appended below :data:`MIN_INFORMATIVE_DF` degrees of freedom.
    """
    mean = summary.get("mean")
    se = summary.get("se")
    if mean is None:
        return f"{metric}: no finite values {where}"
    d = decimals_for(se, mean)
    if se is None:
        return f"{metric} {format_number(mean, d)} from a single value {where}; no interval"
    lo, hi = interval_of(summary)
    ci = f"{format_number(lo, d)} to {format_number(hi, d)}"
    text = (
        f"{metric} {format_number(mean, d)} \u00b1 {format_number(se, d)} SE "
        f"({format_confidence(float(summary['confidence']))} {ci_word} {ci}), {how} {where}"
    )
    df = summary.get("df")
    if df is not None and df < MIN_INFORMATIVE_DF:
        text += f"; with only {df} degree{'s' if df != 1 else ''} of freedom this interval is not informative"
    return text


def running_stats(values_in_order: Sequence[float] | npt.ArrayLike, confidence: float = 0.95) -> pd.DataFrame:
    """Cumulative mean and Student-t interval after each additional value.

    Used for the "how many repeats are enough" plot. Non-finite values are dropped
    first (keeping the order of the rest), so ``n`` counts finite values only.

    Args:
        values_in_order: Scores in the order they were produced, shape ``(n,)``.
        confidence: Coverage of the intervals.

    Returns:
        DataFrame with ``k`` rows (finite values) and columns ``n``, ``mean``, ``std``
        (ddof=1), ``se``, ``ci_low``, ``ci_high``; ``std``/``se``/``ci_*`` are NaN where n < 2.
    """
    c = _check_confidence(confidence)
    x, _ = _finite(values_in_order, "values_in_order")
    n = np.arange(1, x.size + 1, dtype=np.float64)
    mean = np.cumsum(x) / n
    # Two-pass per prefix: cumulative sum-of-squares formulas lose precision when the
    # mean is large relative to the spread, and n is small (repeats), so O(n^2) is fine.
    std = np.full(x.size, np.nan)
    for i in range(1, x.size):
        std[i] = float(np.std(x[: i + 1], ddof=1))
    se = std / np.sqrt(n)
    tq = np.full(x.size, np.nan)
    if x.size > 1:
        tq[1:] = scipy_stats().t.ppf(0.5 + c / 2.0, n[1:] - 1)
    return pd.DataFrame(
        {
            "n": n.astype(np.int64),
            "mean": mean,
            "std": std,
            "se": se,
            "ci_low": mean - tq * se,
            "ci_high": mean + tq * se,
        }
    )


def interval_short_name(kind: str | None, confidence: float) -> str:
    """A table cell naming what a block's interval is, from its ``kind``.

    Only ``confidence_interval`` (the headline at a design the calibration study covers) is a "CI".
    """
    pct = format_confidence(confidence)
    return {
        "confidence_interval": f"{pct} confidence interval",
        "corrected_interval": f"{pct} corrected interval (design not calibrated)",
        "naive_fold_interval": "naive, ignores fold dependence",
        "split_precision": "precision of the CV estimate",
        "seed_interval": f"{pct} interval over seeds (one split)",
    }.get(str(kind), f"{pct} interval")


def interval_column_title(kinds: Sequence[str | None], confidence: float) -> str:
    """The header of a column of intervals: ``95% CI`` only when every one of them is a calibrated CI."""
    pct = format_confidence(confidence)
    return f"{pct} CI" if kinds and all(k == "confidence_interval" for k in kinds) else f"{pct} interval"
