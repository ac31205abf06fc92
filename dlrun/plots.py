"""Matplotlib drawings for run reports.

Every function takes a Matplotlib ``Axes`` first, draws on it and returns None. This
module never saves files, never chooses file names and never selects a backend: the
reporting module owns the figure and decides where it goes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from scipy import stats as sps

from dlrun.errors import InputError

TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"
_RUN_KEYS = ("repeat", "fold")


def _wrap(text: str, width: int = 70) -> str:
    """Wrap a long method sentence so it fits in a title or legend."""
    return "\n".join(textwrap.wrap(text, width)) if text else text


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
    wide = h.pivot_table(index="epoch", columns=keys, values=column, aggfunc="mean").sort_index()
    if smoothing > 0:
        values = wide.to_numpy(dtype=np.float64, copy=True)
        for j in range(values.shape[1]):  # column by column in numpy: pandas assignment cost ~1 ms per run
            valid = ~np.isnan(values[:, j])
            values[valid, j] = _smooth(values[valid, j], smoothing)
        wide = pd.DataFrame(values, index=wide.index, columns=wide.columns)
    return wide


def _draw_runs(ax: Axes, wide: pd.DataFrame, color: str, label: str) -> None:
    """Draw each run thinly and the across-run mean thickly with a ±1 SD band."""
    x = wide.index.to_numpy(dtype=np.float64)
    n_runs = wide.shape[1]
    if n_runs > 1:
        from matplotlib.collections import LineCollection

        # one collection, not one Line2D per run: hundreds of folds draw in a fraction of the time
        values = wide.to_numpy(dtype=np.float64).T  # (runs, epochs)
        segments = list(np.stack([np.broadcast_to(x, values.shape), values], axis=-1))
        ax.add_collection(LineCollection(segments, colors=color, alpha=0.25, linewidths=0.7))
        ax.autoscale_view()
    # The mean at late epochs is over the runs that reached them (early stopping), so
    # the band is drawn only where at least two runs contribute.
    mean = wide.mean(axis=1, skipna=True).to_numpy(dtype=np.float64)
    count = wide.notna().sum(axis=1).to_numpy()
    ax.plot(x, mean, color=color, linewidth=2.2, label=f"{label} (mean of {n_runs} run{'s' if n_runs != 1 else ''})")
    if n_runs > 1:
        std = wide.std(axis=1, ddof=1, skipna=True).to_numpy(dtype=np.float64)
        ok = count >= 2
        ax.fill_between(x, mean - std, mean + std, where=ok, color=color, alpha=0.18, label=f"{label} \u00b11 SD")


def learning_curve(ax: Axes, history: pd.DataFrame, metric: str, *, smoothing: float = 0.0) -> None:
    """Training (and validation) curves of every run with their across-run mean.

    Args:
        ax: Axes to draw on.
        history: Long table, one row per (repeat, fold, epoch), with columns ``repeat``,
            ``fold``, ``epoch``, ``metric`` and optionally ``val_<metric>``.
        metric: Metric name, e.g. ``"loss"``.
        smoothing: Exponential smoothing in [0, 1) applied per run before averaging
            (0 = none, 0.9 = heavy); smoothing lags the curve, so it is noted in the title.

    Raises:
        InputError: If a required column is missing or ``smoothing`` is out of range.
    """
    _require_columns(history, ["epoch", metric], "history")
    if not 0.0 <= float(smoothing) < 1.0:
        raise InputError(f"smoothing must be a number in [0, 1); got {smoothing!r}")
    if len(history) == 0:
        raise InputError("history must have at least one row; got an empty table")
    _draw_runs(ax, _runs_matrix(history, metric, smoothing), TRAIN_COLOR, "train")
    val = f"val_{metric}"
    if val in history.columns and history[val].notna().any():
        _draw_runs(ax, _runs_matrix(history, val, smoothing), VAL_COLOR, "validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    title = f"{metric} by epoch"
    if smoothing > 0:
        title += f" (exponential smoothing {smoothing:g})"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _pick_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Accept a describe-style dict or a summarize_metric dict (use its headline)."""
    if "headline" in summary and isinstance(summary.get(str(summary["headline"])), dict):
        return dict(summary[str(summary["headline"])])
    return summary


