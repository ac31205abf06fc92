"""``dlrun search``: hyperparameter search scored by honest cross-validation, resumable, raced, nested.

The package by concern: :mod:`.optimize` (the ask-train-tell loop, :func:`run_search`),
:mod:`.study` (Optuna's journal, recovery after a crash, telling), :mod:`.racing` (stopping
trials worse than the best), :mod:`.outputs` (tables, best config, markdown, plots) and
:mod:`.nested` (nested cross-validation, :func:`run_nested`). Training many trials at once is
:mod:`dlrun.runs.packing`, shared with sweeps.
"""

from dlrun.runs.packing import Programs, TrialWork, train_trials
from dlrun.runs.search.nested import nested_markdown, run_nested
from dlrun.runs.search.optimize import HELPER_MIN_TRIALS, run_search
from dlrun.runs.search.outputs import SearchOutcome, compare_top, search_markdown
from dlrun.store.layout import JOURNAL, SEARCH_STATE

__all__ = [
    "HELPER_MIN_TRIALS",
    "JOURNAL",
    "SEARCH_STATE",
    "Programs",
    "SearchOutcome",
    "TrialWork",
    "compare_top",
    "nested_markdown",
    "run_nested",
    "run_search",
    "search_markdown",
    "train_trials",
]
