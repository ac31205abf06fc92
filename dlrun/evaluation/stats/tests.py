"""Tests of the difference between two models' scores: corrected paired, paired, Bayesian correlated, Welch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from dlrun.errors import InputError
from dlrun.evaluation.stats.common import (
    MIN_INFORMATIVE_DF,
    _as_1d,
    _check_confidence,
    _df_text,
    _dropped_text,
    _f,
    _finite,
    _interval,
    _is_zero_spread,
    _positive,
    format_confidence,
    scipy_stats,
)


def min_detectable_difference(se: float | None, df: float | None, alpha: float, power: float = 0.8) -> float | None:
    """Smallest true difference a two-sided t-test at ``alpha`` detects with probability ``power``.

    The usual approximation ``(t_{1−α/2, df} + t_{power, df})·se``: a true difference
    smaller than this is missed more often than ``1 − power`` of the time.

    Args:
        se: Standard error of the difference (corrected where the test is).
        df: Degrees of freedom of the test.
        alpha: Two-sided significance level.
        power: Probability of detection.

    Returns:
        The difference in the metric's units, or None when ``se``/``df`` are unknown or ``se`` is 0.
    """
    if se is None or df is None or not math.isfinite(se) or se <= 0 or df < 1:
        return None
    return float((scipy_stats().t.ppf(1.0 - alpha / 2.0, df) + scipy_stats().t.ppf(power, df)) * se)


def _paired_arrays(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """Align two paired score vectors and drop pairs with a non-finite member.

    Returns:
        ``(a_kept, b_kept, n_dropped)``, both arrays of shape ``(J,)``.
    """
    xa = _as_1d(a, "a")
    xb = _as_1d(b, "b")
    if xa.shape != xb.shape:
        raise InputError(f"a and b must have the same length (one score per shared split); got {xa.size} and {xb.size}")
    mask = np.isfinite(xa) & np.isfinite(xb)
    return xa[mask], xb[mask], int(xa.size - mask.sum())


def _zero_variance_result(mean_d: float) -> tuple[float | None, str]:
    """p-value and note when every paired difference is identical (t is undefined).

    A constant non-zero difference is not evidence of anything at a few folds (two folds
    that both differ by 0.01 say nothing about a third), and with no spread the t-test has
    no error estimate: p is left undefined rather than set to 0.
    """
    if mean_d == 0.0:
        return 1.0, "every difference is exactly 0, so t is undefined; p set to 1"
    return None, (
        "every difference is identical and non-zero, so the test has no estimate of its error; "
        "p is undefined and no significance is claimed"
    )


def corrected_paired_ttest(
    a: npt.ArrayLike, b: npt.ArrayLike, n_train: float, n_test: float, confidence: float = 0.95
) -> dict[str, Any]:
    """Nadeau & Bengio (2003) corrected resampled paired t-test of ``a - b``.

    Both models must have been scored on the same J splits, in the same order.

    Args:
        a: Scores of model A, shape ``(J,)``.
        b: Scores of model B on the same splits, shape ``(J,)``.
        n_train: Training-set size per split (may be a float mean).
        n_test: Test-set size per split (may be a float mean).
        confidence: Coverage of the interval for the mean difference.

    Returns:
        Dict with keys ``test`` (``"nadeau_bengio_paired"``), ``n`` (pairs used), ``n_nan``
        (pairs dropped), ``mean_a``, ``mean_b``, ``mean_diff``, ``std_diff`` (ddof=1), ``se``
        (corrected), ``correction``, ``ci_low``, ``ci_high``, ``t``, ``df`` (J-1), ``p``
        (two-sided), ``confidence``, ``method`` and ``note`` (None unless a guard fired).

    Raises:
        InputError: If lengths differ, fewer than 2 finite pairs remain, or sizes are invalid.
    """
    c = _check_confidence(confidence)
    ntr = _positive(n_train, "n_train")
    nte = _positive(n_test, "n_test")
    xa, xb, n_nan = _paired_arrays(a, b)
    j = int(xa.size)
    if j < 2:
        raise InputError(f"a and b must share at least 2 finite paired scores for a t-test; got {j}")
    d = xa - xb
    mean_d = float(d.mean())
    std_d = float(d.std(ddof=1))
    if _is_zero_spread(std_d, d):
        std_d = 0.0
        mean_d = float(np.median(d))
    correction = 1.0 / j + nte / ntr
    se = math.sqrt(correction) * std_d
    df = j - 1
    lo, hi = _interval(mean_d, se, df, c)
    note: str | None = None
    t_stat: float | None
    p: float | None
    if se == 0.0:
        p, note = _zero_variance_result(mean_d)
        t_stat = None
    else:
        t_stat = mean_d / se
        p = float(2.0 * scipy_stats().t.sf(abs(t_stat), df))
    if df < MIN_INFORMATIVE_DF:
        few = f"only {df} df: the test is not informative"
        note = f"{note}; {few}" if note else few
    method = (
        f"Nadeau & Bengio (2003) corrected resampled paired t-test on {j} per-split differences a \u2212 b"
        f"{_dropped_text(n_nan)}; variance (1/J + n_test/n_train)\u00b7s\u00b2 with n_test/n_train = {nte:g}/{ntr:g}; "
        f"two-sided, {df} df; {format_confidence(c)} Student-t interval"
    )
    return {
        "test": "nadeau_bengio_paired",
        "n": j,
        "n_nan": n_nan,
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "mean_diff": mean_d,
        "std_diff": std_d,
        "se": se,
        "correction": correction,
        "ci_low": lo,
        "ci_high": hi,
        "t": _f(t_stat),
        "df": df,
        "p": p,
        "confidence": c,
        "method": method,
        "note": note,
    }


def paired_ttest(a: npt.ArrayLike, b: npt.ArrayLike, confidence: float = 0.95) -> dict[str, Any]:
    """Ordinary (uncorrected) paired t-test of ``a - b``.

    Appropriate for repeated runs that differ only by seed on one fixed split: the
    pairs are then independent given that split, and the inference is conditional on
    it (it says nothing about how the difference varies across splits).

    Args:
        a: Scores of model A, shape ``(J,)``.
        b: Scores of model B paired with ``a``, shape ``(J,)``.
        confidence: Coverage of the interval for the mean difference.

    Returns:
        The same keys as ``corrected_paired_ttest`` with ``test`` = ``"paired"`` and
        ``correction`` = 1/J (the naive factor).

    Raises:
        InputError: If lengths differ or fewer than 2 finite pairs remain.
    """
    c = _check_confidence(confidence)
    xa, xb, n_nan = _paired_arrays(a, b)
    j = int(xa.size)
    if j < 2:
        raise InputError(f"a and b must share at least 2 finite paired scores for a t-test; got {j}")
    d = xa - xb
    mean_d = float(d.mean())
    std_d = float(d.std(ddof=1))
    if _is_zero_spread(std_d, d):
        std_d = 0.0
        mean_d = float(np.median(d))
    se = std_d / math.sqrt(j)
    df = j - 1
    lo, hi = _interval(mean_d, se, df, c)
    note: str | None = None
    t_stat: float | None
    p: float | None
    if se == 0.0:
        p, note = _zero_variance_result(mean_d)
        t_stat = None
    else:
        res = scipy_stats().ttest_rel(xa, xb)
        t_stat, p = float(res.statistic), float(res.pvalue)
    return {
        "test": "paired",
        "n": j,
        "n_nan": n_nan,
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "mean_diff": mean_d,
        "std_diff": std_d,
        "se": se,
        "correction": 1.0 / j,
        "ci_low": lo,
        "ci_high": hi,
        "t": _f(t_stat),
        "df": df,
        "p": p,
        "confidence": c,
        "method": (
            f"paired t-test on {j} differences a \u2212 b{_dropped_text(n_nan)} over seeds on one shared split; "
            f"two-sided, {df} df; {format_confidence(c)} Student-t interval; conditional on that split"
        ),
        "note": note,
    }


def bayesian_correlated_ttest(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    rope: float,
    *,
    correction: float | None = None,
    n_train: float | None = None,
    n_test: float | None = None,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Bayesian correlated t-test of ``a − b`` with a region of practical equivalence.

    Corani & Benavoli (2015), as recommended by Benavoli et al. (2017, "Time for a change",
    JMLR 18(77)): the posterior of the mean difference is a Student t with J − 1 df, location
    ``mean(d)`` and scale ``sqrt((1/J + ρ/(1 − ρ))·s_d²)``, ρ = n_test/(n_test + n_train), so
    ``ρ/(1 − ρ) = n_test/n_train`` and the scale equals the Nadeau–Bengio corrected se. This is
    the formula of ``baycomp.CorrelatedTTest`` (checked in the tests), written with scipy so it
    can take the run's actual fold sizes and a repeated-split correction of 1/J.

    Args:
        a: Scores of model A, shape ``(J,)``.
        b: Scores of model B on the same splits, shape ``(J,)``.
        rope: Half-width of the region of practical equivalence, in the metric's units (≥ 0).
        correction: Variance factor; default ``1/J + n_test/n_train`` (give 1/J for seeds on one split).
        n_train: Training rows per split (for the default correction).
        n_test: Test rows per split (for the default correction).
        higher_is_better: Whether a larger score is better (decides which side is "A better").

    Returns:
        Dict with keys ``test`` (``"bayesian_correlated"``), ``n``, ``rope``, ``mean_diff``,
        ``scale``, ``df``, ``p_a_better``, ``p_equal``, ``p_b_better`` (summing to 1),
        ``decided`` (the region with probability ≥ 0.95, or None), ``name`` ("Bayesian correlated
        t-test", or "Bayesian paired t-test" when ``correction`` is 1/J: seeds on one split, nothing
        correlated to correct for), ``method`` and ``note``.

    Raises:
        InputError: If the inputs are invalid or fewer than 2 finite pairs remain.
    """
    xa, xb, n_nan = _paired_arrays(a, b)
    j = int(xa.size)
    if j < 2:
        raise InputError(f"a and b must share at least 2 finite paired scores for a t-test; got {j}")
    try:
        r = float(rope)
    except (TypeError, ValueError):
        raise InputError(f"rope must be a non-negative number in the metric's units; got {rope!r}") from None
    if not math.isfinite(r) or r < 0:
        raise InputError(f"rope must be a non-negative number in the metric's units; got {rope!r}")
    named_for_seeds = correction is not None and math.isclose(correction, 1.0 / j)
    if correction is None:
        if n_train is None or n_test is None:
            raise InputError("n_train and n_test must be given when correction is not")
        correction = 1.0 / j + _positive(n_test, "n_test") / _positive(n_train, "n_train")
    d = xa - xb
    mean_d = float(d.mean())
    std_d = float(d.std(ddof=1))
    if _is_zero_spread(std_d, d):
        std_d = 0.0
        mean_d = float(np.median(d))
    scale = math.sqrt(correction) * std_d
    df = j - 1
    note: str | None = None
    if scale == 0.0:
        # A point mass: all probability on the region holding the (constant) difference.
        below, inside, above = float(mean_d < -r), float(-r <= mean_d <= r), float(mean_d > r)
        note = "every difference is identical, so the posterior is a point; treat with care at a few folds"
    else:
        below = float(scipy_stats().t.cdf((-r - mean_d) / scale, df))
        above = float(scipy_stats().t.sf((r - mean_d) / scale, df))
        inside = max(0.0, 1.0 - below - above)
    p_a, p_b = (above, below) if higher_is_better else (below, above)
    decided = None
    for region, prob in (("a_better", p_a), ("equal", inside), ("b_better", p_b)):
        if prob >= 0.95:
            decided = region
    if df < MIN_INFORMATIVE_DF:
        few = f"only {df} df: the posterior is dominated by the prior-free t with very heavy tails"
        note = f"{note}; {few}" if note else few
    # With the plain 1/J factor (seeds on one split) nothing is corrected for correlation: name it so.
    name = "Bayesian paired t-test" if named_for_seeds else "Bayesian correlated t-test"
    source = "" if named_for_seeds else " (Corani & Benavoli 2015; Benavoli et al. 2017)"
    return {
        "test": "bayesian_correlated",
        "name": name,
        "n": j,
        "n_nan": n_nan,
        "rope": r,
        "mean_diff": mean_d,
        "scale": scale,
        "correction": correction,
        "df": df,
        "p_a_better": p_a,
        "p_equal": inside,
        "p_b_better": p_b,
        "decided": decided,
        "method": (
            f"{name}{source} on {j} differences "
            f"a \u2212 b{_dropped_text(n_nan)}; posterior Student t with {df} df, scale "
            f"\u221a{correction:.4g}\u00b7s_d; region of practical equivalence \u00b1{r:g}"
        ),
        "note": note,
    }


