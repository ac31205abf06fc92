"""Score figures (dlrun.report.plots.scores): distribution, Q-Q, running estimate, confusion matrix, predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from plot_helpers import footnote_of, legend_of, new_ax

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.report import plots


def test_score_distribution_has_its_own_axis_the_interval_and_no_skill() -> None:
    x = [0.80, 0.82, 0.84, 0.86, 0.88, 0.83]
    scores = pd.DataFrame({"repeat": [0] * 6, "fold": range(6), "accuracy": x})
    summ = stats.summarize_metric(scores, "accuracy", repeats=1, n_train=50, n_test=10, confidence=0.95, mode="kfold")
    ax = new_ax()
    plots.score_distribution(ax, x, summ, "accuracy", run_name="sonar", baseline=0.53)
    assert list(ax.get_yticks()) == [] and ax.get_ylim() == (-0.5, 0.5), "no count axis under box and points"
    labels = legend_of(ax)
    assert any(lab.startswith("95% interval") for lab in labels)
    assert "no skill 0.53" in labels
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1, (
        "the legend sits beside the axes, never over a whisker"
    )
    assert ax.get_title(loc="left") == "sonar: accuracy of 6 held-out scores", "the method is not the title"
    assert "Nadeau" in footnote_of(ax)


def test_score_distribution_without_values() -> None:
    ax = new_ax()
    plots.score_distribution(ax, [float("nan")], stats.describe([0.5, 0.6]), "accuracy")
    assert any("no finite values" in t.get_text() for t in ax.texts)


def test_qq_plot() -> None:
    ax = new_ax()
    plots.qq_plot(ax, [0.1, 0.4, 0.35, 0.8, 0.5], "loss", run_name="r")
    assert len(ax.lines) == 2
    assert "R²" in legend_of(ax)[1]
    small = new_ax()
    plots.qq_plot(small, [0.1], "loss")
    assert "at least 3" in small.get_title(loc="left")


def test_running_mean_is_labelled_for_what_it_is() -> None:
    ax = new_ax()
    running = stats.running_stats([0.8, 0.82, 0.85, 0.81])
    plots.running_mean(
        ax, running, "accuracy", run_name="sonar", headline={"mean": 0.82, "ci_low": 0.79, "ci_high": 0.85}
    )
    assert ax.get_xlabel() == "repeats"
    ax.get_figure().canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    labels = legend_of(ax)
    assert labels[0] == "mean accuracy of the first k repeats"
    assert "t interval over those k repeat means" in labels and "headline interval" in labels
    assert "ignores that repeats share rows" in footnote_of(ax)


def test_confusion_matrix_shows_counts_rates_and_clean_labels() -> None:
    ax = new_ax()
    plots.confusion_matrix(ax, np.array([[900, 10], [6, 4]]), ["'-1'", "'1'"], run_name="mammo", note="Pooled.")
    cells = sorted(t.get_text() for t in ax.texts if t.get_gid() != "footnote")
    assert cells == ["10\n1%", "4\n40%", "6\n60%", "900\n99%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1", "1"], "labels as in the data, without quotes"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["-1 (n=910)", "1 (n=10)"]
    image = ax.images[0].get_array()
    assert image is not None and image[1, 1] == pytest.approx(0.4), "colour by row share: the minority row shows"
    assert "Pooled." in footnote_of(ax)
    with pytest.raises(InputError, match="labels must have one name per class"):
        plots.confusion_matrix(new_ax(), np.eye(2), ["a"])


def test_predicted_vs_true() -> None:
    ax = new_ax()
    plots.predicted_vs_true(ax, [1.0, 2.0, 3.0], [1.1, 1.9, 3.2], "price", run_name="housing")
    assert len(ax.collections) == 1 and len(ax.lines) == 1
    assert ax.get_title(loc="left").startswith("housing: price")


@pytest.mark.parametrize("prefix", ["ci", "naive", "precision"])
def test_score_distribution_draws_any_named_interval(prefix: str) -> None:
    block = {"mean": 0.8, f"{prefix}_low": 0.75, f"{prefix}_high": 0.85, "confidence": 0.9, "method": "m"}
    ax = new_ax()
    plots.score_distribution(ax, [0.78, 0.8, 0.82], block, "accuracy")
    assert "90% interval 0.75 to 0.85" in legend_of(ax)
