"""The sentences of a comparison: each pair's verdict and the many-run summary line.

Every sentence names its test and the procedure that adjusts for many comparisons, and calls an
interval a confidence interval only where the calibration study backs it (:func:`interval_name`).
"""

from __future__ import annotations

from typing import Any

from dlrun.evaluation.stats import decimals_for, format_confidence, format_number, format_p, procedure_text


def interval_name(test: dict[str, Any], confidence: float) -> str:
    """What a test's interval for the difference is called.

    Only the corrected paired t-test's interval is a confidence interval: the calibration study's
    test rows check it (under both nulls it excluded the true difference 0 in at most 1.2% of
    datasets, conservative). The paired interval over seeds is conditional on one split, and
    Welch's interval ignores the dependence between fold scores; no study row checks either.
    """
    pct = format_confidence(confidence)
    return {
        "nadeau_bengio_paired": f"{pct} CI",
        "paired": f"{pct} interval over seeds on this split",
        "welch": f"{pct} Welch interval, approximate",
    }.get(str(test.get("test")), f"{pct} interval")


def conclusion(test: dict[str, Any], alpha: float, p: float | None, adjusted: bool) -> str:
    """``significant at α = …`` or not, with the adjustment and Welch's caveat."""
    if p is None:
        return "not testable (no variance across folds), so no significance is claimed"
    sig = p < alpha
    text = f"significant at \u03b1 = {alpha:g}" if sig else f"not significant at \u03b1 = {alpha:g}"
    if adjusted:
        text += " after the adjustment over all pairs"
    if test["test"] == "welch":
        text += " (Welch's p-value is approximate: it ignores the dependence between fold scores)"
    return text


def decided_text(region: str | None, a: str, b: str) -> str:
    """The region the Bayesian test decided on, in words."""
    return {"a_better": f"{a} better", "b_better": f"{b} better", "equal": "practically equal"}.get(str(region), "")


def pair_verdict(pair: dict[str, Any], metric: str, what: str, confidence: float, n_tests: int = 1) -> str:
    """The sentence for one pair: difference, interval, p, test, conclusion, power and the Bayesian test.

    Args:
        pair: A tested pair (``a``, ``b``, ``test``, ``bayes``, ``mdd``, and ``p_holm`` when adjusted).
        metric: Metric name.
        what: The test in words.
        confidence: 1 − α.
        n_tests: Size of the family of tests the p-value was adjusted over (1: not adjusted).
    """
    test = pair["test"]
    a, b = pair["a"], pair["b"]
    alpha = 1.0 - confidence
    d = decimals_for(test.get("se"), test.get("mean_diff"))
    diff = format_number(test["mean_diff"], d, signed=True)
    lo = format_number(test["ci_low"], d, signed=True)
    hi = format_number(test["ci_high"], d, signed=True)
    p = test.get("p")
    p_used = pair.get("p_holm") if n_tests > 1 else p
    p_text = format_p(p)
    if n_tests > 1:
        p_text += f" (adjusted over all {n_tests} pairwise tests, Holm\u2013Shaffer: {format_p(p_used)})"
    text = (
        f"{a} \u2212 {b} = {diff} {metric} ({interval_name(test, confidence)} {lo} to {hi}), "
        f"{p_text} by {what}: {conclusion(test, alpha, p_used, n_tests > 1)}."
    )
    mdd = pair.get("mdd")
    n = test.get("n") or min(test.get("n_a") or 0, test.get("n_b") or 0)
    if mdd is not None:
        text += (
            f" At {n} folds a true difference smaller than {format_number(mdd, d)} would not be detected "
            f"(80% power at \u03b1 = {alpha:g})"
            + (", so 'not significant' does not mean 'equal'." if p_used is not None and p_used >= alpha else ".")
        )
    bayes = pair.get("bayes")
    if bayes is not None:
        text += (
            f" {bayes['name']}, ROPE \u00b1{bayes['rope']:.3g}: P({a} better) = {bayes['p_a_better']:.2f}, "
            f"P(practically equal) = {bayes['p_equal']:.2f}, P({b} better) = {bayes['p_b_better']:.2f}"
            + (
                f" (decided: {decided_text(bayes['decided'], a, b)} with \u2265 95%)."
                if bayes["decided"]
                else " (undecided: no region reaches 95%)."
            )
        )
    if test.get("note"):
        text += f" Note: {test['note']}."
    return text


def many_verdict(metric: str, best: str, same: list[str], alpha: float, n_runs: int, n_tests: int) -> str:
    """The summary line of a comparison of three or more runs, naming its multiple-comparison procedure."""
    others = ", ".join(x for x in same if x != best) or "none"
    return (
        f"Best on {metric}: {best}. Cannot be told apart from it at \u03b1 = {alpha:g}: {others}. "
        f"Procedure: {procedure_text(n_runs, n_tests)}."
    )