WELCH_WARNING = (
    "runs are not on identical splits, so no paired test is possible; Welch's test ignores the dependence between "
    "fold scores, so its p-value and interval are only approximate (the calibration study does not check them)"
)


def welch_ttest(a: npt.ArrayLike, b: npt.ArrayLike, confidence: float = 0.95) -> dict[str, Any]:
    """Welch's unequal-variance t-test for the difference of means ``mean(a) - mean(b)``.

    Args:
        a: Scores of model A, shape ``(n_a,)``. Non-finite values are dropped.
        b: Scores of model B, shape ``(n_b,)``. Non-finite values are dropped.
        confidence: Coverage of the interval for the difference.

    Returns:
        Dict with keys ``test`` (``"welch"``), ``n_a``, ``n_b``, ``n_nan`` (values dropped in
        total), ``mean_a``, ``mean_b``, ``mean_diff``, ``se`` (sqrt(s_a²/n_a + s_b²/n_b)),
        ``ci_low``, ``ci_high``, ``t``, ``df`` (Welch–Satterthwaite), ``p`` (two-sided),
        ``confidence``, ``method``, ``warning`` and ``note`` (None unless a guard fired).

    Raises:
        InputError: If either sample has fewer than 2 finite values.
    """
    c = _check_confidence(confidence)
    xa, nan_a = _finite(a, "a")
    xb, nan_b = _finite(b, "b")
    if xa.size < 2 or xb.size < 2:
        raise InputError(
            f"a and b must each have at least 2 finite scores for Welch's t-test; got {xa.size} and {xb.size}"
        )
    na, nb = int(xa.size), int(xb.size)
    va, vb = float(xa.var(ddof=1)), float(xb.var(ddof=1))
    mean_d = float(xa.mean() - xb.mean())
    se = math.sqrt(va / na + vb / nb)
    note: str | None = None
    t_stat: float | None
    if se == 0.0:
        p = 1.0 if mean_d == 0.0 else 0.0
        note = "both samples are constant, so t is undefined; " + (
            "the means are equal, p set to 1" if mean_d == 0.0 else "the means differ, p set to 0"
        )
        t_stat = None
        # Satterthwaite df is 0/0 here; with no variance the interval is a point anyway.
        df: float = float(na + nb - 2)
        lo, hi = mean_d, mean_d
    else:
        res = scipy_stats().ttest_ind(xa, xb, equal_var=False)
        t_stat, p, df = float(res.statistic), float(res.pvalue), float(res.df)
        ci = res.confidence_interval(confidence_level=c)
        lo, hi = float(ci.low), float(ci.high)
    return {
        "test": "welch",
        "n_a": na,
        "n_b": nb,
        "n_nan": nan_a + nan_b,
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "mean_diff": mean_d,
        "se": se,
        "ci_low": lo,
        "ci_high": hi,
        "t": _f(t_stat),
        "df": df,
        "p": p,
        "confidence": c,
        "method": (
            f"Welch's unequal-variance t-test of mean(a) \u2212 mean(b) over {na} and {nb} scores"
            f"{_dropped_text(nan_a + nan_b)}; two-sided, Welch\u2013Satterthwaite df = {_df_text(df)}; "
            f"{format_confidence(c)} interval for the difference"
        ),
        "warning": WELCH_WARNING,
        "note": note,
    }
