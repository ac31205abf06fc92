"""Figures of a run's held-out scores: their distribution, a normal Q-Q plot, the running estimate
over repeats, the confusion matrix and predictions against targets."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlrun.errors import InputError
from dlrun.report.plots.style import (
    BASELINE_COLOR,
    ESTIMATE_COLOR,
    OKABE_ITO,
    TEST_COLOR,
    TRAIN_COLOR,
    clean_label,
    finite_1d,
    footnote,
    interval_bounds,
    require_columns,
    title,
)

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.axes import Axes


def _pick_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Accept a describe-style dict or a summarize_metric dict (use its headline)."""
    if "headline" in summary and isinstance(summary.get(str(summary["headline"])), dict):
        return dict(summary[str(summary["headline"])])
    return dict(summary)


def score_distribution(
    ax: Axes,
    values: npt.ArrayLike,
    summary: Mapping[str, Any],
    metric: str,
    *,
    run_name: str = "",
    baseline: float | None = None,
) -> None:
    """Every score as a point over a box plot, with the headline estimate, its interval and no skill.

    Args:
        ax: Axes to draw on.
        values: Scores (e.g. one per fold), shape ``(n,)``; non-finite values are ignored.
        summary: A ``dlrun.evaluation.stats.describe``/``nadeau_bengio`` dict (``mean``, ``ci_low``,
            ``ci_high``, ``confidence``, ``method``) or a ``summarize_metric`` dict, whose
            headline is used.
        metric: Metric name for the x label and the title.
        run_name: The run's name, for the title.
        baseline: The no-skill baseline's mean score on the same folds, drawn as a line.
    """
    x = finite_1d(values, "values")
    s = _pick_summary(summary)
    title(ax, run_name, f"{metric} of {x.size} held-out scores")
    ax.set_xlabel(metric)
    ax.set_yticks([])
    if x.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    box = ax.boxplot(
        x,
        positions=[0.0],
        widths=0.5,
        orientation="horizontal",
        manage_ticks=False,
        showfliers=False,
        patch_artist=True,
        medianprops={"color": OKABE_ITO[5], "linewidth": 2},
    )
    for patch in box["boxes"]:
        patch.set(facecolor="0.92", edgecolor="0.45")
    rng = np.random.default_rng(0)  # fixed seed: identical inputs give identical figures
    ax.scatter(x, rng.uniform(-0.17, 0.17, x.size), s=18, color=TRAIN_COLOR, alpha=0.75, zorder=3, label="one score")
    conf = s.get("confidence")
    pct = f"{100 * float(conf):g}% " if conf is not None else ""
    lo, hi = interval_bounds(s)
    if lo is not None and hi is not None and math.isfinite(float(lo)) and math.isfinite(float(hi)):
        ax.axvspan(float(lo), float(hi), color="0.5", alpha=0.12, linewidth=0)
        ax.axvline(
            float(lo), color=ESTIMATE_COLOR, linestyle="--", linewidth=1.1, label=f"{pct}interval {lo:.4g} to {hi:.4g}"
        )
        ax.axvline(float(hi), color=ESTIMATE_COLOR, linestyle="--", linewidth=1.1)
    mean = s.get("mean")
    if mean is not None:
        ax.axvline(float(mean), color=ESTIMATE_COLOR, linewidth=2, label=f"estimate {float(mean):.4g}")
    if baseline is not None and math.isfinite(float(baseline)):
        ax.axvline(
            float(baseline), color=BASELINE_COLOR, linestyle=":", linewidth=2, label=f"no skill {float(baseline):.4g}"
        )
    ax.set_ylim(-0.5, 0.5)
    ax.grid(True, axis="x", alpha=0.3)
    # outside the axes, so it never covers a whisker or a point
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    footnote(ax, f"Box: quartiles and whiskers to 1.5 IQR. Lines: {s.get('method', 'the estimate and its interval')}")


