"""Wrong decisions of dlrun's two stopping rules: ``compare --until-decided`` and ``repeats: auto``.

Both add repeats of k-fold cross-validation and look at the result after each chunk, so what they
report at the end was chosen by what they saw. This study runs each rule as dlrun does, with
dlrun's own statistics on every look, on simulated fold scores whose correlation resembles
repeated k-fold, and counts how often the final statement is wrong.

**Rules, as dlrun runs them.** ``until_decided`` (``dlrun/api.py``): two runs start with one repeat
of 10-fold; after each look the Bayesian correlated t-test (``stats.bayesian_correlated_ttest``,
ROPE ±0.01) decides as soon as one region has probability ≥ 0.95; otherwise 3 more repeats are
added (``AUTO_CHUNK``), up to ``--max-repeats`` 10 (looks at 1, 4, 7 and 10 repeats).
``repeats_auto`` (``dlrun/runs/cv.py`` ``run_cv_auto``): starts at 3 repeats and adds 3 until the
headline (``stats.nadeau_bengio``) has half-width ≤ ``target_halfwidth``, ``max_repeats`` (30) is
reached, or the target is below the half-width floor (``se_floor``).

**Score model** (accuracy 0.68 on 200 rows, 10-fold: 20 test and 180 training rows per fold).
One run (``repeats_auto``): x_rf = μ + D + T_rf + M_rf. T_rf is which rows fold f of repeat r
tests: N(0, σ_T²) with σ_T = 0.104 (the binomial spread of 20 rows), centred within each repeat,
because one repeat's test folds partition the same rows; M_rf ~ N(0, σ_M²), σ_M = 0.06 or 0.12,
the model's own training randomness; D ~ N(0, σ_T²/k + τ²) the data set's term that repeats cannot
average away (they re-test the same rows): its test-row part and τ² = c·(n_test/n_train)·(σ_T² +
σ_M²) from the overlap of training sets. The headline assumes c = 1/2 (calibrated): ``stable``
uses it, ``unstable`` c = 1 (a less stable learner, whose folds correlate more). Two runs
(``until_decided``): fold differences d_rf = Δ + D + σ_d·E_rf, E independent N(0, 1), σ_d = 0.087
(two networks disagree on about 15% of rows) and D ~ N(0, τ²): ``null 1`` (same config, another
seed) τ = 0; ``null 2`` (another procedure, the same expected score) τ = 0.15·σ_d, which reproduces
the calibration study's uncorrected paired t-test rejecting about 5% at 10-fold and 20% at 5×10;
``null 2, worst`` τ = σ_d·√(n_test/n_train), the most the corrected test's variance allows for.
Δ = +0.03 uses both τ.

**Wrong decisions.** ``until_decided``: under a null, deciding either run is better; at Δ = +0.03,
deciding "practically equal" or the wrong run (nominal: at most 5%). ``repeats_auto``: the final
interval missing μ (nominal 5%); fixed-repeat rows beside it separate the stopping rule's effect
from the interval's own calibration.

``python benchmarks/sequential.py`` (a few minutes on one core) writes the ``sequential`` section
of ``benchmarks/calibration_results.json``; ``--quick`` runs 150 data sets per row and writes
nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from dlrun.evaluation import stats
from dlrun.evaluation.stats import sequential

K, N_TRAIN, N_TEST = 10, 180.0, 20.0
RATIO = N_TEST / N_TRAIN
SIGMA, SIGMA_D = 0.104, 0.087
MU = 0.68
ROPE = 0.01
CHUNK = 3
RESULTS = Path(__file__).with_name("calibration_results.json")

PAIR_SETTINGS = (
    ("null 1: same config, another seed", 0.0, 0.0),
    ("null 2: another procedure, equal truth", 0.0, 0.15 * SIGMA_D),
    ("null 2, worst: tau as large as the corrected test allows", 0.0, SIGMA_D * math.sqrt(RATIO)),
    ("true difference +0.03 (null-2 tau)", 0.03, 0.15 * SIGMA_D),
    ("true difference +0.03 (worst tau)", 0.03, SIGMA_D * math.sqrt(RATIO)),
)
#: (name, c of the data's training-set term, σ_M, target_halfwidth): each target is about the median
#: half-width at 30 repeats, so the rule stops at once on some data sets and adds repeats on others.
AUTO_SETTINGS = (
    ("stable (c = 1/2), sigma_M 0.06", 0.5, 0.06, 0.096),
    ("unstable (c = 1), sigma_M 0.06", 1.0, 0.06, 0.096),
    ("noisy training (c = 1/2), sigma_M 0.12", 0.5, 0.12, 0.111),
    ("unstable, noisy (c = 1), sigma_M 0.12", 1.0, 0.12, 0.111),
)


def _differences(rng: np.random.Generator, delta: float, tau: float, repeats: int) -> np.ndarray:
    """One data set's fold differences, shape ``(repeats, K)``."""
    return delta + tau * rng.standard_normal() + SIGMA_D * rng.standard_normal((repeats, K))


