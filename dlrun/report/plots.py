"""Matplotlib drawings for run reports.

Every function takes a Matplotlib ``Axes`` first and pure data (tables, arrays, dicts), draws
on it and returns None. This module never saves files, never chooses file names and never
selects a backend: the reporting module owns the figure and decides where it goes.

Conventions shared by every plot:

- the title names the run and the metric; how the numbers were obtained goes in a short
  footnote under the axes (:func:`footnote`), not in the title;
- colours come from the Okabe–Ito palette, which stays distinguishable with the common forms
  of colour blindness, and every series also differs by line style or marker;
- epochs and repeats are counts, so their axes get integer ticks only.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from scipy import stats as sps

from dlrun.errors import InputError

#: Okabe & Ito (2008), "Color Universal Design": eight colours safe for colour-blind readers.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
TRAIN_COLOR = OKABE_ITO[0]
VAL_COLOR = OKABE_ITO[1]
TEST_COLOR = OKABE_ITO[3]
ESTIMATE_COLOR = "#000000"
BASELINE_COLOR = OKABE_ITO[4]
FLAG_COLOR = OKABE_ITO[3]

#: How the three per-epoch series are labelled, drawn and named in ``history.csv``.
HELD_OUT_LABEL = "held-out (not used for training decisions)"
_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("", "train", TRAIN_COLOR, "-"),
    ("val_", "validation", VAL_COLOR, "--"),
    ("test_", HELD_OUT_LABEL, TEST_COLOR, ":"),
)
_RUN_KEYS = ("repeat", "fold")
_FOOTNOTE_WIDTH = 110


def _wrap(text: str, width: int = _FOOTNOTE_WIDTH) -> str:
    """Wrap a long method sentence into lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(text, width)) if text else text


def footnote(ax: Axes, text: str) -> None:
    """Write ``text`` in small grey type under the x label of ``ax``.

    The note starts at the left edge of the axes' grid cell (not of the axes, which long
    tick labels push right) and is wrapped to the cell's width, so it stays on the figure;
    vertically it hangs from the x label, so it never overlaps tick labels.
    """
    if not text:
        return
    fig = ax.get_figure(root=True)
    x0, width_in = 0.01, 6.4
    spec = ax.get_subplotspec()
    if fig is not None:
        width_in = float(fig.get_figwidth())
        if spec is not None:
            _, ncols, start, _ = spec.get_geometry()
            x0 = (start % ncols) / ncols + 0.01
            width_in /= ncols
    # about 16 characters of x-small type per inch; a margin for wide letters
    ax.annotate(
        _wrap(text, max(40, int(width_in * 15) - 6)),
        xy=(x0, 0.0),
        xycoords=("figure fraction", ax.xaxis.label),
        xytext=(0, -4),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize="x-small",
        color="0.3",
        gid="footnote",
    )


def _title(ax: Axes, run_name: str, what: str) -> None:
    ax.set_title(f"{run_name}: {what}" if run_name else what, fontsize="medium", loc="left")


def clean_label(label: Any) -> str:
    """A class label as a reader wrote it: ``'-1'`` (quoted in the CSV) becomes ``-1``."""
    text = str(label)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _finite_1d(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Return the finite entries of a 1-D numeric input, shape ``(k,)``."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a sequence of numbers; got {values!r:.80}") from None
    return arr[np.isfinite(arr)]


def _require_columns(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise InputError naming the missing columns of ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{name} must have columns {', '.join(columns)}; missing {', '.join(missing)} "
            f"(has {', '.join(map(str, df.columns))})"
        )


