"""Racing: train a batch's folds in stages and stop a trial that is worse than the best on the same folds.

A trial is stopped when the Nadeau–Bengio corrected paired interval of its per-fold differences
to the best trial (finished, or live in this batch) lies entirely on the worse side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlrun.errors import DlrunError
from dlrun.evaluation import stats
from dlrun.protocol.splits import Fold
from dlrun.runs.packing import TrialWork
from dlrun.runs.search.study import fold_scores, trial_dir
from dlrun.spec.schema import SearchSpec


def stages_of(folds: list[Fold], settings: SearchSpec) -> list[list[Fold]]:
    """The folds trained before each racing decision: one stage per repeat, or ``racing_stages`` chunks."""
    if not settings.racing:
        return [folds]
    repeats = sorted({f.repeat for f in folds})
    if len(repeats) > 1:
        return [[f for f in folds if f.repeat == r] for r in repeats]
    n = min(settings.racing_stages, len(folds) // 2)
    if n < 2:
        return [folds]
    return [list(chunk) for chunk in np.array_split(np.array(folds, dtype=object), n)]


def race(
    study: Any,
    live: list[TrialWork],
    search_dir: Path,
    metric: str,
    higher: bool,
    n_train: float,
    n_test: float,
    conf: float,
    stage: int,
    stages: list[list[Fold]],
) -> list[tuple[TrialWork, str]]:
    """Live trials whose score so far is worse than the best's on the same folds by a corrected interval.

    The best is the trial (finished, or live in this batch) with the best mean over the folds run
    so far; each live trial is compared with it by the Nadeau–Bengio corrected paired t-interval
    of the per-fold differences.
    """
    from optuna.trial import TrialState

    keys = [f.key for st in stages[: stage + 1] for f in st]
    cands: dict[int, dict[tuple[int, int], float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cands[t.number] = fold_scores(trial_dir(search_dir, t.number), metric)
    for w in live:
        cands[w.number] = fold_scores(w.path, metric)
    usable = {n: s for n, s in cands.items() if all(k in s for k in keys)}
    if len(usable) < 2:
        return []

    def mean(n: int) -> float:
        return float(np.nanmean([usable[n][k] for k in keys]))

    best = max(usable, key=mean) if higher else min(usable, key=mean)
    out = []
    for w in live:
        if w.number == best or w.number not in usable:
            continue
        a = [usable[w.number][k] for k in keys]
        b = [usable[best][k] for k in keys]
        try:
            test = stats.corrected_paired_ttest(a, b, n_train, n_test, conf)
        except DlrunError:
            continue
        lo, hi = test.get("ci_low"), test.get("ci_high")
        if lo is None or hi is None:
            continue
        worse = hi < 0 if higher else lo > 0
        if worse:
            out.append(
                (
                    w,
                    f"after {len(keys)} of {sum(len(s) for s in stages)} folds (stage {stage + 1}): {metric} "
                    f"{test['mean_diff']:+.4f} against trial {best} ({int(round(conf * 100))}% corrected "
                    f"interval {lo:+.4f} to {hi:+.4f})",
                )
            )
    return out
