"""Family-wise error and power of three ways to compare many cross-validated runs.

``dlrun compare A B C …`` and search's top-trials table must say which runs are worse than the best
without a false claim more often than α = 0.05 in all. This study simulates the paired fold scores of
m runs on identical folds and applies dlrun's own pairwise test (the Nadeau–Bengio corrected paired
t-test: variance (1/J + n_test/n_train)·s_d², J − 1 df) under three procedures:

* ``best_vs_rest_holm`` -- pick the run with the best mean, test it against each other run, Holm over
  those m − 1 tests (dlrun up to this study). The family is chosen by the same scores it tests.
* ``mcb`` -- Hsu's (1984) multiple comparisons with the best: run i is declared worse than run j when
  x̄_j − x̄_i > d·se_ij, d the one-sided Dunnett quantile for m − 1 comparisons (correlation 1/2,
  J − 1 df, computed by Monte Carlo).
* ``holm_all_pairs`` -- every pair tested, Holm over all m(m − 1)/2 of them.
* ``shaffer_all_pairs`` -- the same with Shaffer's (1986) S1 multipliers: once a pair is rejected,
  fewer pairwise equalities can still hold together, so later p-values are multiplied by less
  (dlrun's choice: it holds the level as Holm does, with more power).

**Score model.** Run i's J fold scores are x_ij = μ_i + √ρ·u_i + √(1 − ρ)·e_ij with u_i, e_ij
independent N(0, 1): every fold difference of two runs then has variance 2 and the same correlation
ρ with every other (an exchangeable approximation of k-fold, whose scores correlate through shared
training rows; a fold effect common to all runs would cancel in every difference and is left out).
With ρ/(1 − ρ) = c·n_test/n_train the corrected test is exact for c = 1 (its t statistic is then
Student t with J − 1 df) and conservative for c < 1 (dlrun's headline calibration found c ≈ 1/2 at
single k-fold). Designs: 10-fold (J = 10, n_test/n_train = 1/9) and 5×10 (J = 50, the same ratio).

**Figures.** ``fwer``: with all μ_i equal, the chance of at least one claim "run i is worse than run
j". ``power_all``/``power_any``: with run 0 better by δ = 3 standard errors of a pairwise mean
difference (a single two-sided test at α = 0.05 then has power ≈ 0.85), the chance that every other
run / at least one other run is declared worse than run 0; ``false_claims``: in that setting, the
chance of a wrong claim (a run declared worse than one that is not truly better).

``python benchmarks/multiple_comparisons.py`` (about a minute on one core) writes the
``multiple_comparisons`` section of ``benchmarks/calibration_results.json``; ``--quick`` runs a few
hundred replications and writes nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from dlrun.evaluation.stats.multiple import shaffer_multipliers

ALPHA = 0.05
PROCEDURES = ("best_vs_rest_holm", "mcb", "holm_all_pairs", "shaffer_all_pairs")
#: (name, J, n_test/n_train)
DESIGNS = (("10-fold", 10, 1.0 / 9.0), ("5x10", 50, 1.0 / 9.0))
RUNS = (3, 5, 10)
EFFECT_SE = 3.0
RESULTS = Path(__file__).with_name("calibration_results.json")


def _scores(rng: np.random.Generator, reps: int, m: int, j: int, rho: float, mu: np.ndarray) -> np.ndarray:
    """Simulated fold scores, shape ``(reps, m, j)``."""
    u = rng.standard_normal((reps, m, 1))
    e = rng.standard_normal((reps, m, j))
    return mu[None, :, None] + np.sqrt(rho) * u + np.sqrt(1.0 - rho) * e


def _pair_t(x: np.ndarray, ratio: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Corrected paired t of x_a − x_b for every pair a < b: shape ``(reps, P)``."""
    m, j = x.shape[1], x.shape[2]
    pairs = list(combinations(range(m), 2))
    ia = np.array([a for a, _ in pairs])
    ib = np.array([b for _, b in pairs])
    d = x[:, ia, :] - x[:, ib, :]
    se = np.sqrt((1.0 / j + ratio) * d.var(axis=2, ddof=1))
    return d.mean(axis=2) / se, pairs


def _holm_reject(p: np.ndarray, alpha: float, multipliers: np.ndarray | None = None) -> np.ndarray:
    """Holm's step-down rejections, row by row: ``p`` shape ``(reps, n)`` → bool of the same shape
    (``multipliers``: Shaffer's in place of Holm's n − i + 1)."""
    n = p.shape[1]
    mult = n - np.arange(n) if multipliers is None else multipliers
    order = np.argsort(p, axis=1)
    sorted_p = np.take_along_axis(p, order, axis=1)
    adjusted = np.maximum.accumulate(np.minimum(1.0, sorted_p * mult), axis=1)
    reject = np.empty_like(p, dtype=bool)
    np.put_along_axis(reject, order, adjusted < alpha, axis=1)
    return reject


def dunnett_one_sided(m: int, df: int, alpha: float, rng: np.random.Generator, draws: int = 400_000) -> float:
    """One-sided Dunnett quantile: the 1 − α point of max_j (Z_j − Z_0)/√2 / √(χ²_df/df), j = 1..m − 1."""
    z = rng.standard_normal((draws, m))
    contrasts = (z[:, 1:] - z[:, :1]) / np.sqrt(2.0)
    denom = np.sqrt(rng.chisquare(df, draws) / df)
    return float(np.quantile(contrasts.max(axis=1) / denom, 1.0 - alpha))