def until_decided(d: np.ndarray, max_repeats: int, threshold: float, start: int = 1) -> tuple[str | None, int]:
    """dlrun's loop on precomputed differences: ``(decision or None, repeats used)``."""
    r = start
    while True:
        x = d[:r].ravel()
        b = stats.bayesian_correlated_ttest(x, np.zeros_like(x), ROPE, n_train=N_TRAIN, n_test=N_TEST)
        decision = sequential.decided(b, threshold)
        if decision is not None:
            return decision, r
        if r >= max_repeats:
            return None, r
        r = min(max_repeats, r + CHUNK)


def _wrong(decision: str | None, delta: float) -> bool:
    if decision is None:
        return False
    if abs(delta) <= ROPE:
        return decision != "equal"
    return decision != ("a_better" if delta > 0 else "b_better")


def _rate(k: int, n: int) -> dict[str, float]:
    lo, hi = sps.binomtest(k, n).proportion_ci(method="exact")
    return {"rate": k / n, "rate_low": float(lo), "rate_high": float(hi)}


def pair_rows(datasets: int, seed: int, max_repeats: int = 10) -> list[dict[str, Any]]:
    """until-decided as dlrun runs it, with the fixed rule, and the fixed-repeats test beside them."""
    rng = np.random.default_rng(seed)
    fixed_threshold = sequential.decision_threshold(1, max_repeats, CHUNK)
    rows = []
    for name, delta, tau in PAIR_SETTINGS:
        counts = {"dlrun (0.95 at every look)": [0, 0, 0], "fixed rule": [0, 0, 0], "one look at 10 repeats": [0, 0, 0]}
        for _ in range(datasets):
            d = _differences(rng, delta, tau, max_repeats)
            for rule, (dec, _) in (
                ("dlrun (0.95 at every look)", until_decided(d, max_repeats, 0.95)),
                ("fixed rule", until_decided(d, max_repeats, fixed_threshold)),
                ("one look at 10 repeats", until_decided(d, max_repeats, 0.95, start=max_repeats)),
            ):
                c = counts[rule]
                c[0] += _wrong(dec, delta)
                c[1] += dec is not None and not _wrong(dec, delta)
                c[2] += dec is None
        for rule, (wrong, right, undecided) in counts.items():
            rows.append(
                {
                    "rule": "until_decided",
                    "setting": name,
                    "true_diff": delta,
                    "tau": tau,
                    "variant": rule,
                    "threshold": fixed_threshold if rule == "fixed rule" else 0.95,
                    **_rate(wrong, datasets),
                    "right": right / datasets,
                    "undecided": undecided / datasets,
                    "datasets": datasets,
                }
            )
    return rows


