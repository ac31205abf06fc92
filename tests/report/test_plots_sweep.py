"""Sweep figures (dlrun.report.plots.sweep): estimate against a swept value, and curves per point."""

from __future__ import annotations

import pandas as pd
import pytest
from plot_helpers import footnote_of, history, legend_of, new_ax

from dlrun.errors import InputError
from dlrun.report import plots


@pytest.mark.parametrize(("values", "log"), [([0.01, 0.1], True), ([1e-5, 1e-3, 1e-2], True), ([1, 2, 5], False)])
def test_spans_decade(values: list[float], log: bool) -> None:
    assert plots.spans_decade(values) is log


def test_sweep_metric_log_axis_groups_and_no_skill_flags() -> None:
    table = pd.DataFrame(
        {
            "lr": [1e-3, 1e-2, 1e-1, 1e-3, 1e-2, 1e-1],
            "units": [16, 16, 16, 64, 64, 64],
            "accuracy_mean": [0.5338, 0.8, 0.75, 0.72, 0.83, 0.7],
            "accuracy_ci_low": [0.50, 0.76, 0.7, 0.69, 0.8, 0.66],
            "accuracy_ci_high": [0.56, 0.84, 0.8, 0.75, 0.86, 0.74],
            "accuracy_baseline": [0.5338] * 6,
            "path": list("abcdef"),
        }
    )
    ax = new_ax()
    plots.sweep_metric(ax, table, "lr", "accuracy", run_name="sonar_sweep", higher_is_better=True)
    assert ax.get_xscale() == "log", "a grid spanning a decade or more gets a log axis"
    labels = legend_of(ax)
    assert "units=16" in labels and "units=64" in labels
    assert "no better than no skill (1)" in labels, "the point exactly at the baseline is flagged"
    assert "Ringed: 1 point(s)" in footnote_of(ax)


def test_sweep_metric_categorical() -> None:
    table = pd.DataFrame({"optimizer": ["adam", "sgd", "rmsprop"], "mean": [0.8, 0.7, 0.78]})
    ax = new_ax()
    plots.sweep_metric(ax, table, "optimizer", "accuracy")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd", "rmsprop"]
    assert ax.get_xscale() == "linear" and len(ax.lines) > 0


def test_sweep_curves_prefer_held_out_and_ignore_a_first_epoch_spike() -> None:
    spiky = history(epochs=8)
    spiky.loc[spiky["epoch"] == 1, ["loss", "test_loss"]] = 50.0
    ax = new_ax()
    plots.sweep_curves(ax, {"lr=0.1": spiky, "lr=0.01": history(runs=1, epochs=8)}, "loss", run_name="sw")
    assert ax.get_ylabel() == "test_loss"
    assert ax.get_ylim()[1] < 5, "one first-epoch loss must not set the y scale"
    assert legend_of(ax) == ["lr=0.1", "lr=0.01"]
    assert "from epoch 2 on" in footnote_of(ax)


def test_sweep_curves_need_at_least_one_point() -> None:
    with pytest.raises(InputError, match="at least one label"):
        plots.sweep_curves(new_ax(), {}, "loss")
    with pytest.raises(InputError, match="which must be"):
        plots.sweep_curves(new_ax(), {"a": history()}, "loss", which="best")  # type: ignore[arg-type]
