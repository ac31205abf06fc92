"""Matplotlib drawings for run reports, by figure family.

Every function takes a Matplotlib ``Axes`` first and pure data (tables, arrays, dicts), draws
on it and returns None. This package never saves files, never chooses file names and never
selects a backend: the caller owns the figure and decides where it goes.

- :mod:`~dlrun.report.plots.style`: palette, titles, footnotes (shared by all);
- :mod:`~dlrun.report.plots.curves`: per-epoch learning curves of one run;
- :mod:`~dlrun.report.plots.scores`: held-out scores, Q-Q, running estimate, confusion matrix,
  predictions against targets;
- :mod:`~dlrun.report.plots.compare`: estimates and differences of compared runs;
- :mod:`~dlrun.report.plots.sweep`: a sweep's estimates and curves.
"""

from __future__ import annotations

from dlrun.report.plots.compare import (
    compare_differences,
    compare_estimates,
    compare_forest,
    compare_intervals,
    difference_rows,
)
from dlrun.report.plots.curves import HELD_OUT_LABEL, learning_curve
from dlrun.report.plots.scores import confusion_matrix, predicted_vs_true, qq_plot, running_mean, score_distribution
from dlrun.report.plots.style import (
    BASELINE_COLOR,
    ESTIMATE_COLOR,
    FLAG_COLOR,
    OKABE_ITO,
    TEST_COLOR,
    TRAIN_COLOR,
    VAL_COLOR,
    clean_label,
    footnote,
)
from dlrun.report.plots.sweep import spans_decade, sweep_curves, sweep_metric

__all__ = [
    "BASELINE_COLOR",
    "ESTIMATE_COLOR",
    "FLAG_COLOR",
    "HELD_OUT_LABEL",
    "OKABE_ITO",
    "TEST_COLOR",
    "TRAIN_COLOR",
    "VAL_COLOR",
    "clean_label",
    "compare_differences",
    "compare_estimates",
    "compare_forest",
    "compare_intervals",
    "confusion_matrix",
    "difference_rows",
    "footnote",
    "learning_curve",
    "predicted_vs_true",
    "qq_plot",
    "running_mean",
    "score_distribution",
    "spans_decade",
    "sweep_curves",
    "sweep_metric",
]