def _smooth(y: npt.NDArray[np.float64], smoothing: float) -> npt.NDArray[np.float64]:
    """Exponential moving average ``s_t = a*s_{t-1} + (1-a)*y_t`` seeded with ``y_0``.

    Seeding with the first value (rather than 0) avoids the start-up bias toward zero.
    NaN epochs are carried over so a missing value does not poison the rest of the run.

    Args:
        y: One run's values in epoch order, shape ``(epochs,)``.
        smoothing: ``a`` in [0, 1); 0 returns ``y`` unchanged.

    Returns:
        Smoothed values, shape ``(epochs,)``.
    """
    if smoothing == 0.0 or y.size == 0:
        return y
    out = np.empty_like(y)
    s = math.nan
    for i, v in enumerate(y):
        if math.isnan(s):
            s = v
        elif not math.isnan(v):
            s = smoothing * s + (1.0 - smoothing) * v
        out[i] = s
    return out


def _runs_matrix(history: pd.DataFrame, column: str, smoothing: float) -> pd.DataFrame:
    """Pivot a long history to one column per run, one row per epoch, smoothing each run.

    Args:
        history: Long table with ``repeat``, ``fold``, ``epoch`` and ``column``.
        column: The value column.
        smoothing: Exponential smoothing factor in [0, 1).

    Returns:
        DataFrame of shape ``(epochs, runs)`` indexed by epoch; NaN where a run stopped early.
    """
    keys = [k for k in _RUN_KEYS if k in history.columns]
    h = history
    if not keys:
        h = history.assign(_run=0)
        keys = ["_run"]
    wide = h.pivot_table(index="epoch", columns=keys, values=column, aggfunc="mean", dropna=False).sort_index()
    wide = wide.loc[:, wide.notna().any(axis=0)]
    if smoothing > 0:
        values = wide.to_numpy(dtype=np.float64, copy=True)
        for j in range(values.shape[1]):  # column by column in numpy: pandas assignment cost ~1 ms per run
            valid = ~np.isnan(values[:, j])
            values[valid, j] = _smooth(values[valid, j], smoothing)
        wide = pd.DataFrame(values, index=wide.index, columns=wide.columns)
    return wide


