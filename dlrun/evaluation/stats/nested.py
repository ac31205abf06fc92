"""The nested cross-validation interval of Bates, Hastie & Tibshirani (2023).

"Cross-validation: what does it estimate and how well does it do it?" (JASA): the fold scores of
one cross-validation are correlated in a way no formula in the scores alone captures, so the
mean squared error of the CV point estimate is estimated from inner cross-validations run inside
each outer fold. For every repeat r and outer fold k, the model trained without fold k is scored on
fold k (``e_out``), and for every other fold j the model trained without folds k and j is scored on
fold j (``e_in``, the inner (K − 1)-fold CV of the rows outside fold k; the model of the pair {k, j}
serves both k's and j's inner CV). Then

* MSE estimate: mean over (r, k) of ``(ē_in − ē_out)² − var(e_out)/|I_k|``;
* point estimate: the mean of every inner value, less the bias from training on K − 2 folds instead
  of K − 1, ``(ē_in − ē_cv)·(1 + ((K − 2)/K)^1.5)`` with ē_cv the outer (plain K-fold) mean;
* standard error ``sd(e_in)/√n`` times the inflation ``√MSE/(sd(e_in)/√n_sub)``, n_sub = ⌊n(K − 1)/K⌋,
  kept within [1, √K]; a normal interval.

This follows the authors' R package ``nestedcv`` (``nested_cv``, ``nested_cv_helper``). It applies to
metrics that are means of per-row values (accuracy as the 0/1 indicator of a correct prediction,
error rate, log loss, absolute or squared error), given here as those per-row values; the sign does
not matter. It costs R·(K + K(K − 1)/2) models, which the stacked engine trains together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation.stats.common import _check_confidence, format_confidence, scipy_stats

#: Metrics that are means of per-row values, for which the nested interval is defined.
PER_ROW_METRICS: tuple[str, ...] = ("accuracy", "log_loss", "mae", "mse")


def nested_models(folds: int, repeats: int) -> int:
    """Models one nested cross-validation trains: per repeat K outer and K(K − 1)/2 inner ones."""
    return repeats * (folds + folds * (folds - 1) // 2)


def nested_cv_interval(values: pd.DataFrame, n_rows: int, confidence: float = 0.95) -> dict[str, Any]:
    """The nested-CV estimate and interval from per-row values of the outer and inner models.

    Args:
        values: One row per (held-out data row, model) with columns ``repeat``, ``outer`` (the outer
            fold k), ``fold`` (the fold j the value is on) and ``value`` (the row's loss or score).
            ``fold == outer``: the outer model (trained without fold k) on fold k; ``fold != outer``:
            the inner model trained without folds k and j, on fold j. Every repeat must have every
            (outer, fold) pair.
        n_rows: Rows of the data set, n.
        confidence: Coverage asked for.

    Returns:
        Dict with ``mean`` (bias-corrected estimate), ``raw_mean`` (mean of the inner values),
        ``cv_mean`` (mean of the outer values: plain K-fold CV), ``bias``, ``mse`` (estimated mean
        squared error of the CV estimate), ``inflation``, ``se``, ``ci_low``, ``ci_high``,
        ``confidence``, ``folds``, ``repeats``, ``n_models``, ``kind`` (``nested_cv_interval``),
        ``label`` and ``method``.

    Raises:
        InputError: A column is missing, fewer than 3 folds, or a repeat lacks a pair.
    """
    c = _check_confidence(confidence)
    missing = [col for col in ("repeat", "outer", "fold", "value") if col not in values.columns]
    if missing:
        raise InputError(f"values must have columns repeat, outer, fold and value; missing {', '.join(missing)}")
    folds = sorted(pd.unique(values["fold"]))
    k = len(folds)
    if k < 3:
        raise InputError(f"nested cross-validation needs at least 3 folds; got {k}")
    a_terms, b_terms, inner_all = [], [], []
    repeats = sorted(pd.unique(values["repeat"]))
    for rep in repeats:
        v = values[values["repeat"] == rep]
        groups = {key: g["value"].to_numpy(dtype=np.float64) for key, g in v.groupby(["outer", "fold"])}
        for outer in folds:
            e_out = groups.get((outer, outer))
            inner = [groups.get((outer, j)) for j in folds if j != outer]
            if e_out is None or e_out.size < 2 or any(e is None or e.size == 0 for e in inner):
                raise InputError(f"repeat {rep} outer fold {outer} lacks its outer or inner values")
            e_in = np.concatenate([e for e in inner if e is not None])
            a_terms.append((e_in.mean() - e_out.mean()) ** 2)
            b_terms.append(e_out.var(ddof=1) / e_out.size)
        # each inner model is scored on both of its held-out folds: the pair {k, j} gives (k, j) and (j, k)
        inner_all.append(v.loc[v["outer"] != v["fold"], "value"].to_numpy(dtype=np.float64))
    e_inner = np.concatenate(inner_all)
    outer_vals = values.loc[values["outer"] == values["fold"], "value"].to_numpy(dtype=np.float64)
    raw_mean, cv_mean = float(e_inner.mean()), float(outer_vals.mean())
    bias = (raw_mean - cv_mean) * (1.0 + ((k - 2.0) / k) ** 1.5)
    mean = raw_mean - bias
    mse = float(np.mean(a_terms) - np.mean(b_terms))
    sd = float(e_inner.std(ddof=1))
    n_sub = math.floor(n_rows * (k - 1) / k)
    naive_sub = sd / math.sqrt(n_sub) if sd > 0 else 0.0
    inflation = math.sqrt(max(0.0, mse)) / naive_sub if naive_sub > 0 else 1.0
    inflation = min(max(inflation, 1.0), math.sqrt(k))
    se = sd / math.sqrt(n_rows) * inflation
    z = float(scipy_stats().norm.ppf(0.5 + c / 2.0))
    pct = format_confidence(c)
    r = len(repeats)
    return {
        "mean": mean,
        "raw_mean": raw_mean,
        "cv_mean": cv_mean,
        "bias": bias,
        "mse": mse,
        "inflation": inflation,
        "se": se,
        "ci_low": mean - z * se,
        "ci_high": mean + z * se,
        "confidence": c,
        "folds": k,
        "repeats": r,
        "n_models": nested_models(k, r),
        "kind": "nested_cv_interval",
        "label": f"{pct} nested cross-validation interval (Bates, Hastie & Tibshirani 2023)",
        "method": (
            f"nested cross-validation (Bates, Hastie & Tibshirani 2023) over {r} repeat{'s' if r != 1 else ''} of "
            f"{k} folds, {nested_models(k, r)} models: mean of the inner values less the bias of training on "
            f"{k - 2} folds ({bias:+.4g}); se = sd/\u221an \u00d7 inflation {inflation:.3g} (from the estimated mean "
            f"squared error of the CV estimate, kept in [1, \u221aK]); {pct} normal interval"
        ),
    }
