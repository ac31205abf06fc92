"""Compare finished runs: a table of estimates and tests of their differences.

Pure functions over run directories: they read files and return data, never print.

A pair of cross-validation runs scored on identical splits (same test rows in every repeat and fold)
is compared with the Nadeau & Bengio (2003) corrected paired t-test on the per-fold differences and
with the Bayesian correlated t-test (a region of practical equivalence gives P(A better),
P(practically equal), P(B better)); every verdict states the smallest difference the test would
detect. Runs on different splits fall back to Welch's test, whose p-value is approximate, and say so.
Three or more runs: every pair is tested and the p-values are adjusted over all of them by Holm's
step-down with Shaffer's constraints (:mod:`dlrun.evaluation.stats.multiple` says why not only the
pairs with the best); the verdict lists the runs that cannot be told apart from the best and names
the procedure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.evaluation.metrics import HIGHER_IS_BETTER
from dlrun.evaluation.run_dirs import (
    SINGLE_MODES,
    Run,
    expand_run_dirs,
    fold_scores,
    load_run,
    same_splits,
    shared_repeats,
    unique_labels,
)
from dlrun.evaluation.stats.multiple import all_pairs, best_index, shaffer
from dlrun.evaluation.summary import headline_block, headline_name
from dlrun.evaluation.verdicts import many_verdict, pair_verdict
from dlrun.store.layout import SCORES
from dlrun.store.layout import SUMMARY_JSON as SUMMARY

__all__ = [
    "SINGLE_MODES",
    "Comparison",
    "Run",
    "compare",
    "default_rope",
    "expand_run_dirs",
    "load_run",
    "same_splits",
    "shared_repeats",
    "unique_labels",
]


@dataclass
class Comparison:
    """Result of ``compare``.

    Attributes:
        metric: The metric compared.
        confidence: Confidence level of the tests (the first run's).
        table: One row per run with columns ``run, name, mode, metric, n, mean, std, se,
            ci_low, ci_high, estimate, path, label, interval`` (``std``: of the fold scores;
            ``se``: of the headline estimate, corrected where it is; ``interval``: what
            ``ci_low``/``ci_high`` are).
        test: For exactly two runs, the frequentist test dict of runs[0] − runs[1], or None.
        paired: Whether the test is paired (identical splits).
        reason: Which comparison was made and why (or why there is none).
        verdict: Two runs: the difference, interval, p, test, conclusion, the smallest
            detectable difference and the Bayesian probabilities. More runs: the best and the
            runs that cannot be told apart from it.
        pairwise: One dict per tested pair with keys ``a``, ``b`` (labels; difference a − b),
            ``test``, ``paired``, ``reason``, ``what``, ``bayes``, ``mdd`` (difference detected
            with 80% power), ``p_holm`` (3+ runs: adjusted over all pairs, Holm's step-down with
            Shaffer's constraints; the key keeps its name) and ``verdict``.
        bayes: For two runs on identical splits, the Bayesian correlated t-test dict.
        rope: Half-width of the region of practical equivalence (metric units).
        rope_text: How ``rope`` was chosen.
        best: Label of the best run on the metric.
        pairs: ``"best"`` (each run against the best is listed) or ``"all"`` (every pair); either
            way the adjustment runs over every pair.
        procedure: 3+ runs: the multiple-comparison procedure (:data:`stats.PROCEDURE`), else "".
        n_tests: 3+ runs: the number of pairwise tests adjusted over.
        indistinguishable: Labels of the runs that cannot be told apart from the best (3+ runs).
        forest: 3+ runs: one row per run other than the best, with ``label, reference, diff,
            ci_low, ci_high, p, p_holm, paired, test, same_as_best`` (diff = run − best), the
            data of a forest plot.
    """

    metric: str
    confidence: float
    table: pd.DataFrame
    test: dict[str, Any] | None = None
    paired: bool = False
    reason: str = ""
    verdict: str = ""
    pairwise: list[dict[str, Any]] = field(default_factory=list)
    bayes: dict[str, Any] | None = None
    rope: float = 0.01
    rope_text: str = ""
    best: str | None = None
    pairs: str = "best"
    indistinguishable: list[str] = field(default_factory=list)
    forest: pd.DataFrame = field(default_factory=pd.DataFrame)
    procedure: str = ""
    n_tests: int = 0

    @property
    def tests(self) -> pd.DataFrame:
        """One row per listed pair: ``a``, ``b``, the test's scalar fields, ``paired``, ``reason``, ``verdict``."""
        rows = []
        for pw in self.pairwise:
            test = pw.get("test") or {}
            rows.append(
                {
                    "a": pw.get("a"),
                    "b": pw.get("b"),
                    **{k: v for k, v in test.items() if not isinstance(v, (dict, list))},
                    "p_holm": pw.get("p_holm"),
                    "paired": pw.get("paired"),
                    "reason": pw.get("reason"),
                    "verdict": pw.get("verdict"),
                }
            )
        return pd.DataFrame(rows)

    @property
    def details(self) -> Comparison:
        """The comparison itself (what ``dlrun.api.Comparison.details`` held)."""
        return self


# --------------------------------------------------------------------------- comparison


def _metric_entry(run: Run, metric: str) -> Any:
    metrics = run.summary.get("metrics", {})
    if metric not in metrics:
        raise InputError(
            f"metric must be one of the metrics of run {run.name!r} ({', '.join(metrics) or 'none'}); got {metric!r}"
        )
    return metrics[metric]


def _row(run: Run, metric: str) -> dict[str, Any]:
    entry = _metric_entry(run, metric)
    base = {"run": run.path.name, "name": run.name, "mode": run.mode, "metric": metric}
    if isinstance(entry, dict):
        est = headline_name(entry)
        s = headline_block(entry)
        lo, hi = stats.interval_of(s)
        return {
            **base,
            "n": s.get("n"),
            "mean": s.get("mean"),
            "std": s.get("std"),
            "se": s.get("se"),
            "ci_low": lo,
            "ci_high": hi,
            "estimate": est,
            "path": str(run.path),
            "label": run.label,
            "interval": s.get("label") or ("Nadeau\u2013Bengio corrected interval" if est == "corrected" else est),
        }
    value = None if entry is None else float(entry)
    return {
        **base,
        "n": 1,
        "mean": value if value is not None and math.isfinite(value) else None,
        "std": None,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "estimate": "single",
        "path": str(run.path),
        "label": run.label,
        "interval": "single held-out score: no interval",
    }


def default_rope(metric: str, reference: float | None) -> tuple[float, str]:
    """The default region of practical equivalence, in the metric's units, and how it was chosen.

    Args:
        metric: Metric name.
        reference: The reference run's mean (scales the ROPE of unbounded metrics).

    Returns:
        ``(half_width, explanation)``: 0.01 for scores in [0, 1] and R² (one point of accuracy),
        else 1% of the reference mean.
    """
    if stats.metric_scale(metric) in ("clip01", "logit", "log1m", "cap1"):
        return 0.01, f"default \u00b10.01 {metric} for a score in [0, 1]"
    if reference is not None and math.isfinite(reference) and reference != 0:
        r = 0.01 * abs(reference)
        return r, f"default \u00b1{r:.3g} {metric}, 1% of the reference run's mean"
    return 0.01, f"default \u00b10.01 {metric}"


def _test_pair(
    a: Run, b: Run, metric: str, confidence: float, rope: float, higher_is_better: bool = True
) -> dict[str, Any]:
    """Choose and run the test of a − b; returns ``{a, b, test, paired, reason, bayes, mdd, what, verdict}``."""
    out: dict[str, Any] = {"a": a.label, "b": b.label, "test": None, "paired": False, "bayes": None, "mdd": None}
    sa, sb = fold_scores(a, metric), fold_scores(b, metric)
    alpha = 1.0 - confidence
    if sa is None or sb is None:
        lacking = a if sa is None else b
        why = (
            f"run {lacking.label!r} has a single {metric} score (mode {lacking.mode})"
            if lacking.mode in SINGLE_MODES
            else f"run {lacking.label!r} has no per-fold {metric} scores in {SCORES}"
        )
        out["reason"] = why
        out["what"] = "no test"
        out["verdict"] = f"No test of {a.label} \u2212 {b.label}: {why}, and a test needs at least 2 scores per run."
        return out
    identical, why_splits = same_splits(a, b)
    if not identical:
        common = shared_repeats(a, b)
        if common:
            sa = sa[sa["repeat"].isin(common)]
            sb = sb[sb["repeat"].isin(common)]
            longer = a if a.folds is not None and b.folds is not None and len(a.folds) > len(b.folds) else b
            why_splits = (
                f"identical test rows in the {len(sa)} folds of the {len(common)} repeat(s) both runs have "
                f"(run {longer.label!r} has more repeats; those are left out of the paired test)"
            )
            identical = True
    if identical:
        merged = sa.merge(sb, on=["repeat", "fold"], suffixes=("_a", "_b"))
        xa = merged[f"{metric}_a"].to_numpy(dtype=float)
        xb = merged[f"{metric}_b"].to_numpy(dtype=float)
        n_ok = int(((~pd.isna(xa)) & (~pd.isna(xb))).sum())
        if n_ok >= 2:
            if a.mode == "repeated_split" and b.mode == "repeated_split":
                # Every repeat reuses one split: pairs differ only by seed, so the plain
                # paired test is right, and its inference is conditional on that split.
                test = stats.paired_ttest(xa, xb, confidence)
                what = f"a paired t-test over {test['n']} seeds on one identical split (conditional on that split)"
                bayes = stats.bayesian_correlated_ttest(
                    xa, xb, rope, correction=1.0 / test["n"], higher_is_better=higher_is_better
                )
            else:
                n_train = float(a.summary.get("n_train") or 0) or None
                n_test = float(a.summary.get("n_test") or 0) or None
                if n_train is None or n_test is None:
                    raise InputError(
                        f"{SUMMARY} of run {a.label!r} must have positive n_train and n_test for the corrected "
                        f"paired t-test; got n_train={a.summary.get('n_train')!r}, n_test={a.summary.get('n_test')!r}"
                    )
                test = stats.corrected_paired_ttest(xa, xb, n_train, n_test, confidence)
                what = f"the Nadeau\u2013Bengio corrected paired t-test over {test['n']} folds on identical splits"
                bayes = stats.bayesian_correlated_ttest(
                    xa, xb, rope, n_train=n_train, n_test=n_test, higher_is_better=higher_is_better
                )
            out.update(
                test=test,
                paired=True,
                bayes=bayes,
                mdd=stats.min_detectable_difference(test["se"], test["df"], alpha),
                what=what,
                reason=(
                    f"paired: {why_splits}, so each fold's difference is tested (the default evaluation.split_seed "
                    "is fixed, so runs that differ only in seed or model share their folds)"
                ),
            )
            out["verdict"] = pair_verdict(out, metric, what, confidence)
            return out
        why_splits = f"splits are identical but only {n_ok} fold(s) have finite scores in both runs"
    xa = sa[metric].to_numpy(dtype=float)
    xb = sb[metric].to_numpy(dtype=float)
    fa, fb = int((~pd.isna(xa)).sum()), int((~pd.isna(xb)).sum())
    reason = (
        f"unpaired: {why_splits}; to pair them, run both on the same data with the same evaluation section "
        "(folds, repeats and split_seed)"
    )
    if fa < 2 or fb < 2:
        out["reason"] = f"{reason}; Welch's test needs 2 finite scores per run, got {fa} and {fb}"
        out["what"] = "no test"
        out["verdict"] = f"No test of {a.label} \u2212 {b.label}: {out['reason']}."
        return out
    test = stats.welch_ttest(xa, xb, confidence)
    what = f"Welch's t-test over {test['n_a']} vs {test['n_b']} fold scores on different splits"
    out.update(
        test=test,
        paired=False,
        reason=reason,
        what=what,
        mdd=stats.min_detectable_difference(test["se"], test["df"], alpha),
    )
    out["verdict"] = pair_verdict(out, metric, what, confidence)
    return out


def _negated(pair: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(diff, low, high)`` of b − a from a test of a − b."""
    t = pair.get("test")
    if not t:
        return None, None, None
    return -t["mean_diff"], -t["ci_high"], -t["ci_low"]


def compare(
    runs: list[Run],
    metric: str | None = None,
    *,
    rope: float | None = None,
    pairs: str = "best",
    labels: list[str] | None = None,
) -> Comparison:
    """Tabulate runs and test their differences.

    Two runs: ``runs[0] − runs[1]``. Three or more: every pair is tested and adjusted over all
    m(m − 1)/2 tests (Holm's step-down with Shaffer's constraints, :func:`stats.multiple.shaffer`);
    ``pairwise`` lists the pairs with the best on ``metric`` (``pairs="best"``) or every pair
    (``pairs="all"``), and ``indistinguishable`` the runs that cannot be told apart from the best.

    Args:
        runs: Runs to compare, at least one.
        metric: Metric to compare; defaults to the first run's ``main_metric``.
        rope: Half-width of the region of practical equivalence for the Bayesian test, in the
            metric's units; default from :func:`default_rope`.
        pairs: ``"best"`` or ``"all"``.
        labels: One distinct name per run (``--label``); default from :func:`unique_labels`.

    Returns:
        A ``Comparison``.

    Raises:
        InputError: If ``runs`` is empty, no metric can be chosen, a run lacks the metric, or an
            argument is invalid.
    """
    if not runs:
        raise InputError("runs must contain at least one run; got none")
    if pairs not in ("best", "all"):
        raise InputError(f"pairs must be 'best' or 'all'; got {pairs!r}")
    for r, lab in zip(runs, unique_labels(runs, labels), strict=True):
        r.label = lab
    first = runs[0]
    if metric is None:
        metric = first.summary.get("main_metric") or (first.metrics[0] if first.metrics else None)
        if metric is None:
            raise InputError(f"metric must be given because run {first.label!r} has no main_metric and no metrics")
    metric = str(metric)
    table = pd.DataFrame([_row(r, metric) for r in runs])
    confidence = first.confidence
    alpha = 1.0 - confidence
    higher = _higher_is_better(first, metric)
    means = [m if m is not None and math.isfinite(m) else None for m in table["mean"]]
    best_i = best_index(means, higher)
    if rope is None:
        rope_value, rope_text = default_rope(metric, means[best_i])
    else:
        if not math.isfinite(float(rope)) or float(rope) < 0:
            raise InputError(f"--rope must be a non-negative number in {metric} units; got {rope!r}")
        rope_value, rope_text = float(rope), f"\u00b1{float(rope):g} {metric}, as given"
    result = Comparison(metric=metric, confidence=confidence, table=table, rope=rope_value, rope_text=rope_text)
    result.pairs = pairs
    if len(runs) == 2:
        pair = _test_pair(runs[0], runs[1], metric, confidence, rope_value, higher)
        result.pairwise = [pair]
        result.test = pair["test"]
        result.bayes = pair["bayes"]
        result.paired = bool(pair["paired"])
        result.reason = str(pair["reason"])
        result.verdict = str(pair["verdict"])
        result.best = runs[best_i].label
        return result
    if len(runs) == 1:
        result.best = first.label
        return result
    best = runs[best_i]
    result.best = best.label
    # The family is every pair, whichever are listed: choosing the best by the same scores and
    # adjusting only its m - 1 tests does not hold the family-wise error (stats.multiple).
    family = [
        (best, runs[j]) if i == best_i else (best, runs[i]) if j == best_i else (runs[i], runs[j])
        for i, j in all_pairs(len(runs))
    ]
    family.sort(key=lambda ab: best not in ab)  # pairs with the best first, as they are listed
    tested = [_test_pair(a, b, metric, confidence, rope_value, higher) for a, b in family]
    adjusted = shaffer([t["test"]["p"] if t["test"] else None for t in tested], len(runs))
    n_tests = sum(p is not None for p in adjusted)
    for t, p_adj in zip(tested, adjusted, strict=True):
        t["p_holm"] = p_adj
        if t["test"] is not None:
            t["verdict"] = pair_verdict(t, metric, t["what"], confidence, n_tests=max(n_tests, 1))
    result.pairwise = tested if pairs == "all" else tested[: len(runs) - 1]
    result.procedure = stats.PROCEDURE
    result.n_tests = n_tests
    # Which runs cannot be told apart from the best (adjusted p at least alpha, or no test possible).
    same = [best.label]
    forest = []
    for t in tested[: len(runs) - 1]:
        p_adj = t.get("p_holm")
        other = t["b"]
        if p_adj is None or p_adj >= alpha:
            same.append(other)
        forest.append(
            {
                "label": other,
                "reference": best.label,
                "diff": _negated(t)[0],
                "ci_low": _negated(t)[1],
                "ci_high": _negated(t)[2],
                "p": t["test"]["p"] if t["test"] else None,
                "p_holm": p_adj,
                "paired": t["paired"],
                "test": t["test"]["test"] if t["test"] else None,
                "same_as_best": other in same,
            }
        )
    result.indistinguishable = same
    result.forest = pd.DataFrame(forest)
    result.verdict = many_verdict(metric, best.label, same, alpha, len(runs), n_tests)
    return result


def _higher_is_better(run: Run, metric: str) -> bool:
    entry = run.summary.get("metrics", {}).get(metric)
    if isinstance(entry, dict) and "higher_is_better" in entry:
        return bool(entry["higher_is_better"])
    return HIGHER_IS_BETTER.get(metric, True)