def claims(t: np.ndarray, pairs: list[tuple[int, int]], means: np.ndarray, df: int, d_mcb: float) -> dict[str, Any]:
    """For each procedure, a bool array ``(reps, m, m)``: entry [r, i, j] = "run i declared worse than run j"."""
    reps, m = means.shape
    p = 2.0 * sps.t.sf(np.abs(t), df)
    out: dict[str, np.ndarray] = {}
    # t[a<b] is the statistic of x_a − x_b; tt[i, j] that of x_j − x_i ("j beats i")
    tt = np.zeros((reps, m, m))
    pp = np.ones((reps, m, m))
    for k, (a, b) in enumerate(pairs):
        tt[:, b, a] = t[:, k]
        tt[:, a, b] = -t[:, k]
        pp[:, a, b] = pp[:, b, a] = p[:, k]
    # best vs the rest, Holm over the m − 1 tests with the observed best
    best = means.argmax(axis=1)
    rows = np.arange(reps)
    p_best = pp[rows, :, best]  # (reps, m): p of run i vs the best
    p_best[rows, best] = np.inf
    rej = _holm_reject(p_best, ALPHA) & (np.arange(m)[None, :] != best[:, None])
    c = np.zeros((reps, m, m), dtype=bool)
    c[rows[:, None], np.arange(m)[None, :], best[:, None]] = rej
    out["best_vs_rest_holm"] = c
    out["mcb"] = tt > d_mcb
    for name, mult in (("holm_all_pairs", None), ("shaffer_all_pairs", np.array(shaffer_multipliers(m)))):
        rej_all = _holm_reject(p, ALPHA, mult)
        c = np.zeros((reps, m, m), dtype=bool)
        for k, (a, b) in enumerate(pairs):
            c[:, a, b] = rej_all[:, k] & (t[:, k] < 0)
            c[:, b, a] = rej_all[:, k] & (t[:, k] > 0)
        out[name] = c
    return out


def simulate(reps: int, seed: int, c_factor: float = 1.0) -> list[dict[str, Any]]:
    """One row per (design, m, procedure): fwer, power_all, power_any, false_claims."""
    rng = np.random.default_rng(seed)
    rows = []
    for design, j, ratio in DESIGNS:
        rho_ratio = c_factor * ratio
        rho = rho_ratio / (1.0 + rho_ratio)
        se_pair = float(np.sqrt(2.0 * (rho + (1.0 - rho) / j)))
        for m in RUNS:
            d_mcb = dunnett_one_sided(m, j - 1, ALPHA, rng)
            found: dict[str, dict[str, float]] = {p: {} for p in PROCEDURES}
            for scenario in ("null", "one_better"):
                mu = np.zeros(m)
                if scenario == "one_better":
                    mu[0] = EFFECT_SE * se_pair
                x = _scores(rng, reps, m, j, rho, mu)
                t, pairs = _pair_t(x, ratio)
                by = claims(t, pairs, x.mean(axis=2), j - 1, d_mcb)
                truly_worse = mu[:, None] < mu[None, :]  # [i, j]: run i truly worse than run j
                for proc, c in by.items():
                    wrong = (c & ~truly_worse[None]).any(axis=(1, 2))
                    if scenario == "null":
                        found[proc]["fwer"] = float(wrong.mean())
                    else:
                        beaten = c[:, 1:, :].any(axis=2) if proc == "mcb" else c[:, 1:, 0]
                        found[proc].update(
                            power_all=float(beaten.all(axis=1).mean()),
                            power_any=float(beaten.any(axis=1).mean()),
                            false_claims=float(wrong.mean()),
                        )
            for proc in PROCEDURES:
                rows.append({"design": design, "J": j, "c": c_factor, "runs": m, "procedure": proc, **found[proc]})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few hundred replications; writes nothing by default")
    ap.add_argument("--reps", type=int, default=None, help="replications per setting (default 20,000; quick 400)")
    ap.add_argument("--seed", type=int, default=20231)
    ap.add_argument("--out", type=Path, default=None, help="results JSON to update (default: calibration_results.json)")
    args = ap.parse_args(argv)
    reps = args.reps or (400 if args.quick else 20_000)
    start = time.perf_counter()
    rows = simulate(reps, args.seed, 1.0) + simulate(reps, args.seed + 1, 0.5)
    section = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "alpha": ALPHA,
        "effect_in_pair_se": EFFECT_SE,
        "replications": reps,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        data = json.loads(out.read_text()) if out.is_file() else {}
        data["multiple_comparisons"] = section
        out.write_text(json.dumps(data, indent=1) + "\n")
    for r in rows:
        print(
            f"{r['design']:>8} c={r['c']:<4g} m={r['runs']:<3} {r['procedure']:<18} fwer={r['fwer']:.3f} "
            f"power_all={r['power_all']:.3f} power_any={r['power_any']:.3f} false={r['false_claims']:.3f}"
        )
    return section


if __name__ == "__main__":
    main()