def _last_epochs(wide: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The last epoch with a value of each run, shape ``(runs,)``."""
    x = wide.index.to_numpy(dtype=np.float64)
    ok = wide.notna().to_numpy()
    return np.array([x[np.flatnonzero(ok[:, j])[-1]] for j in range(ok.shape[1])], dtype=np.float64)


def _draw_series(ax: Axes, wide: pd.DataFrame, color: str, style: str, label: str) -> float | None:
    """Draw one series: each model thinly to its own last epoch, and the mean with a ±1 SD band.

    The mean and band stop at the last epoch every model reached. Past it, a mean over the
    models still training would drift only because models drop out (early stopping).

    Returns:
        The last epoch of the mean when models stopped at different epochs, else None.
    """
    x = wide.index.to_numpy(dtype=np.float64)
    n_runs = wide.shape[1]
    if n_runs == 1:
        y = wide.iloc[:, 0].to_numpy(dtype=np.float64)
        ax.plot(x, y, color=color, linestyle=style, linewidth=2.0, label=label)
        return None
    from matplotlib.collections import LineCollection

    # one collection, not one Line2D per run: hundreds of folds draw in a fraction of the time
    values = wide.to_numpy(dtype=np.float64).T  # (runs, epochs)
    segments = [np.column_stack([x[np.isfinite(v)], v[np.isfinite(v)]]) for v in values]
    ax.add_collection(LineCollection(segments, colors=color, alpha=0.22, linewidths=0.7, linestyles=style))
    ax.autoscale_view()
    last = _last_epochs(wide)
    common = float(last.min())
    keep = x <= common
    mean = wide.mean(axis=1).to_numpy(dtype=np.float64)[keep]
    std = wide.std(axis=1, ddof=1).to_numpy(dtype=np.float64)[keep]
    ax.plot(x[keep], mean, color=color, linestyle=style, linewidth=2.2, label=f"{label}: mean of {n_runs} models")
    ax.fill_between(x[keep], mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
    stopped = last < float(x.max())
    if stopped.any():
        ends = np.array([values[j][np.isfinite(values[j])][-1] for j in range(n_runs)])
        ax.plot(last[stopped], ends[stopped], "|", color=color, markersize=7, alpha=0.8)
    return common if float(last.max()) > common else None


def learning_curve(
    ax: Axes,
    history: pd.DataFrame,
    metric: str,
    *,
    run_name: str = "",
    smoothing: float = 0.0,
    units: str = "",
) -> None:
    """Per-epoch training, validation and held-out curves of every model, with their mean.

    Args:
        ax: Axes to draw on.
        history: Long table, one row per (repeat, fold, epoch), with columns ``epoch``,
            ``metric`` and optionally ``repeat``, ``fold``, ``val_<metric>`` (the validation
            rows carved from the training rows) and ``test_<metric>`` (the model's held-out
            rows, recorded for display only).
        metric: Metric name, e.g. ``"loss"``.
        run_name: The run's name, for the title.
        smoothing: Exponential smoothing in [0, 1) applied per run before averaging
            (0 = none, 0.9 = heavy); smoothing lags the curve, so the footnote says so.
        units: What the values are measured in, e.g. ``"min-max-scaled quality"``; shown
            in the y label.

    Raises:
        InputError: If a required column is missing, the table is empty or ``smoothing``
            is out of range.
    """
    _require_columns(history, ["epoch", metric], "history")
    if not 0.0 <= float(smoothing) < 1.0:
        raise InputError(f"smoothing must be a number in [0, 1); got {smoothing!r}")
    if len(history) == 0:
        raise InputError("history must have at least one row; got an empty table")
    notes: list[str] = []
    n_models = 0
    common: float | None = None
    for prefix, label, color, style in _SERIES:
        col = f"{prefix}{metric}"
        if col not in history.columns or not history[col].notna().any():
            continue
        wide = _runs_matrix(history, col, smoothing)
        n_models = max(n_models, wide.shape[1])
        stop = _draw_series(ax, wide, color, style, label)
        common = stop if common is None else (min(common, stop) if stop is not None else common)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({units})" if units else metric)
    _title(ax, run_name, f"{metric} per epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if n_models > 1:
        notes.append(f"Thick line: mean over the {n_models} models, band: \u00b11 SD; thin lines: each model.")
    if common is not None:
        notes.append(
            f"Models stopped early at different epochs (ticks mark each stop); the mean is drawn only to "
            f"epoch {int(common)}, which every model reached."
        )
    if f"test_{metric}" in history.columns and history[f"test_{metric}"].notna().any():
        notes.append(
            "Held-out: each model's test rows, recorded per epoch for display; nothing uses them to stop or choose."
        )
    if smoothing > 0:
        notes.append(f"Exponential smoothing {smoothing:g} per model (curves lag the raw values).")
    footnote(ax, " ".join(notes))


def _interval_of(block: Mapping[str, Any]) -> tuple[Any, Any]:
    """A summary block's interval, whatever it is named (``ci_``, ``naive_``, ``precision_``)."""
    for prefix in ("ci", "naive", "precision"):
        if block.get(f"{prefix}_low") is not None:
            return block.get(f"{prefix}_low"), block.get(f"{prefix}_high")
    return None, None


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
    x = _finite_1d(values, "values")
    s = _pick_summary(summary)
    _title(ax, run_name, f"{metric} of {x.size} held-out scores")
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
    lo, hi = _interval_of(s)
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
    x = _finite_1d(values, "values")
    ax.set_xlabel("theoretical normal quantiles")
    ax.set_ylabel(f"ordered {metric}")
    if x.size < 3:
        ax.plot(np.zeros(x.size), x, "o", color=TRAIN_COLOR)
        _title(ax, run_name, f"normal Q-Q of {metric}: needs at least 3 values, got {x.size}")
        return
    (osm, osr), (slope, intercept, r) = sps.probplot(x, dist="norm", fit=True)
    ax.plot(osm, osr, "o", color=TRAIN_COLOR, label=f"{x.size} scores")
    line = np.array([osm.min(), osm.max()])
    r2 = float(r) ** 2 if math.isfinite(float(r)) else math.nan
    ax.plot(line, slope * line + intercept, color=TEST_COLOR, label=f"fit, R\u00b2 = {r2:.3f}")
    _title(ax, run_name, f"normal Q-Q of {metric}")
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
    _require_columns(running, ["n", "mean", "ci_low", "ci_high"], "running")
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
        h_lo, h_hi = _interval_of(headline)
        if h_lo is not None and h_hi is not None:
            ax.axhline(float(h_lo), color=ESTIMATE_COLOR, linestyle="--", linewidth=1, label="headline interval")
            ax.axhline(float(h_hi), color=ESTIMATE_COLOR, linestyle="--", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("repeats")
    ax.set_ylabel(f"mean {metric}")
    _title(ax, run_name, f"running estimate of {metric} over repeats")
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
    _title(ax, run_name, f"confusion matrix ({int(m.sum())} predictions)")
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
        _title(ax, run_name, f"{name}: RMSE {rmse:.4g}, R\u00b2 {r2:.3f}")
    else:
        _title(ax, run_name, f"{name}: no finite predictions")
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    footnote(ax, "Held-out rows in the target's original units; points on the dashed line are exact.")


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
    mu, lo, hi = _arr(means), _arr(lows), _arr(highs)
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


def _arr(xs: Sequence[float | None]) -> npt.NDArray[np.float64]:
    return np.array([math.nan if v is None else float(v) for v in xs], dtype=np.float64)


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
    d, lo, hi = _arr(diffs), _arr(lows), _arr(highs)
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


_NON_PARAM_COLUMNS = {
    "mean",
    "std",
    "se",
    "ci_low",
    "ci_high",
    "n",
    "n_nan",
    "df",
    "min",
    "max",
    "method",
    "estimate",
    "metric",
    "run",
    "name",
    "path",
    "mode",
    "status",
    "seed",
    "confidence",
    "folder",
    "main_metric",
    "duration_s",
    "train_s",
    "error",
    "higher_is_better",
}


def _stat_columns(table: pd.DataFrame, metric: str) -> tuple[str, str, str]:
    """Find the mean/low/high columns: ``<metric>_mean`` etc., else ``mean`` etc."""
    for prefix in (f"{metric}_", ""):
        cols = (f"{prefix}mean", f"{prefix}ci_low", f"{prefix}ci_high")
        if cols[0] in table.columns:
            return cols
    raise InputError(
        f"table must have a '{metric}_mean' or 'mean' column (with optional ci_low/ci_high); "
        f"has {', '.join(map(str, table.columns))}"
    )


def spans_decade(values: npt.ArrayLike) -> bool:
    """Whether positive values span a factor of ten or more (then a log axis reads better)."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    v = v[np.isfinite(v)]
    return bool(v.size >= 2 and (v > 0).all() and v.max() / v.min() >= 10.0 - 1e-9)


def sweep_metric(
    ax: Axes,
    table: pd.DataFrame,
    param: str,
    metric: str,
    *,
    others: Sequence[str] | None = None,
    run_name: str = "",
    higher_is_better: bool | None = None,
) -> None:
    """Metric estimate with interval error bars against a swept parameter; no-skill points flagged.

    The x axis is logarithmic when every value is positive and they span a decade or more,
    categorical when the values are not numeric. When other parameters vary, one line is
    drawn per combination of their values. A point whose estimate is no better than its
    no-skill baseline (column ``<metric>_baseline``) gets a ring and a legend entry.

    Args:
        ax: Axes to draw on.
        table: One row per sweep point with column ``param`` and either
            ``<metric>_mean``/``<metric>_ci_low``/``<metric>_ci_high`` or ``mean``/``ci_low``/``ci_high``
            (interval columns optional), optionally ``<metric>_baseline``.
        param: The swept parameter column.
        metric: Metric name.
        others: Other parameter columns to group lines by; by default every column that is
            not ``param``, not a statistic/bookkeeping column and not ``<metric>_*``, and that
            takes more than one value.
        run_name: The sweep's name, for the title.
        higher_is_better: Direction of the metric, for the no-skill test; None skips it.

    Raises:
        InputError: If ``param`` or the mean column is missing.
    """
    _require_columns(table, [param], "table")
    c_mean, c_lo, c_hi = _stat_columns(table, metric)
    if others is None:
        others = [
            str(c)
            for c in table.columns
            if c != param
            and str(c) not in _NON_PARAM_COLUMNS
            and not str(c).startswith(f"{metric}_")
            and c not in (c_mean, c_lo, c_hi)
            and table[c].nunique(dropna=False) > 1
        ]
    else:
        _require_columns(table, list(others), "table")
    raw = table[param]
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if numeric:
        xvals = raw.to_numpy(dtype=np.float64)
    else:
        cats = list(dict.fromkeys(raw.astype(str)))  # order of first appearance
        pos = {c: i for i, c in enumerate(cats)}
        xvals = np.array([pos[v] for v in raw.astype(str)], dtype=np.float64)
    groups: list[tuple[str, npt.NDArray[np.bool_]]]
    if others:
        keys = [tuple(map(str, row)) for row in table[list(others)].itertuples(index=False, name=None)]
        groups = [
            (
                ", ".join(f"{o}={v}" for o, v in zip(others, k, strict=True)),
                np.array([kk == k for kk in keys], dtype=bool),
            )
            for k in dict.fromkeys(keys)
        ]
    else:
        groups = [(metric, np.ones(len(table), dtype=bool))]
    mu_all = table[c_mean].to_numpy(dtype=np.float64)
    for i, (label, mask) in enumerate(groups):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        order = np.argsort(xvals[mask], kind="stable")
        x = xvals[mask][order]
        mu = mu_all[mask][order]
        if c_lo in table.columns and c_hi in table.columns:
            lo = table[c_lo].to_numpy(dtype=np.float64)[mask][order]
            hi = table[c_hi].to_numpy(dtype=np.float64)[mask][order]
            # points without an interval get zero-length bars rather than NaN warnings
            err = np.vstack([np.nan_to_num(mu - lo), np.nan_to_num(hi - mu)])
            ax.errorbar(x, mu, yerr=err, fmt="o-", capsize=4, color=color, label=label)
        else:
            ax.plot(x, mu, "o-", color=color, label=label)
    notes = ["Points: each sweep point's headline estimate; bars: its interval."]
    c_base = f"{metric}_baseline"
    if c_base in table.columns and table[c_base].notna().any():
        base = table[c_base].to_numpy(dtype=np.float64)
        if np.nanmax(base) - np.nanmin(base) <= 1e-12 * max(1.0, abs(float(np.nanmax(base)))):
            ax.axhline(float(np.nanmean(base)), color=BASELINE_COLOR, linestyle=":", linewidth=1.5, label="no skill")
        else:
            ax.plot(xvals, base, "_", color=BASELINE_COLOR, markersize=14, label="no skill (per point)")
        if higher_is_better is not None:
            tol = 1e-9
            bad = (mu_all <= base + tol) if higher_is_better else (mu_all >= base - tol)
            bad &= np.isfinite(mu_all) & np.isfinite(base)
            if bad.any():
                ax.plot(
                    xvals[bad],
                    mu_all[bad],
                    "o",
                    markersize=14,
                    markerfacecolor="none",
                    markeredgecolor=FLAG_COLOR,
                    markeredgewidth=2,
                    label=f"no better than no skill ({int(bad.sum())})",
                )
                notes.append(f"Ringed: {int(bad.sum())} point(s) that score no better than the no-skill baseline.")
    if numeric:
        if spans_decade(xvals):
            ax.set_xscale("log")
            notes.append("Log x axis: the grid spans a decade or more.")
        else:
            uniq = np.unique(xvals[np.isfinite(xvals)])
            if uniq.size <= 8:
                ax.set_xticks(uniq, [f"{v:g}" for v in uniq])
    else:
        ax.set_xticks(range(len(cats)), cats)
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    _title(ax, run_name, f"{metric} against {param}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    footnote(ax, " ".join(notes))


def _robust_limits(values: list[npt.NDArray[np.float64]]) -> tuple[float, float] | None:
    """A y range that holds every value but is not stretched by a handful of outliers."""
    v = np.concatenate([a[np.isfinite(a)] for a in values]) if values else np.array([])
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    pad = 0.06 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    return lo - pad, hi + pad


def sweep_curves(
    ax: Axes,
    curves: Mapping[str, pd.DataFrame],
    metric: str,
    *,
    run_name: str = "",
    which: Literal["auto", "test", "val", "train"] = "auto",
) -> None:
    """One mean curve per sweep point: held-out where recorded, with the training curve beside it.

    The y range is set from the second epoch on, so one large first-epoch loss does not
    flatten every curve; a first epoch outside it is clipped (and the footnote says so).

    Args:
        ax: Axes to draw on.
        curves: Point label -> long history table (columns ``epoch``, ``metric`` and
            optionally ``val_<metric>``, ``test_<metric>``, ``repeat``, ``fold``).
        metric: Metric name.
        run_name: The sweep's name, for the title.
        which: The series drawn solid: ``test`` (held-out), ``val``, ``train``, or ``auto``
            (held-out when every table has it, else validation when every table has it,
            else training).

    Raises:
        InputError: If ``curves`` is empty or a requested column is missing.
    """
    if not curves:
        raise InputError("curves must map at least one label to a history table; got an empty mapping")
    if which not in ("auto", "test", "val", "train"):
        raise InputError(f"which must be 'auto', 'test', 'val' or 'train'; got {which!r}")

    def has(prefix: str) -> bool:
        col = f"{prefix}{metric}"
        return all(col in h.columns and h[col].notna().any() for h in curves.values())

    if which == "auto":
        which = "test" if has("test_") else ("val" if has("val_") else "train")
    prefix = {"test": "test_", "val": "val_", "train": ""}[which]
    name = {"test": "held-out", "val": "validation", "train": "training"}[which]
    column = f"{prefix}{metric}"
    tail: list[npt.NDArray[np.float64]] = []
    clipped = False
    for i, (label, hist) in enumerate(curves.items()):
        _require_columns(hist, ["epoch", column], f"curves[{label!r}]")
        color = OKABE_ITO[i % len(OKABE_ITO)]
        for col, style, width, lab in ((column, "-", 1.9, label), (metric, ":", 1.0, None)):
            if col != column and (which == "train" or col not in hist.columns):
                continue
            wide = _runs_matrix(hist, col, 0.0)
            x = wide.index.to_numpy(dtype=np.float64)
            common = float(_last_epochs(wide).min())
            keep = x <= common  # a mean over models still training drifts as they stop
            mean = wide.mean(axis=1).to_numpy(dtype=np.float64)[keep]
            ax.plot(x[keep], mean, color=color, linestyle=style, linewidth=width, label=lab)
            later = x[keep] > x.min() if keep.sum() > 2 else np.ones(int(keep.sum()), dtype=bool)
            tail.append(mean[later])
            clipped |= bool(keep.sum() > 2)
    limits = _robust_limits(tail)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    _title(ax, run_name, f"{name} {metric} per epoch, one line per sweep point")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    notes = [f"Solid: {name} {metric}, mean over each point's models; dotted: its training {metric}."]
    if which == "train":
        notes = [f"Training {metric}, mean over each point's models (no validation or held-out curves recorded)."]
    if clipped:
        notes.append("The y range is set from epoch 2 on; a first epoch beyond it is cut off.")
    footnote(ax, " ".join(notes))


def overlay_learning_curves(
    ax: Axes,
    curves: Mapping[str, pd.DataFrame],
    metric: str,
    *,
    which: Literal["auto", "train", "val"] = "auto",
) -> None:
    """Compatibility wrapper of :func:`sweep_curves` (validation, else training)."""
    if which not in ("auto", "train", "val"):
        raise InputError(f"which must be 'auto', 'train' or 'val'; got {which!r}")
    sweep_curves(ax, curves, metric, which=which)