def qq_plot(ax: Axes, values: npt.ArrayLike, metric: str, *, run_name: str = "") -> None:
    """Normal Q-Q plot of scores with the least-squares line and its R².

    The t interval assumes an approximately normal mean; with few scores this plot is the
    only check of that assumption a reader gets.

    Args:
        ax: Axes to draw on.
        values: Scores, shape ``(n,)``; non-finite values are ignored.
        metric: Metric name for the title.
        run_name: The run's name, for the title.
    """
    x = finite_1d(values, "values")
    ax.set_xlabel("theoretical normal quantiles")
    ax.set_ylabel(f"ordered {metric}")
    if x.size < 3:
        ax.plot(np.zeros(x.size), x, "o", color=TRAIN_COLOR)
        title(ax, run_name, f"normal Q-Q of {metric}: needs at least 3 values, got {x.size}")
        return
    from scipy import stats as sps

    (osm, osr), (slope, intercept, r) = sps.probplot(x, dist="norm", fit=True)
    ax.plot(osm, osr, "o", color=TRAIN_COLOR, label=f"{x.size} scores")
    line = np.array([osm.min(), osm.max()])
    r2 = float(r) ** 2 if math.isfinite(float(r)) else math.nan
    ax.plot(line, slope * line + intercept, color=TEST_COLOR, label=f"fit, R\u00b2 = {r2:.3f}")
    title(ax, run_name, f"normal Q-Q of {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    footnote(ax, "Points near the line: the scores look normal enough for a Student-t interval.")


def running_mean(
    ax: Axes,
    running: pd.DataFrame,
    metric: str,
    *,
    run_name: str = "",
    headline: Mapping[str, Any] | None = None,
) -> None:
    """How the estimate settles as repeats are added: the mean of the first k per-repeat means.

    Args:
        ax: Axes to draw on.
        running: Output of ``dlrun.evaluation.stats.running_stats`` over the per-repeat means (columns
            ``n``, ``mean``, ``ci_low``, ``ci_high``), one row per additional repeat.
        metric: Metric name for the y label.
        run_name: The run's name, for the title.
        headline: The run's headline statistics (``mean``, ``ci_low``, ``ci_high``,
            ``method``), drawn as reference lines at the right.
    """
    require_columns(running, ["n", "mean", "ci_low", "ci_high"], "running")
    n = running["n"].to_numpy(dtype=np.float64)
    mean = running["mean"].to_numpy(dtype=np.float64)
    lo = running["ci_low"].to_numpy(dtype=np.float64)
    hi = running["ci_high"].to_numpy(dtype=np.float64)
    ax.plot(n, mean, "o-", color=TRAIN_COLOR, label=f"mean {metric} of the first k repeats")
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(n, lo, hi, where=ok, color=TRAIN_COLOR, alpha=0.2, label="t interval over those k repeat means")
    if headline is not None and headline.get("mean") is not None:
        ax.axhline(float(headline["mean"]), color=ESTIMATE_COLOR, linewidth=1.2, label="headline estimate")
        h_lo, h_hi = interval_bounds(headline)
        if h_lo is not None and h_hi is not None:
            ax.axhline(float(h_lo), color=ESTIMATE_COLOR, linestyle="--", linewidth=1, label="headline interval")
            ax.axhline(float(h_hi), color=ESTIMATE_COLOR, linestyle="--", linewidth=1)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("repeats")
    ax.set_ylabel(f"mean {metric}")
    title(ax, run_name, f"running estimate of {metric} over repeats")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    note = (
        "Point k: the mean of the first k repeats' mean scores; band: Student-t interval over those k means "
        "(n\u22121 df), which ignores that repeats share rows."
    )
    if headline is not None and headline.get("method"):
        note += f" Headline: {headline['method']}"
    footnote(ax, note)


def confusion_matrix(
    ax: Axes,
    cm: npt.ArrayLike,
    labels: Sequence[Any],
    *,
    run_name: str = "",
    note: str = "",
) -> None:
    """Confusion matrix with each cell's count and its share of the true class (row).

    The colour is the row share, not the count, so a small minority class is as visible as
    the majority: a row of 10 rows with 3 correct is as pale as it deserves to be.

    Args:
        ax: Axes to draw on.
        cm: Counts, shape ``(k, k)``; rows are true classes, columns predicted.
        labels: Class labels, length ``k``, as in the data (surrounding quotes are dropped).
        run_name: The run's name, for the title.
        note: Where the predictions come from (e.g. out-of-fold predictions of 10 folds).

    Raises:
        InputError: If ``cm`` is not square or ``labels`` has the wrong length.
    """
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InputError(f"cm must be a square 2-D array of counts; got shape {m.shape}")
    if len(labels) != m.shape[0]:
        raise InputError(f"labels must have one name per class ({m.shape[0]}); got {len(labels)}")
    names = [clean_label(c) for c in labels]
    totals = m.sum(axis=1)
    rates = np.divide(m, totals[:, None], out=np.zeros_like(m), where=totals[:, None] > 0)
    # aspect "auto": square cells would leave the colour bar stranded in a constrained layout
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="share of the true class")
    integral = bool(np.all(m == np.round(m)))
    small = m.shape[0] > 6
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            count = f"{int(m[i, j])}" if integral else f"{m[i, j]:.3g}"
            # dark text on light cells and white on dark keeps every number readable
            color = "white" if rates[i, j] > 0.55 else "black"
            text = f"{count}\n{100 * rates[i, j]:.0f}%" if not small else f"{100 * rates[i, j]:.0f}%"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize="x-small" if small else "medium")
    ticks = list(range(len(names)))
    ax.set_xticks(ticks, names, rotation=45 if max((len(s) for s in names), default=0) > 4 else 0)
    ax.set_yticks(ticks, [f"{c} (n={int(t)})" for c, t in zip(names, totals)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    title(ax, run_name, f"confusion matrix ({int(m.sum())} predictions)")
    base = "Each cell: count and share of its true class (rows add to 100%); colour: that share."
    footnote(ax, f"{base} {note}".strip())


def predicted_vs_true(ax: Axes, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, name: str, *, run_name: str = "") -> None:
    """Scatter of predictions against targets with the identity line.

    Args:
        ax: Axes to draw on.
        y_true: Targets, shape ``(n,)``.
        y_pred: Predictions, shape ``(n,)``.
        name: Target name for the labels.
        run_name: The run's name, for the title.

    Raises:
        InputError: If the lengths differ.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise InputError(f"y_true and y_pred must have the same length; got {t.size} and {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    ax.scatter(t, p, s=12, alpha=0.5, color=TRAIN_COLOR, label=f"{t.size} predictions")
    if t.size:
        lo = float(min(t.min(), p.min()))
        hi = float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color=TEST_COLOR, linestyle="--", label="y = x")
        rmse = float(np.sqrt(np.mean((p - t) ** 2)))
        ss_tot = float(np.sum((t - t.mean()) ** 2))
        r2 = 1.0 - float(np.sum((p - t) ** 2)) / ss_tot if ss_tot > 0 else math.nan
        title(ax, run_name, f"{name}: RMSE {rmse:.4g}, R\u00b2 {r2:.3f}")
    else:
        title(ax, run_name, f"{name}: no finite predictions")
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    footnote(ax, "Held-out rows in the target's original units; points on the dashed line are exact.")