def score_distribution(ax: Axes, values: npt.ArrayLike, summary: dict[str, Any], metric: str) -> None:
    """Histogram, jittered strip and box plot of scores, with the mean and its interval.

    Args:
        ax: Axes to draw on.
        values: Scores (e.g. one per fold), shape ``(n,)``; non-finite values are ignored.
        summary: A ``dlrun.stats.describe``/``nadeau_bengio`` dict (``mean``, ``ci_low``,
            ``ci_high``, ``method``) or a ``summarize_metric`` dict, whose headline is used.
        metric: Metric name for the x label.
    """
    x = _finite_1d(values, "values")
    s = _pick_summary(summary)
    if x.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(metric)
        return
    bins: Any = "auto" if x.size >= 5 else max(1, x.size)
    counts, _, _ = ax.hist(x, bins=bins, color="0.75", edgecolor="0.4", label=f"{x.size} scores")
    top = float(max(np.max(np.asarray(counts)), 1.0))
    # Box and strip sit above the bars so none of the three hides the others.
    box_y, strip_y = top * 1.25, top * 1.55
    ax.boxplot(x, positions=[box_y], widths=top * 0.18, orientation="horizontal", manage_ticks=False, showfliers=False)
    rng = np.random.default_rng(0)  # fixed seed: identical inputs give identical figures
    jitter = rng.uniform(-0.08, 0.08, x.size) * top
    ax.scatter(x, strip_y + jitter, s=14, color="k", alpha=0.6, zorder=3)
    mean = s.get("mean")
    conf = s.get("confidence")
    pct = f"{100 * float(conf):g}% " if conf is not None else ""
    if mean is not None:
        ax.axvline(float(mean), color="tab:red", linewidth=2, label=f"mean {float(mean):.4g}")
    lo, hi = s.get("ci_low"), s.get("ci_high")
    if lo is not None and hi is not None:
        ax.axvline(float(lo), color="tab:red", linestyle="--", linewidth=1.2, label=f"{pct}CI {lo:.4g} to {hi:.4g}")
        ax.axvline(float(hi), color="tab:red", linestyle="--", linewidth=1.2)
    ax.set_ylim(0, top * 1.8)
    ax.set_xlabel(metric)
    ax.set_ylabel("count")
    ax.set_title(_wrap(str(s.get("method", f"distribution of {metric}"))), fontsize="small")
    ax.legend(fontsize="small", loc="best")


