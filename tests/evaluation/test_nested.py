"""The nested cross-validation interval, checked on ordinary least squares where the truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.evaluation.stats.nested import nested_cv_interval, nested_models

P, SIGMA = 5, 1.0


def _ols_nested(rng: np.random.Generator, n: int, k: int, repeats: int) -> tuple[pd.DataFrame, float]:
    """Per-row squared errors of every outer and inner OLS model, and Err_XY of the fit on all n rows."""
    beta = np.ones(P)
    x = rng.standard_normal((n, P))
    y = x @ beta + SIGMA * rng.standard_normal(n)

    def fit(rows: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(x[rows], y[rows], rcond=None)[0]

    parts = []
    for rep in range(repeats):
        fold_of = rng.permutation(np.arange(n) % k)
        for a in range(k):
            for b in range(a, k):
                b_hat = fit(np.flatnonzero((fold_of != a) & (fold_of != b)))
                for outer, fold in {(a, b), (b, a)}:
                    on = np.flatnonzero(fold_of == fold)
                    loss = (y[on] - x[on] @ b_hat) ** 2
                    parts.append(pd.DataFrame({"repeat": rep, "outer": outer, "fold": fold, "value": loss}))
    err_xy = SIGMA**2 + float(np.sum((fit(np.arange(n)) - beta) ** 2))
    return pd.concat(parts, ignore_index=True), err_xy


def test_shape_of_the_result() -> None:
    values, _ = _ols_nested(np.random.default_rng(0), 60, 4, 2)
    out = nested_cv_interval(values, 60)
    assert out["n_models"] == nested_models(4, 2) == 2 * (4 + 6)
    assert out["ci_low"] < out["mean"] < out["ci_high"] and 1.0 <= out["inflation"] <= 2.0
    assert out["kind"] == "nested_cv_interval" and "Bates, Hastie & Tibshirani" in out["method"]
    assert out["raw_mean"] > out["cv_mean"]  # inner models train on fewer rows: larger errors
    with pytest.raises(InputError, match="lacks its outer or inner values"):
        nested_cv_interval(values[~((values["outer"] == 1) & (values["fold"] == 2))], 60)
    with pytest.raises(InputError, match="at least 3 folds"):
        nested_cv_interval(values[values["fold"] < 2], 60)
    assert "mae" in stats.nested.PER_ROW_METRICS


def test_covers_the_error_of_least_squares() -> None:
    rng = np.random.default_rng(1)
    n, k = 80, 5
    err = SIGMA**2 * (1 + P / (n - P - 1))  # expected test MSE of OLS on n rows (Gaussian design)
    hits_err = hits_xy = 0
    datasets = 60
    for _ in range(datasets):
        values, err_xy = _ols_nested(rng, n, k, 2)
        out = nested_cv_interval(values, n)
        hits_err += out["ci_low"] <= err <= out["ci_high"]
        hits_xy += out["ci_low"] <= err_xy <= out["ci_high"]
    assert hits_err / datasets >= 0.8 and hits_xy / datasets >= 0.8
