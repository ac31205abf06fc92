"""Comparison figures: each run's estimate with its interval, and the differences the tests estimate.

:func:`compare_intervals` and :func:`compare_forest` draw plain data; :func:`compare_estimates`,
:func:`difference_rows` and :func:`compare_differences` draw a
:class:`~dlrun.evaluation.compare.Comparison` the way ``dlrun compare`` and the comparison page show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dlrun.errors import InputError
from dlrun.report.plots.style import BASELINE_COLOR, ESTIMATE_COLOR, TRAIN_COLOR, as_array, footnote

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.axes import Axes


def compare_intervals(
    ax: Axes,
    names: Sequence[str],
    means: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    metric: str,
    *,
    baseline: str | None = None,
) -> None:
    """Each run's mean with its interval as horizontal error bars, one row per run.

    Args:
        ax: Axes to draw on.
        names: Run labels, length ``m``, drawn in full.
        means: Means, length ``m`` (None draws nothing for that run).
        lows: Interval lower bounds, length ``m`` (None for runs without an interval).
        highs: Interval upper bounds, length ``m``.
        metric: Metric name for the x label.
        baseline: Optional name in ``names`` whose mean is drawn as a vertical reference line.

    Raises:
        InputError: If the sequences differ in length or ``baseline`` is not a name.
    """
    m = len(names)
    if not (len(means) == len(lows) == len(highs) == m):
        raise InputError(
            f"names, means, lows and highs must have the same length; got {m}, {len(means)}, {len(lows)}, {len(highs)}"
        )
    mu, lo, hi = as_array(means), as_array(lows), as_array(highs)
    y = np.arange(m, dtype=np.float64)[::-1]  # first run on top
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    if has_ci.any():
        err = np.vstack([mu - lo, hi - mu])[:, has_ci]
        ax.errorbar(
            mu[has_ci], y[has_ci], xerr=err, fmt="o", color=TRAIN_COLOR, capsize=4, label="estimate and interval"
        )
    if (~has_ci).any():
        ax.plot(mu[~has_ci], y[~has_ci], "D", color="0.4", label="single value (no interval)")
    if baseline is not None:
        if baseline not in names:
            raise InputError(f"baseline must be one of the names ({', '.join(names)}); got {baseline!r}")
        b = mu[list(names).index(baseline)]
        if math.isfinite(b):
            ax.axvline(b, color=BASELINE_COLOR, linestyle="--", linewidth=1, label=f"{baseline} estimate")
    ax.set_yticks(y, list(names))
    ax.set_ylim(-0.7, m - 0.3)
    ax.set_xlabel(metric)
    ax.set_title(f"{metric}: each run's estimate and interval", fontsize="medium", loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def compare_forest(
    ax: Axes,
    labels: Sequence[str],
    diffs: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    metric: str,
    *,
    paired: Sequence[bool] | None = None,
    confidence: float = 0.95,
    note: str = "",
) -> None:
    """Forest plot of the differences the tests estimate, one row per pair, with zero marked.

    Args:
        ax: Axes to draw on.
        labels: Full pair labels, e.g. ``"sonar_dropout − sonar_baseline"``, length ``m``.
        diffs: Mean differences, length ``m`` (None draws nothing for that pair).
        lows: Interval lower bounds of the differences, length ``m``.
        highs: Interval upper bounds, length ``m``.
        metric: Metric name for the x label.
        paired: Whether each pair's test was paired (identical splits); unpaired rows are
            drawn with open markers.
        confidence: Coverage of the intervals, for the legend.
        note: The tests' methods, for the footnote.

    Raises:
        InputError: If the sequences differ in length.
    """
    m = len(labels)
    flags = list(paired) if paired is not None else [True] * m
    if not (len(diffs) == len(lows) == len(highs) == len(flags) == m):
        raise InputError(
            f"labels, diffs, lows, highs and paired must have the same length; got {m}, {len(diffs)}, "
            f"{len(lows)}, {len(highs)}, {len(flags)}"
        )
    d, lo, hi = as_array(diffs), as_array(lows), as_array(highs)
    y = np.arange(m, dtype=np.float64)[::-1]
    pct = f"{100 * confidence:g}%"
    for want, marker, face in ((True, "o", TRAIN_COLOR), (False, "o", "white")):
        sel = np.array([f is want for f in flags], dtype=bool) & np.isfinite(d)
        if not sel.any():
            continue
        ok = sel & np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.errorbar(
                d[ok],
                y[ok],
                xerr=np.vstack([d[ok] - lo[ok], hi[ok] - d[ok]]),
                fmt=marker,
                color=TRAIN_COLOR,
                markerfacecolor=face,
                capsize=4,
                markersize=7,
            )
        if (sel & ~ok).any():
            ax.plot(d[sel & ~ok], y[sel & ~ok], "D", color="0.4")
    ax.axvline(0.0, color=ESTIMATE_COLOR, linewidth=1, linestyle="-")
    ax.set_yticks(y, list(labels))
    ax.set_ylim(-0.7, m - 0.3)
    ax.set_xlabel(f"difference in {metric} (first run minus second)")
    ax.set_title(f"paired differences in {metric}", fontsize="medium", loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    # a legend beside long pair labels would squeeze the axes; the footnote says the same
    key = f"Dot: mean difference; bar: its {pct} interval; filled: paired test on identical splits"
    if not all(flags):
        key += "; open: Welch's test on different splits (optimistic)"
    key += ". Vertical line: no difference; an interval that crosses it is no evidence of one."
    footnote(ax, f"{key} {note}".strip())


#: One row of a differences figure: ``(label, difference, low, high, paired)``.
DifferenceRow = tuple[str, Any, Any, Any, Any]


def compare_estimates(ax: Axes, result: Any, labels: Sequence[str]) -> None:
    """Each run's headline estimate and interval from a comparison's table, one row per run.

    Args:
        ax: Axes to draw on.
        result: A :class:`~dlrun.evaluation.compare.Comparison` (its ``table`` and ``metric``).
        labels: The runs' labels, in the table's order.
    """
    t = result.table
    compare_intervals(ax, list(labels), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric)


def difference_rows(result: Any) -> tuple[list[DifferenceRow], str]:
    """The differences a comparison estimated, with the methods behind them for a footnote.

    With three or more runs, each run's paired difference to the best (``result.forest``); else
    the difference of every pair that was tested.

    Returns:
        The rows (possibly none) and the footnote.
    """
    forest = result.forest
    if not forest.empty:
        rows = [
            (
                f"{r['label']} \u2212 {r.get('reference', result.best)}",
                r["diff"],
                r["ci_low"],
                r["ci_high"],
                r["paired"],
            )
            for _, r in forest.iterrows()
        ]
        return rows, (
            "Each run's paired difference to the best (intervals not adjusted); p-values adjusted over "
            "all pairs are in the verdicts."
        )
    tested = [pw for pw in result.pairwise if pw.get("test")]
    rows = [
        (
            f"{pw['a']} \u2212 {pw['b']}",
            pw["test"].get("mean_diff"),
            pw["test"].get("ci_low"),
            pw["test"].get("ci_high"),
            pw.get("paired"),
        )
        for pw in tested
    ]
    return rows, " ".join(sorted({str(pw.get("what") or pw["test"].get("method", "")) for pw in tested}))


def compare_differences(
    ax: Axes, rows: Sequence[DifferenceRow], metric: str, *, confidence: float, note: str = ""
) -> None:
    """Forest plot of :func:`difference_rows`' rows."""
    compare_forest(
        ax,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        metric,
        paired=[bool(r[4]) for r in rows],
        confidence=confidence,
        note=note,
    )