def qq_plot(ax: Axes, values: npt.ArrayLike, metric: str) -> None:
    """Normal Q-Q plot of scores with the least-squares line and its R².

    The t interval assumes an approximately normal mean; with few scores this plot is the
    only check of that assumption a reader gets.

    Args:
        ax: Axes to draw on.
        values: Scores, shape ``(n,)``; non-finite values are ignored.
        metric: Metric name for the title.
    """
    x = _finite_1d(values, "values")
    ax.set_xlabel("theoretical normal quantiles")
    ax.set_ylabel(f"ordered {metric}")
    if x.size < 3:
        ax.plot(np.zeros(x.size), x, "o", color=TRAIN_COLOR)
        ax.set_title(f"normal Q-Q of {metric}: needs at least 3 values, got {x.size}")
        return
    (osm, osr), (slope, intercept, r) = sps.probplot(x, dist="norm", fit=True)
    ax.plot(osm, osr, "o", color=TRAIN_COLOR, label=f"{x.size} scores")
    line = np.array([osm.min(), osm.max()])
    r2 = float(r) ** 2 if math.isfinite(float(r)) else math.nan
    ax.plot(line, slope * line + intercept, color="tab:red", label=f"fit, R\u00b2 = {r2:.3f}")
    ax.set_title(f"normal Q-Q of {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def running_mean(ax: Axes, running: pd.DataFrame, metric: str) -> None:
    """Running mean with its Student-t interval against the number of values so far.

    Args:
        ax: Axes to draw on.
        running: Output of ``dlrun.stats.running_stats`` (columns ``n``, ``mean``,
            ``ci_low``, ``ci_high``), one row per additional value.
        metric: Metric name for the y label.
    """
    _require_columns(running, ["n", "mean", "ci_low", "ci_high"], "running")
    n = running["n"].to_numpy(dtype=np.float64)
    mean = running["mean"].to_numpy(dtype=np.float64)
    lo = running["ci_low"].to_numpy(dtype=np.float64)
    hi = running["ci_high"].to_numpy(dtype=np.float64)
    ax.plot(n, mean, "o-", color=TRAIN_COLOR, label="running mean")
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(n, lo, hi, where=ok, color=TRAIN_COLOR, alpha=0.2, label="t interval")
    if mean.size:
        ax.axhline(mean[-1], color="0.5", linestyle=":", linewidth=1, label="final mean")
    ax.set_xlabel("number of values")
    ax.set_ylabel(metric)
    ax.set_title(f"running mean of {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def confusion_matrix(ax: Axes, cm: npt.ArrayLike, labels: list[str]) -> None:
    """Confusion matrix as an image with the count in every cell.

    Args:
        ax: Axes to draw on.
        cm: Counts, shape ``(k, k)``; rows are true classes, columns predicted.
        labels: Class names, length ``k``.

    Raises:
        InputError: If ``cm`` is not square or ``labels`` has the wrong length.
    """
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InputError(f"cm must be a square 2-D array of counts; got shape {m.shape}")
    if len(labels) != m.shape[0]:
        raise InputError(f"labels must have one name per class ({m.shape[0]}); got {len(labels)}")
    ax.imshow(m, cmap="Blues", interpolation="nearest")
    vmax = float(m.max()) if m.size else 0.0
    integral = bool(np.all(m == np.round(m)))
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            # Dark text on light cells and white on dark keeps every number readable.
            color = "white" if vmax > 0 and v > vmax / 2 else "black"
            ax.text(j, i, f"{int(v)}" if integral else f"{v:.3g}", ha="center", va="center", color=color)
    ticks = list(range(len(labels)))
    ax.set_xticks(ticks, labels, rotation=45 if max((len(s) for s in labels), default=0) > 4 else 0)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix")


def predicted_vs_true(ax: Axes, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, name: str) -> None:
    """Scatter of predictions against targets with the identity line.

    Args:
        ax: Axes to draw on.
        y_true: Targets, shape ``(n,)``.
        y_pred: Predictions, shape ``(n,)``.
        name: Target name for the labels.

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
        ax.plot([lo, hi], [lo, hi], color="tab:red", linestyle="--", label="y = x")
        rmse = float(np.sqrt(np.mean((p - t) ** 2)))
        ss_tot = float(np.sum((t - t.mean()) ** 2))
        r2 = 1.0 - float(np.sum((p - t) ** 2)) / ss_tot if ss_tot > 0 else math.nan
        ax.set_title(f"{name}: RMSE {rmse:.4g}, R\u00b2 {r2:.3f}")
    else:
        ax.set_title(f"{name}: no finite predictions")
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


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
        names: Run names, length ``m``.
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

    def arr(xs: Sequence[float | None]) -> npt.NDArray[np.float64]:
        return np.array([math.nan if v is None else float(v) for v in xs], dtype=np.float64)

    mu, lo, hi = arr(means), arr(lows), arr(highs)
    y = np.arange(m, dtype=np.float64)[::-1]  # first run on top
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    if has_ci.any():
        err = np.vstack([mu - lo, hi - mu])[:, has_ci]
        ax.errorbar(mu[has_ci], y[has_ci], xerr=err, fmt="o", color=TRAIN_COLOR, capsize=4, label="mean and interval")
    if (~has_ci).any():
        ax.plot(mu[~has_ci], y[~has_ci], "D", color="0.4", label="single value (no interval)")
    if baseline is not None:
        if baseline not in names:
            raise InputError(f"baseline must be one of the names ({', '.join(names)}); got {baseline!r}")
        b = mu[list(names).index(baseline)]
        if math.isfinite(b):
            ax.axvline(b, color="tab:red", linestyle="--", linewidth=1, label=f"{baseline} mean")
    ax.set_yticks(y, list(names))
    ax.set_xlabel(metric)
    ax.set_title(f"{metric}: mean and interval per run")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small")


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


def sweep_metric(
    ax: Axes, table: pd.DataFrame, param: str, metric: str, *, others: Sequence[str] | None = None
) -> None:
    """Metric mean with interval error bars against a swept parameter.

    The x axis is logarithmic when every value is positive and they span more than two
    decades, categorical when the values are not numeric. When other parameters vary, one
    line is drawn per combination of their values.

    Args:
        ax: Axes to draw on.
        table: One row per sweep point with column ``param`` and either
            ``<metric>_mean``/``<metric>_ci_low``/``<metric>_ci_high`` or ``mean``/``ci_low``/``ci_high``
            (interval columns optional).
        param: The swept parameter column.
        metric: Metric name.
        others: Other parameter columns to group lines by; by default every column that is
            not ``param``, not a statistic/bookkeeping column and not ``<metric>_*``, and that
            takes more than one value.

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
    for label, mask in groups:
        order = np.argsort(xvals[mask], kind="stable")
        x = xvals[mask][order]
        mu = table[c_mean].to_numpy(dtype=np.float64)[mask][order]
        if c_lo in table.columns and c_hi in table.columns:
            lo = table[c_lo].to_numpy(dtype=np.float64)[mask][order]
            hi = table[c_hi].to_numpy(dtype=np.float64)[mask][order]
            # Points without an interval get zero-length bars rather than NaN warnings.
            err = np.vstack([np.nan_to_num(mu - lo), np.nan_to_num(hi - mu)])
            ax.errorbar(x, mu, yerr=err, fmt="o-", capsize=4, label=label)
        else:
            ax.plot(x, mu, "o-", label=label)
    if numeric:
        pos_vals = xvals[np.isfinite(xvals)]
        if pos_vals.size and (pos_vals > 0).all() and pos_vals.max() / pos_vals.min() > 100:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(cats)), cats)
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {param}")
    ax.grid(True, alpha=0.3)
    if len(groups) > 1 or others:
        ax.legend(fontsize="small")


