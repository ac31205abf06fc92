"""Sweep figures: the estimate against a swept parameter, and one mean curve per sweep point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlrun.errors import InputError
from dlrun.report.plots.curves import last_epochs, runs_matrix
from dlrun.report.plots.style import BASELINE_COLOR, FLAG_COLOR, OKABE_ITO, footnote, require_columns, title

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.axes import Axes

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
    require_columns(table, [param], "table")
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
        require_columns(table, list(others), "table")
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
    title(ax, run_name, f"{metric} against {param}")
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
        require_columns(hist, ["epoch", column], f"curves[{label!r}]")
        color = OKABE_ITO[i % len(OKABE_ITO)]
        for col, style, width, lab in ((column, "-", 1.9, label), (metric, ":", 1.0, None)):
            if col != column and (which == "train" or col not in hist.columns):
                continue
            wide = runs_matrix(hist, col, 0.0)
            x = wide.index.to_numpy(dtype=np.float64)
            common = float(last_epochs(wide).min())
            keep = x <= common  # a mean over models still training drifts as they stop
            mean = wide.mean(axis=1).to_numpy(dtype=np.float64)[keep]
            ax.plot(x[keep], mean, color=color, linestyle=style, linewidth=width, label=lab)
            later = x[keep] > x.min() if keep.sum() > 2 else np.ones(int(keep.sum()), dtype=bool)
            tail.append(mean[later])
            clipped |= bool(keep.sum() > 2)
    limits = _robust_limits(tail)
    if limits is not None:
        ax.set_ylim(*limits)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    title(ax, run_name, f"{name} {metric} per epoch, one line per sweep point")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    notes = [f"Solid: {name} {metric}, mean over each point's models; dotted: its training {metric}."]
    if which == "train":
        notes = [f"Training {metric}, mean over each point's models (no validation or held-out curves recorded)."]
    if clipped:
        notes.append("The y range is set from epoch 2 on; a first epoch beyond it is cut off.")
    footnote(ax, " ".join(notes))
