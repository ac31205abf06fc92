"""Summary statistics and significance tests for resampled model scores.

Every function here is pure (no I/O) and returns plain JSON-serialisable values: Python floats and
ints, with ``None`` wherever a number does not exist (never NaN or infinity, which are not valid JSON).

* :mod:`.intervals` -- intervals for a mean on a scale that respects the metric's bounds, the
  independent-draws summary ``describe``, the headline sentence, running intervals.
* :mod:`.resampled` -- the headline of a cross-validation run: ``nadeau_bengio`` (the corrected
  resampled variance, its fold-correlation factor calibrated in ``benchmarks/calibration.py``)
  and ``summarize_metric`` (every block of one metric, each naming its method and estimand).
* :mod:`.tests` -- tests of a difference between two models: corrected paired, paired (seeds on one
  split), Bayesian correlated (Corani & Benavoli 2015), Welch.
* :mod:`.multiple` -- many runs: every pair, Holm's step-down with Shaffer's constraints.
* :mod:`.sequential` -- rules that add repeats until a statement holds: the threshold that keeps
  ``--until-decided`` at its level, and the half-width floor of ``repeats: auto``.

Only an interval whose coverage was checked in ``benchmarks/calibration.py`` is called a confidence
interval; every block carries a ``kind`` and a ``label`` saying what its spread measures.
"""

from dlrun.evaluation.metrics import METRIC_SCALES, metric_scale
from dlrun.evaluation.stats import nested, sequential
from dlrun.evaluation.stats.common import (
    CV_MODES,
    MIN_INFORMATIVE_DF,
    decimals_for,
    format_confidence,
    format_number,
    format_p,
)
from dlrun.evaluation.stats.intervals import (
    bounded_interval,
    describe,
    headline_sentence,
    interval_column_title,
    interval_of,
    interval_short_name,
    running_stats,
)
from dlrun.evaluation.stats.multiple import PROCEDURE, compare_with_best, holm, procedure_text, shaffer
from dlrun.evaluation.stats.resampled import (
    ESTIMAND,
    FOLD_RHO_FACTOR,
    STUDIED_DESIGNS,
    adjust_fold_scores,
    corrected_label,
    nadeau_bengio,
    studied,
    summarize_metric,
)
from dlrun.evaluation.stats.tests import (
    WELCH_WARNING,
    bayesian_correlated_ttest,
    corrected_paired_ttest,
    min_detectable_difference,
    paired_ttest,
    welch_ttest,
)

__all__ = [
    "CV_MODES",
    "ESTIMAND",
    "FOLD_RHO_FACTOR",
    "METRIC_SCALES",
    "MIN_INFORMATIVE_DF",
    "PROCEDURE",
    "STUDIED_DESIGNS",
    "WELCH_WARNING",
    "adjust_fold_scores",
    "bayesian_correlated_ttest",
    "bounded_interval",
    "compare_with_best",
    "corrected_label",
    "corrected_paired_ttest",
    "decimals_for",
    "describe",
    "format_confidence",
    "format_number",
    "format_p",
    "headline_sentence",
    "holm",
    "interval_column_title",
    "interval_of",
    "interval_short_name",
    "metric_scale",
    "min_detectable_difference",
    "nadeau_bengio",
    "nested",
    "paired_ttest",
    "procedure_text",
    "running_stats",
    "sequential",
    "shaffer",
    "studied",
    "summarize_metric",
    "welch_ttest",
]
