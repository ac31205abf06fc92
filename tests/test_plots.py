"""Every plot draws on a fresh Figure without pyplot global state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlrun import plots, stats
from dlrun.errors import InputError


def _ax() -> Axes:
    return Figure().add_subplot()


def _drawn(ax: Axes) -> int:
    return len(ax.lines) + len(ax.patches) + len(ax.collections) + len(ax.images) + len(ax.texts)


def _history(runs: int = 3, epochs: int = 5) -> pd.DataFrame:
    rows = []
    for r in range(runs):
        for e in range(epochs - (r % 2)):  # uneven lengths, as with early stopping
            rows.append(
                {"repeat": r, "fold": 0, "epoch": e, "loss": 1.0 / (e + 1) + 0.01 * r, "val_loss": 1.2 / (e + 1)}
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_learning_curve(smoothing: float) -> None:
    ax = _ax()
    plots.learning_curve(ax, _history(), "loss", smoothing=smoothing)
    from matplotlib.collections import LineCollection

    assert len(ax.lines) == 2  # the train and validation means
    runs = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(c.get_segments()) for c in runs] == [3, 3]  # every run drawn thinly, train and validation
    assert len(ax.collections) - len(runs) == 2  # two ±1 SD bands


def test_learning_curve_single_run_and_errors() -> None:
    ax = _ax()
    plots.learning_curve(ax, _history(runs=1).drop(columns="val_loss"), "loss")
    assert len(ax.lines) == 1 and len(ax.collections) == 0
    with pytest.raises(InputError, match="smoothing must be"):
        plots.learning_curve(_ax(), _history(), "loss", smoothing=1.0)
    with pytest.raises(InputError, match="missing accuracy"):
        plots.learning_curve(_ax(), _history(), "accuracy")


def test_score_distribution_with_describe_and_summary() -> None:
    x = [0.80, 0.82, 0.84, 0.86, 0.88, 0.83]
    ax = _ax()
    plots.score_distribution(ax, x, stats.describe(x), "accuracy")
    assert len(ax.patches) > 0 and len(ax.lines) >= 3 and len(ax.collections) >= 1
    scores = pd.DataFrame({"repeat": [0] * 6, "fold": range(6), "accuracy": x})
    summ = stats.summarize_metric(scores, "accuracy", repeats=1, n_train=50, n_test=10, confidence=0.95, mode="kfold")
    ax2 = _ax()
    plots.score_distribution(ax2, x, summ, "accuracy")
    assert "Nadeau" in ax2.get_title()


def test_qq_plot() -> None:
    ax = _ax()
    plots.qq_plot(ax, [0.1, 0.4, 0.35, 0.8, 0.5], "loss")
    assert len(ax.lines) == 2
    legend = ax.get_legend()
    assert legend is not None and "R²" in legend.get_texts()[1].get_text()
    small = _ax()
    plots.qq_plot(small, [0.1], "loss")
    assert "at least 3" in small.get_title()


def test_running_mean() -> None:
    ax = _ax()
    plots.running_mean(ax, stats.running_stats([0.8, 0.82, 0.85, 0.81]), "accuracy")
    assert _drawn(ax) > 0 and len(ax.collections) == 1


def test_confusion_matrix() -> None:
    ax = _ax()
    plots.confusion_matrix(ax, np.array([[5, 1], [2, 7]]), ["rock", "mine"])
    assert len(ax.images) == 1 and len(ax.texts) == 4
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "5", "7"]
    with pytest.raises(InputError, match="labels must have one name per class"):
        plots.confusion_matrix(_ax(), np.eye(2), ["a"])


def test_predicted_vs_true() -> None:
    ax = _ax()
    plots.predicted_vs_true(ax, [1.0, 2.0, 3.0], [1.1, 1.9, 3.2], "price")
    assert len(ax.collections) == 1 and len(ax.lines) == 1


def test_compare_intervals() -> None:
    ax = _ax()
    plots.compare_intervals(
        ax,
        ["base", "dropout", "single"],
        [0.8, 0.82, 0.79],
        [0.77, 0.8, None],
        [0.83, 0.84, None],
        "accuracy",
        baseline="base",
    )
    assert _drawn(ax) > 0
    with pytest.raises(InputError, match="same length"):
        plots.compare_intervals(_ax(), ["a"], [0.1, 0.2], [None], [None], "accuracy")


def test_sweep_metric_numeric_log_and_groups() -> None:
    table = pd.DataFrame(
        {
            "lr": [1e-5, 1e-3, 1e-2, 1e-5, 1e-3, 1e-2],
            "units": [16, 16, 16, 64, 64, 64],
            "accuracy_mean": [0.7, 0.8, 0.75, 0.72, 0.83, 0.7],
            "accuracy_ci_low": [0.65, 0.76, 0.7, 0.69, 0.8, 0.66],
            "accuracy_ci_high": [0.75, 0.84, 0.8, 0.75, 0.86, 0.74],
            "path": list("abcdef"),
        }
    )
    ax = _ax()
    plots.sweep_metric(ax, table, "lr", "accuracy")
    assert ax.get_xscale() == "log"
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 2  # one line per value of units


def test_sweep_metric_categorical() -> None:
    table = pd.DataFrame({"optimizer": ["adam", "sgd", "rmsprop"], "mean": [0.8, 0.7, 0.78]})
    ax = _ax()
    plots.sweep_metric(ax, table, "optimizer", "accuracy")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd", "rmsprop"]
    assert len(ax.lines) > 0


def test_overlay_learning_curves() -> None:
    ax = _ax()
    plots.overlay_learning_curves(ax, {"lr=1e-3": _history(), "lr=1e-2": _history(runs=1)}, "loss")
    assert len(ax.lines) == 2
    assert ax.get_ylabel() == "val_loss"
    ax2 = _ax()
    plots.overlay_learning_curves(ax2, {"a": _history()}, "loss", which="train")
    assert ax2.get_ylabel() == "loss"
