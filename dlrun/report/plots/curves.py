"""Per-epoch curves of one run: training, validation and held-out values of every model, with their mean."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlrun.errors import InputError
from dlrun.report.plots.style import TEST_COLOR, TRAIN_COLOR, VAL_COLOR, footnote, require_columns, title

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.axes import Axes

#: How the three per-epoch series are labelled, drawn and named in ``history.csv``.
HELD_OUT_LABEL = "held-out (not used for training decisions)"
_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("", "train", TRAIN_COLOR, "-"),
    ("val_", "validation", VAL_COLOR, "--"),
    ("test_", HELD_OUT_LABEL, TEST_COLOR, ":"),
)
_RUN_KEYS = ("repeat", "fold")


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


def runs_matrix(history: pd.DataFrame, column: str, smoothing: float) -> pd.DataFrame:
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


def last_epochs(wide: pd.DataFrame) -> npt.NDArray[np.float64]:
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
    last = last_epochs(wide)
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
    require_columns(history, ["epoch", metric], "history")
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
        wide = runs_matrix(history, col, smoothing)
        n_models = max(n_models, wide.shape[1])
        stop = _draw_series(ax, wide, color, style, label)
        common = stop if common is None else (min(common, stop) if stop is not None else common)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} ({units})" if units else metric)
    title(ax, run_name, f"{metric} per epoch")
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
