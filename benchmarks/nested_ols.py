"""Nested-CV interval beside the corrected headline, on least squares, where both estimands are known.

Ordinary least squares on y = x·β + ε (5 Gaussian features, σ = 1, n = 80 or 200, 5-fold, 2 repeats
for the nested interval): the expected test MSE of a fit on m rows is σ²(1 + p/(m − p − 1)) (``Err``),
and the error of the fit on this very data set is σ² + ‖β̂ − β‖² (``Err_XY``). For each data set the
nested interval (``stats.nested``, Bates, Hastie & Tibshirani 2023) and dlrun's headline
(``stats.nadeau_bengio`` over the outer folds' MSE of all repeats) are checked against ``Err`` at the
folds' training size, ``Err`` at n and ``Err_XY``. Linear least squares is not a network: the figures
say how each interval behaves for a stable learner, not what it does for dlrun's models.

``python benchmarks/nested_ols.py [--datasets N]`` prints the table (about a minute for 1,000).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from dlrun.evaluation import stats
from dlrun.evaluation.stats.nested import nested_cv_interval

P, SIGMA, K, R = 5, 1.0, 5, 2


def one(rng: np.random.Generator, n: int) -> dict[str, float]:
    beta = np.ones(P)
    x = rng.standard_normal((n, P))
    y = x @ beta + SIGMA * rng.standard_normal(n)

    def fit(rows: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(x[rows], y[rows], rcond=None)[0]

    parts, fold_mse, reps = [], [], []
    for rep in range(R):
        fold_of = rng.permutation(np.arange(n) % K)
        for a in range(K):
            for b in range(a, K):
                b_hat = fit(np.flatnonzero((fold_of != a) & (fold_of != b)))
                for outer, fold in {(a, b), (b, a)}:
                    on = np.flatnonzero(fold_of == fold)
                    loss = (y[on] - x[on] @ b_hat) ** 2
                    parts.append(pd.DataFrame({"repeat": rep, "outer": outer, "fold": fold, "value": loss}))
                    if a == b:
                        fold_mse.append(float(loss.mean()))
                        reps.append(rep)
    nested = nested_cv_interval(pd.concat(parts, ignore_index=True), n)
    m = n * (K - 1) / K
    head = stats.nadeau_bengio(fold_mse, m, n / K, metric="mse", repeats=np.array(reps))
    truths = {
        "Err at the folds' size": SIGMA**2 * (1 + P / (m - P - 1)),
        "Err at n": SIGMA**2 * (1 + P / (n - P - 1)),
        "Err_XY": SIGMA**2 + float(np.sum((fit(np.arange(n)) - beta) ** 2)),
    }
    out = {}
    for name, t in truths.items():
        out[f"nested|{name}"] = float(nested["ci_low"] <= t <= nested["ci_high"])
        out[f"corrected|{name}"] = float(head["ci_low"] <= t <= head["ci_high"])
    out["nested|width"] = nested["ci_high"] - nested["ci_low"]
    out["corrected|width"] = head["ci_high"] - head["ci_low"]
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in (80, 200):
        res = pd.DataFrame([one(rng, n) for _ in range(args.datasets)]).mean()
        for interval in ("corrected", "nested"):
            cells = {str(k).split("|")[1]: v for k, v in res.items() if str(k).startswith(interval)}
            rows.append({"n": n, "interval": interval, **cells})
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return table


if __name__ == "__main__":
    main()