def _run_scores(rng: np.random.Generator, tau_train: float, sigma_m: float, repeats: int) -> np.ndarray:
    """One data set's fold scores of one run, shape ``(repeats, K)`` (the single-run model above)."""
    t = rng.standard_normal((repeats, K))
    t = (t - t.mean(axis=1, keepdims=True)) * math.sqrt(K / (K - 1.0)) * SIGMA  # test rows: sum to 0 per repeat
    d = math.sqrt(SIGMA**2 / K + tau_train**2) * rng.standard_normal()
    return MU + d + t + sigma_m * rng.standard_normal((repeats, K))


def _headline(x: np.ndarray) -> dict[str, Any]:
    r = x.shape[0]
    return stats.nadeau_bengio(x.ravel(), N_TRAIN, N_TEST, 0.95, metric="accuracy", repeats=np.repeat(np.arange(r), K))


def repeats_auto(x: np.ndarray, target: float, most: int) -> tuple[dict[str, Any], int]:
    """run_cv_auto's loop on one data set's scores ``(most, K)``: the last headline and its repeats."""
    r = min(CHUNK, most)
    while True:
        h = _headline(x[:r])
        half = max(h["mean"] - h["ci_low"], h["ci_high"] - h["mean"])
        floor = sequential.halfwidth_floor(h)
        if half <= target or r >= most or (floor is not None and floor > target):
            return h, r
        r = min(most, r + CHUNK)


def auto_rows(datasets: int, seed: int, most: int = 30) -> list[dict[str, Any]]:
    """repeats: auto as dlrun runs it, and fixed designs beside it."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, c_true, sigma_m, target in AUTO_SETTINGS:
        tau_train = math.sqrt(c_true * RATIO * (SIGMA**2 + sigma_m**2))
        miss = {"dlrun (stop on the half-width)": 0, "fixed 3x10": 0, "fixed 10x10": 0, "fixed 30x10": 0}
        used: list[int] = []
        for _ in range(datasets):
            x = _run_scores(rng, tau_train, sigma_m, most)
            h, r = repeats_auto(x, target, most)
            used.append(r)
            miss["dlrun (stop on the half-width)"] += not h["ci_low"] <= MU <= h["ci_high"]
            for reps in (3, 10, 30):
                f = _headline(x[:reps])
                miss[f"fixed {reps}x10"] += not f["ci_low"] <= MU <= f["ci_high"]
        for variant, k in miss.items():
            rows.append(
                {
                    "rule": "repeats_auto",
                    "setting": name,
                    "target_halfwidth": target,
                    "sigma_m": sigma_m,
                    "variant": variant,
                    **_rate(k, datasets),
                    "coverage": 1.0 - k / datasets,
                    "mean_repeats": float(np.mean(used)),
                    "datasets": datasets,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="150 data sets per row; writes nothing by default")
    ap.add_argument("--datasets", type=int, default=None, help="data sets per row (default 4,000; quick 150)")
    ap.add_argument("--seed", type=int, default=20232)
    ap.add_argument("--out", type=Path, default=None, help="results JSON to update (default: calibration_results.json)")
    args = ap.parse_args(argv)
    n = args.datasets or (150 if args.quick else 4000)
    start = time.perf_counter()
    rows = pair_rows(n, args.seed) + auto_rows(n, args.seed + 1)
    section = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "datasets": n,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        data = json.loads(out.read_text()) if out.is_file() else {}
        data["sequential"] = section
        out.write_text(json.dumps(data, indent=1) + "\n")
    for r in rows:
        extra = (
            f"right={r['right']:.3f} undecided={r['undecided']:.3f}"
            if r["rule"] == "until_decided"
            else f"coverage={r['coverage']:.3f} mean_repeats={r['mean_repeats']:.1f}"
        )
        print(
            f"{r['rule']:<14} {r['setting'][:40]:<40} {r['variant']:<32} wrong={r['rate']:.3f} "
            f"({r['rate_low']:.3f}-{r['rate_high']:.3f}) {extra}"
        )
    return section


if __name__ == "__main__":
    main()
