"""Comparison figures (dlrun.report.plots.compare): estimates and differences of compared runs."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from plot_helpers import footnote_of, new_ax

from dlrun.errors import InputError
from dlrun.report import plots


def test_compare_intervals_keeps_full_labels() -> None:
    ax = new_ax()
    names = ["ar_baseline_with_a_long_name", "dropout", "single"]
    plots.compare_intervals(
        ax, names, [0.8, 0.82, 0.79], [0.77, 0.8, None], [0.83, 0.84, None], "accuracy", baseline="dropout"
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_xlabel() == "accuracy"
    with pytest.raises(InputError, match="same length"):
        plots.compare_intervals(new_ax(), ["a"], [0.1, 0.2], [None], [None], "accuracy")


def test_compare_forest_of_paired_differences() -> None:
    ax = new_ax()
    labels = ["sonar_dropout − sonar_baseline", "sonar_hidden − sonar_baseline"]
    plots.compare_forest(ax, labels, [-0.02, 0.01], [-0.08, -0.03], [0.04, 0.05], "accuracy", paired=[True, False])
    assert [t.get_text() for t in ax.get_yticklabels()] == labels[::-1] or [
        t.get_text() for t in ax.get_yticklabels()
    ] == labels
    assert ax.get_xlabel() == "difference in accuracy (first run minus second)"
    assert any(line.get_xdata()[0] == 0.0 for line in ax.lines), "zero is marked"
    assert "Welch" in footnote_of(ax)
    with pytest.raises(InputError, match="same length"):
        plots.compare_forest(new_ax(), ["a"], [0.1, 0.2], [None], [None], "accuracy")


def _comparison(forest: pd.DataFrame, pairwise: list[dict]) -> SimpleNamespace:
    table = pd.DataFrame({"mean": [0.8, 0.7], "ci_low": [0.75, None], "ci_high": [0.85, None]})
    return SimpleNamespace(metric="accuracy", confidence=0.9, table=table, forest=forest, pairwise=pairwise, best="b")


def test_compare_estimates_draws_the_table_with_the_given_labels() -> None:
    ax = new_ax()
    plots.compare_estimates(ax, _comparison(pd.DataFrame(), []), ["run a", "run b"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["run a", "run b"]
    assert ax.get_xlabel() == "accuracy"


@pytest.mark.parametrize("three_runs", [True, False])
def test_difference_rows_from_the_forest_or_the_tested_pairs(three_runs: bool) -> None:
    forest = pd.DataFrame(
        [{"label": "a", "reference": "b", "diff": -0.1, "ci_low": -0.2, "ci_high": 0.0, "paired": True}]
    )
    pairwise = [
        {"a": "a", "b": "b", "test": {"mean_diff": -0.1, "ci_low": -0.2, "ci_high": 0.0, "method": "t"}, "paired": 1},
        {"a": "a", "b": "c", "test": None},
    ]
    rows, note = plots.difference_rows(_comparison(forest if three_runs else pd.DataFrame(), pairwise))
    assert rows == [("a \u2212 b", -0.1, -0.2, 0.0, True if three_runs else 1)]
    assert ("adjusted over all pairs" in note) is three_runs and (note == "t") is not three_runs
    ax = new_ax()
    plots.compare_differences(ax, rows, "accuracy", confidence=0.9, note=note)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a \u2212 b"]
    assert "90% interval" in footnote_of(ax)