def overlay_learning_curves(
    ax: Axes,
    curves: dict[str, pd.DataFrame],
    metric: str,
    *,
    which: Literal["auto", "train", "val"] = "auto",
) -> None:
    """One across-run mean curve per label, e.g. one per learning rate.

    Args:
        ax: Axes to draw on.
        curves: Label -> long history table (columns ``epoch``, ``metric`` and optionally
            ``val_<metric>``, ``repeat``, ``fold``).
        metric: Metric name.
        which: ``"val"`` plots ``val_<metric>``, ``"train"`` plots ``metric``; ``"auto"``
            plots validation when every table has it, else training.

    Raises:
        InputError: If ``curves`` is empty or a requested column is missing.
    """
    if not curves:
        raise InputError("curves must map at least one label to a history table; got an empty mapping")
    if which not in ("auto", "train", "val"):
        raise InputError(f"which must be 'auto', 'train' or 'val'; got {which!r}")
    val = f"val_{metric}"
    if which == "auto":
        which = "val" if all(val in h.columns and h[val].notna().any() for h in curves.values()) else "train"
    column = val if which == "val" else metric
    for label, hist in curves.items():
        _require_columns(hist, ["epoch", column], f"curves[{label!r}]")
        wide = _runs_matrix(hist, column, 0.0)
        x = wide.index.to_numpy(dtype=np.float64)
        mean = wide.mean(axis=1, skipna=True).to_numpy(dtype=np.float64)
        (line,) = ax.plot(x, mean, linewidth=1.8, label=f"{label} ({wide.shape[1]} runs)")
        if wide.shape[1] > 1:
            std = wide.std(axis=1, ddof=1, skipna=True).to_numpy(dtype=np.float64)
            ok = wide.notna().sum(axis=1).to_numpy() >= 2
            ax.fill_between(x, mean - std, mean + std, where=ok, color=line.get_color(), alpha=0.12)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    ax.set_title(f"{'validation' if which == 'val' else 'training'} {metric}: mean over runs (band \u00b11 SD)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
