"""Learning curves (dlrun.report.plots.curves): every model, the mean and its band, early stops."""

from __future__ import annotations

import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from plot_helpers import footnote_of, history, legend_of, new_ax

from dlrun.errors import InputError
from dlrun.report import plots


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_learning_curve_draws_train_validation_and_held_out(smoothing: float) -> None:
    ax = new_ax()
    plots.learning_curve(ax, history(), "loss", run_name="sonar", smoothing=smoothing)
    runs = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(c.get_segments()) for c in runs] == [3, 3, 3], "every model drawn thinly, for each series"
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3, "a band around each mean"
    labels = legend_of(ax)
    assert labels == [
        "train: mean of 3 models",
        "validation: mean of 3 models",
        "held-out (not used for training decisions): mean of 3 models",
    ]
    colors = {to_hex(line.get_color()) for line in ax.lines if line.get_label() in labels}
    assert colors <= {c.lower() for c in plots.OKABE_ITO}, "a colour-blind-safe palette"
    assert ax.get_title(loc="left") == "sonar: loss per epoch"


def test_learning_curve_mean_ends_where_the_first_model_stopped() -> None:
    ax = new_ax()
    plots.learning_curve(ax, history(epochs=6), "loss")
    mean = next(line for line in ax.lines if line.get_label() == "train: mean of 3 models")
    assert max(mean.get_xdata()) == 5, "no mean over a shrinking set of models"
    assert "drawn only to epoch 5" in footnote_of(ax)


def test_learning_curve_one_model_has_integer_epochs_and_no_mean_of_one() -> None:
    ax = new_ax()
    h = history(runs=1, epochs=4, held_out=False).drop(columns=["repeat", "fold"])
    plots.learning_curve(ax, h, "loss", units="min-max-scaled quality")
    assert legend_of(ax) == ["train", "validation"]
    assert len(ax.collections) == 0
    ax.get_figure().canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks), f"epoch ticks must be whole numbers: {ticks}"
    assert ax.get_ylabel() == "loss (min-max-scaled quality)"


def test_learning_curve_errors() -> None:
    with pytest.raises(InputError, match="smoothing must be"):
        plots.learning_curve(new_ax(), history(), "loss", smoothing=1.0)
    with pytest.raises(InputError, match="missing accuracy"):
        plots.learning_curve(new_ax(), history(), "accuracy")
