"""Every plot draws on a fresh Figure without pyplot global state, and says what it shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.report import plots


def _ax() -> Axes:
    return Figure(layout="constrained").add_subplot()


def _footnote(ax: Axes) -> str:
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "footnote"]
    assert len(notes) == 1, "every plot puts its method in one footnote"
    return notes[0].replace("\n", " ")


def _legend(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _history(runs: int = 3, epochs: int = 5, held_out: bool = True) -> pd.DataFrame:
    rows = []
    for r in range(runs):
        for e in range(1, epochs + 1 - (r % 2)):  # uneven lengths, as with early stopping
            row = {"repeat": r, "fold": 0, "epoch": e, "loss": 1.0 / e + 0.01 * r, "val_loss": 1.2 / e}
            if held_out:
                row["test_loss"] = 1.3 / e + 0.1
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_learning_curve_draws_train_validation_and_held_out(smoothing: float) -> None:
    ax = _ax()
    plots.learning_curve(ax, _history(), "loss", run_name="sonar", smoothing=smoothing)
    runs = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(c.get_segments()) for c in runs] == [3, 3, 3], "every model drawn thinly, for each series"
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3, "a band around each mean"
    labels = _legend(ax)
    assert labels == [
        "train: mean of 3 models",
        "validation: mean of 3 models",
        "held-out (not used for training decisions): mean of 3 models",
    ]
    colors = {to_hex(line.get_color()) for line in ax.lines if line.get_label() in labels}
    assert colors <= {c.lower() for c in plots.OKABE_ITO}, "a colour-blind-safe palette"
    assert ax.get_title(loc="left") == "sonar: loss per epoch"


def test_learning_curve_mean_ends_where_the_first_model_stopped() -> None:
    ax = _ax()
    plots.learning_curve(ax, _history(epochs=6), "loss")
    mean = next(line for line in ax.lines if line.get_label() == "train: mean of 3 models")
    assert max(mean.get_xdata()) == 5, "no mean over a shrinking set of models"
    assert "drawn only to epoch 5" in _footnote(ax)


def test_learning_curve_one_model_has_integer_epochs_and_no_mean_of_one() -> None:
    ax = _ax()
    h = _history(runs=1, epochs=4, held_out=False).drop(columns=["repeat", "fold"])
    plots.learning_curve(ax, h, "loss", units="min-max-scaled quality")
    assert _legend(ax) == ["train", "validation"]
    assert len(ax.collections) == 0
    ax.get_figure().canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks), f"epoch ticks must be whole numbers: {ticks}"
    assert ax.get_ylabel() == "loss (min-max-scaled quality)"


def test_learning_curve_errors() -> None:
    with pytest.raises(InputError, match="smoothing must be"):
        plots.learning_curve(_ax(), _history(), "loss", smoothing=1.0)
    with pytest.raises(InputError, match="missing accuracy"):
        plots.learning_curve(_ax(), _history(), "accuracy")


def test_score_distribution_has_its_own_axis_the_interval_and_no_skill() -> None:
    x = [0.80, 0.82, 0.84, 0.86, 0.88, 0.83]
    scores = pd.DataFrame({"repeat": [0] * 6, "fold": range(6), "accuracy": x})
    summ = stats.summarize_metric(scores, "accuracy", repeats=1, n_train=50, n_test=10, confidence=0.95, mode="kfold")
    ax = _ax()
    plots.score_distribution(ax, x, summ, "accuracy", run_name="sonar", baseline=0.53)
    assert list(ax.get_yticks()) == [] and ax.get_ylim() == (-0.5, 0.5), "no count axis under box and points"
    labels = _legend(ax)
    assert any(lab.startswith("95% interval") for lab in labels)
    assert "no skill 0.53" in labels
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1, (
        "the legend sits beside the axes, never over a whisker"
    )
    assert ax.get_title(loc="left") == "sonar: accuracy of 6 held-out scores", "the method is not the title"
    assert "Nadeau" in _footnote(ax)


def test_score_distribution_without_values() -> None:
    ax = _ax()
    plots.score_distribution(ax, [float("nan")], stats.describe([0.5, 0.6]), "accuracy")
    assert any("no finite values" in t.get_text() for t in ax.texts)


def test_qq_plot() -> None:
    ax = _ax()
    plots.qq_plot(ax, [0.1, 0.4, 0.35, 0.8, 0.5], "loss", run_name="r")
    assert len(ax.lines) == 2
    assert "R²" in _legend(ax)[1]
    small = _ax()
    plots.qq_plot(small, [0.1], "loss")
    assert "at least 3" in small.get_title(loc="left")


def test_running_mean_is_labelled_for_what_it_is() -> None:
    ax = _ax()
    running = stats.running_stats([0.8, 0.82, 0.85, 0.81])
    plots.running_mean(
        ax, running, "accuracy", run_name="sonar", headline={"mean": 0.82, "ci_low": 0.79, "ci_high": 0.85}
    )
    assert ax.get_xlabel() == "repeats"
    ax.get_figure().canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    labels = _legend(ax)
    assert labels[0] == "mean accuracy of the first k repeats"
    assert "t interval over those k repeat means" in labels and "headline interval" in labels
    assert "ignores that repeats share rows" in _footnote(ax)


def test_confusion_matrix_shows_counts_rates_and_clean_labels() -> None:
    ax = _ax()
    plots.confusion_matrix(ax, np.array([[900, 10], [6, 4]]), ["'-1'", "'1'"], run_name="mammo", note="Pooled.")
    cells = sorted(t.get_text() for t in ax.texts if t.get_gid() != "footnote")
    assert cells == ["10\n1%", "4\n40%", "6\n60%", "900\n99%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1", "1"], "labels as in the data, without quotes"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["-1 (n=910)", "1 (n=10)"]
    image = ax.images[0].get_array()
    assert image is not None and image[1, 1] == pytest.approx(0.4), "colour by row share: the minority row shows"
    assert "Pooled." in _footnote(ax)
    with pytest.raises(InputError, match="labels must have one name per class"):
        plots.confusion_matrix(_ax(), np.eye(2), ["a"])


def test_predicted_vs_true() -> None:
    ax = _ax()
    plots.predicted_vs_true(ax, [1.0, 2.0, 3.0], [1.1, 1.9, 3.2], "price", run_name="housing")
    assert len(ax.collections) == 1 and len(ax.lines) == 1
    assert ax.get_title(loc="left").startswith("housing: price")


def test_compare_intervals_keeps_full_labels() -> None:
    ax = _ax()
    names = ["ar_baseline_with_a_long_name", "dropout", "single"]
    plots.compare_intervals(
        ax, names, [0.8, 0.82, 0.79], [0.77, 0.8, None], [0.83, 0.84, None], "accuracy", baseline="dropout"
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_xlabel() == "accuracy"
    with pytest.raises(InputError, match="same length"):
        plots.compare_intervals(_ax(), ["a"], [0.1, 0.2], [None], [None], "accuracy")


def test_compare_forest_of_paired_differences() -> None:
    ax = _ax()
    labels = ["sonar_dropout − sonar_baseline", "sonar_hidden − sonar_baseline"]
    plots.compare_forest(ax, labels, [-0.02, 0.01], [-0.08, -0.03], [0.04, 0.05], "accuracy", paired=[True, False])
    assert [t.get_text() for t in ax.get_yticklabels()] == labels[::-1] or [
        t.get_text() for t in ax.get_yticklabels()
    ] == labels
    assert ax.get_xlabel() == "difference in accuracy (first run minus second)"
    assert any(line.get_xdata()[0] == 0.0 for line in ax.lines), "zero is marked"
    assert "Welch" in _footnote(ax)
    with pytest.raises(InputError, match="same length"):
        plots.compare_forest(_ax(), ["a"], [0.1, 0.2], [None], [None], "accuracy")


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
    ax = _ax()
    plots.sweep_metric(ax, table, "lr", "accuracy", run_name="sonar_sweep", higher_is_better=True)
    assert ax.get_xscale() == "log", "a grid spanning a decade or more gets a log axis"
    labels = _legend(ax)
    assert "units=16" in labels and "units=64" in labels
    assert "no better than no skill (1)" in labels, "the point exactly at the baseline is flagged"
    assert "Ringed: 1 point(s)" in _footnote(ax)


def test_sweep_metric_categorical() -> None:
    table = pd.DataFrame({"optimizer": ["adam", "sgd", "rmsprop"], "mean": [0.8, 0.7, 0.78]})
    ax = _ax()
    plots.sweep_metric(ax, table, "optimizer", "accuracy")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd", "rmsprop"]
    assert ax.get_xscale() == "linear" and len(ax.lines) > 0


def test_sweep_curves_prefer_held_out_and_ignore_a_first_epoch_spike() -> None:
    spiky = _history(epochs=8)
    spiky.loc[spiky["epoch"] == 1, ["loss", "test_loss"]] = 50.0
    ax = _ax()
    plots.sweep_curves(ax, {"lr=0.1": spiky, "lr=0.01": _history(runs=1, epochs=8)}, "loss", run_name="sw")
    assert ax.get_ylabel() == "test_loss"
    assert ax.get_ylim()[1] < 5, "one first-epoch loss must not set the y scale"
    assert _legend(ax) == ["lr=0.1", "lr=0.01"]
    assert "from epoch 2 on" in _footnote(ax)


def test_sweep_curves_need_at_least_one_point() -> None:
    with pytest.raises(InputError, match="at least one label"):
        plots.sweep_curves(_ax(), {}, "loss")
    with pytest.raises(InputError, match="which must be"):
        plots.sweep_curves(_ax(), {"a": _history()}, "loss", which="best")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["ci", "naive", "precision"])
def test_score_distribution_draws_any_named_interval(prefix: str) -> None:
    block = {"mean": 0.8, f"{prefix}_low": 0.75, f"{prefix}_high": 0.85, "confidence": 0.9, "method": "m"}
    ax = _ax()
    plots.score_distribution(ax, [0.78, 0.8, 0.82], block, "accuracy")
    assert "90% interval 0.75 to 0.85" in _legend(ax)
