"""Summary statistics and significance tests for resampled model scores.

Every function here is pure (no I/O) and returns plain JSON-serialisable values:
Python floats and ints, with ``None`` wherever a number does not exist (never NaN
or infinity, which are not valid JSON).

The estimates follow standard practice for resampled evaluation:

* ``describe`` -- sample mean, sample standard deviation (ddof=1), standard error
  and a Student-t interval, treating the values as independent draws.
* ``nadeau_bengio`` -- the corrected resampled variance of Nadeau & Bengio (2003),
  which accounts for the overlap between training sets of different resamples
  (applied to r x k-fold cross-validation as in Bouckaert & Frank, 2004).
* ``corrected_paired_ttest`` -- the corresponding paired test for two models scored
  on identical splits.
* ``welch_ttest`` -- Welch's unequal-variance test, the fallback when the splits
  differ; it ignores the dependence between resampled scores and is optimistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from dlrun.errors import InputError

#: Evaluation modes that ``summarize_metric`` understands.
CV_MODES: tuple[str, ...] = ("kfold", "repeated_kfold", "repeated_split")

#: Modes whose repeats use different splits, so the Nadeau-Bengio correction applies.
_RESAMPLED_MODES: tuple[str, ...] = ("kfold", "repeated_kfold")


# --------------------------------------------------------------------------- helpers


def _check_confidence(confidence: float) -> float:
    """Validate a confidence level.

    Args:
        confidence: Coverage of the interval, strictly between 0 and 1.

    Returns:
        The confidence as a float.

    Raises:
        InputError: If it is not a number strictly between 0 and 1.
    """
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"confidence must be a number strictly between 0 and 1; got {confidence!r}") from None
    if not 0.0 < c < 1.0:
        raise InputError(f"confidence must be a number strictly between 0 and 1; got {confidence!r}")
    return c


def _as_1d(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Convert input to a 1-D float array.

    Args:
        values: Array-like of numbers, shape ``(n,)``.
        name: Parameter name used in error messages.

    Returns:
        Float array of shape ``(n,)``, non-finite values kept.

    Raises:
        InputError: If the input is not one-dimensional numeric data or is empty.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a one-dimensional sequence of numbers; got {values!r:.80}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a one-dimensional sequence of numbers; got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} must contain at least one value; got an empty sequence")
    return arr


def _finite(values: npt.ArrayLike, name: str) -> tuple[npt.NDArray[np.float64], int]:
    """Drop non-finite values and count them.

    Args:
        values: Array-like of numbers, shape ``(n,)``.
        name: Parameter name used in error messages.

    Returns:
        ``(kept, n_dropped)`` where ``kept`` has shape ``(n - n_dropped,)``.
    """
    arr = _as_1d(values, name)
    mask = np.isfinite(arr)
    return arr[mask], int(arr.size - mask.sum())


def _f(x: float | np.floating[Any] | None) -> float | None:
    """Return a plain float, or None for None/NaN/infinity (JSON has neither)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _t_quantile(confidence: float, df: float) -> float:
    """Two-sided Student-t critical value ``t_{1-(1-c)/2, df}``."""
    return float(sps.t.ppf(0.5 + confidence / 2.0, df))


def format_confidence(confidence: float) -> str:
    """Format a confidence level as a percentage, e.g. ``95%`` or ``99.9%``."""
    return f"{100.0 * confidence:g}%"


def _df_text(df: float) -> str:
    """Format degrees of freedom: integers plainly, Welch df with one decimal."""
    return f"{int(df)}" if float(df).is_integer() else f"{df:.1f}"


def _dropped_text(n_nan: int) -> str:
    """Sentence fragment reporting dropped non-finite values (empty when none)."""
    if n_nan == 0:
        return ""
    return f"; {n_nan} non-finite value{'s' if n_nan != 1 else ''} (NaN/inf) dropped"


def decimals_for(se: float | None, value: float | None = None) -> int:
    """Number of decimals that shows a standard error to two significant digits.

    Reporting a mean to more digits than its standard error supports is false
    precision; two significant digits of the SE is the usual convention.

    Args:
        se: Standard error (or any scale of uncertainty); None or 0 when unknown.
        value: The estimate, used to pick 4 significant digits when ``se`` is unusable.

    Returns:
        Number of decimal places, between 0 and 10.
    """
    if se is not None and math.isfinite(se) and se > 0:
        return int(min(10, max(0, 1 - math.floor(math.log10(se)))))
    if value is not None and math.isfinite(value) and value != 0:
        return int(min(10, max(0, 3 - math.floor(math.log10(abs(value))))))
    return 3


def format_number(x: float | None, decimals: int, *, signed: bool = False) -> str:
    """Format a number with a fixed number of decimals and a real minus sign.

    Args:
        x: The number; None prints as ``n/a``.
        decimals: Decimal places.
        signed: Whether to print ``+`` for non-negative numbers.

    Returns:
        The formatted string.
    """
    if x is None or not math.isfinite(x):
        return "n/a"
    s = f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"
    # A rounded negative zero ("-0.000") reads as a sign error; print it unsigned.
    if float(s) == 0.0:
        s = f"{0.0:+.{decimals}f}" if signed else f"{0.0:.{decimals}f}"
    return s.replace("-", "\u2212")


def format_p(p: float | None) -> str:
    """Format a p-value as ``p = 0.43`` or ``p < 0.001``."""
    if p is None:
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3g}"


def _interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    """Student-t interval ``mean +/- t * se``.

    Computed by hand rather than with ``scipy.stats.t.interval`` because scipy returns
    NaN for ``scale=0``, whereas a zero standard error honestly gives a zero-width interval.
    """
    half = _t_quantile(confidence, df) * se
    return mean - half, mean + half


# --------------------------------------------------------------------------- summaries


def describe(values: npt.ArrayLike, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, spread and Student-t interval of values treated as independent draws.

    Args:
        values: Scores, shape ``(n,)``. NaN and infinite values are dropped and counted.
        confidence: Coverage of the interval for the mean, strictly between 0 and 1.

    Returns:
        Dict with keys ``n`` (finite values used), ``n_nan`` (non-finite values dropped),
        ``mean``, ``std`` (sample, ddof=1), ``se`` (std / sqrt(n)), ``ci_low``, ``ci_high``
        (Student-t with n-1 df), ``df``, ``confidence``, ``min``, ``max`` and ``method``
        (one sentence). ``std``, ``se``, ``df`` and the interval are None when n < 2, and
        every number is None when no finite value remains.

    Raises:
        InputError: If ``values`` is empty or not 1-D numeric, or ``confidence`` is invalid.
    """
    c = _check_confidence(confidence)
    x, n_nan = _finite(values, "values")
    n = int(x.size)
    out: dict[str, Any] = {
        "n": n,
        "n_nan": n_nan,
        "mean": None,
        "std": None,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "df": None,
        "confidence": c,
        "min": None,
        "max": None,
    }
    dropped = _dropped_text(n_nan)
    if n == 0:
        out["method"] = f"no finite values{dropped}; nothing to estimate"
        return out
    mean = float(x.mean())
    out.update(mean=mean, min=float(x.min()), max=float(x.max()))
    if n == 1:
        out["method"] = (
            f"single value{dropped}; no standard deviation or interval can be estimated from one observation"
        )
        return out
    std = float(x.std(ddof=1))
    se = std / math.sqrt(n)
    df = n - 1
    lo, hi = _interval(mean, se, df, c)
    out.update(std=std, se=se, df=df, ci_low=lo, ci_high=hi)
    out["method"] = (
        f"mean of {n} values{dropped}; sample std (ddof=1); {format_confidence(c)} Student-t interval with {df} df"
        + ("; all values identical, so the interval has zero width" if std == 0.0 else "")
    )
    return out


def nadeau_bengio(values: npt.ArrayLike, n_train: float, n_test: float, confidence: float = 0.95) -> dict[str, Any]:
    """Mean with the Nadeau & Bengio (2003) corrected resampled variance.

    Scores from J resamples are positively correlated because their training sets
    overlap, so ``s^2 / J`` underestimates the variance of their mean. The corrected
    variance is ``(1/J + n_test/n_train) * s^2``.

    Args:
        values: Per-resample scores, shape ``(J,)``. Non-finite values are dropped and counted.
        n_train: Training-set size per resample (may be a float, e.g. a mean fold size).
        n_test: Test-set size per resample (may be a float).
        confidence: Coverage of the interval, strictly between 0 and 1.

    Returns:
        The keys of ``describe`` (``std`` is the plain sample std of the scores; ``se``,
        ``ci_low`` and ``ci_high`` are corrected; interval is Student-t with J-1 df) plus
        ``correction`` (the factor ``1/J + n_test/n_train``), ``n_train`` and ``n_test``.

    Raises:
        InputError: If ``n_train`` or ``n_test`` is not a positive number, or as ``describe``.
    """
    c = _check_confidence(confidence)
    ntr = _positive(n_train, "n_train")
    nte = _positive(n_test, "n_test")
    out = describe(values, c)
    j = int(out["n"])
    out.update(n_train=ntr, n_test=nte, correction=None)
    dropped = _dropped_text(int(out["n_nan"]))
    if j < 2:
        out["method"] = (
            f"{j} finite resample score{'s' if j != 1 else ''}{dropped}; the Nadeau & Bengio (2003) corrected "
            "variance needs at least 2"
        )
        return out
    correction = 1.0 / j + nte / ntr
    std = float(out["std"])
    se = math.sqrt(correction) * std
    lo, hi = _interval(float(out["mean"]), se, j - 1, c)
    out.update(se=se, ci_low=lo, ci_high=hi, correction=correction)
    out["method"] = (
        f"mean of {j} resample scores{dropped}; Nadeau & Bengio (2003) corrected resampled variance "
        f"(1/J + n_test/n_train)\u00b7s\u00b2 with J = {j}, n_test/n_train = {nte:g}/{ntr:g} "
        f"(factor {correction:.4g} instead of the naive 1/J = {1.0 / j:.4g}); "
        f"{format_confidence(c)} Student-t interval with {j - 1} df"
    )
    return out


def _positive(x: float, name: str) -> float:
    """Validate a strictly positive finite number (a set size)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number; got {x!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number; got {x!r}")
    return v


def summarize_metric(
    scores: pd.DataFrame,
    metric: str,
    *,
    repeats: int,
    n_train: float,
    n_test: float,
    confidence: float,
    mode: str,
) -> dict[str, Any]:
    """Summaries of one metric over the folds and repeats of a cross-validation run.

    Args:
        scores: One row per (repeat, fold) with columns ``repeat``, ``fold`` and ``metric``.
        metric: Name of the metric column.
        repeats: Number of repeats the run was asked for.
        n_train: Mean training rows per fold.
        n_test: Mean test rows per fold.
        confidence: Coverage of the intervals.
        mode: One of ``kfold``, ``repeated_kfold``, ``repeated_split``.

    Returns:
        Dict with keys ``folds`` (``describe`` over all rows), ``repeats`` (``describe`` over
        per-repeat means, None if ``repeats == 1``), ``corrected`` (``nadeau_bengio`` over all
        rows, None for ``repeated_split``, whose repeats share one split so only the model's
        own randomness varies), ``headline`` (``"corrected"`` or ``"folds"``: the key of the
        most defensible estimate) and ``headline_text`` (one sentence).

    Raises:
        InputError: If a column is missing, the mode is unknown, or ``repeats`` is not a positive int.
    """
    c = _check_confidence(confidence)
    if mode not in CV_MODES:
        raise InputError(f"mode must be one of {', '.join(CV_MODES)}; got {mode!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise InputError(f"repeats must be a positive integer; got {repeats!r}")
    missing = [col for col in ("repeat", "fold", metric) if col not in scores.columns]
    if missing:
        raise InputError(
            f"scores must have columns repeat, fold and {metric!r}; missing {', '.join(map(repr, missing))} "
            f"(has {', '.join(map(str, scores.columns))})"
        )
    if len(scores) == 0:
        raise InputError(f"scores must have at least one row for metric {metric!r}; got an empty table")
    vals = pd.to_numeric(scores[metric], errors="coerce").to_numpy(dtype=np.float64)
    folds = describe(vals, c)

    per_repeat: dict[str, Any] | None = None
    if repeats > 1:
        # skipna: a repeat with a failed fold is averaged over its remaining folds.
        means = pd.Series(vals, index=scores.index).groupby(scores["repeat"]).mean()
        per_repeat = describe(means.to_numpy(dtype=np.float64), c)
        per_repeat["method"] = "over per-repeat means: " + per_repeat["method"]

    corrected: dict[str, Any] | None = None
    if mode in _RESAMPLED_MODES:
        corrected = nadeau_bengio(vals, n_train, n_test, c)

    headline = "corrected" if corrected is not None and corrected["n"] >= 2 else "folds"
    n_rep = int(scores["repeat"].nunique())
    n_fold = int(scores["fold"].nunique())
    chosen = corrected if headline == "corrected" else folds
    assert chosen is not None  # headline == "corrected" implies corrected is set
    if mode == "repeated_split":
        where = f"over {n_rep} seeds on one fixed split (reflects training randomness only, not the choice of split)"
        how = "Student-t interval"
    else:
        grid = f"{n_rep}\u00d7{n_fold} folds" if n_rep > 1 else f"{n_fold} folds"
        where = f"over {grid}"
        how = "Nadeau\u2013Bengio corrected interval" if headline == "corrected" else "no interval"
    return {
        "folds": folds,
        "repeats": per_repeat,
        "corrected": corrected,
        "headline": headline,
        "headline_text": headline_sentence(metric, chosen, how, where),
    }


def headline_sentence(metric: str, summary: dict[str, Any], how: str, where: str) -> str:
    """One sentence stating an estimate, its standard error and its interval.

    Args:
        metric: Metric name.
        summary: A ``describe``/``nadeau_bengio`` dict.
        how: Name of the interval, e.g. ``"Nadeau–Bengio corrected interval"``.
        where: What it is over, e.g. ``"over 3×10 folds"``.

    Returns:
        E.g. ``"accuracy 0.861 ± 0.015 SE (95% CI 0.830 to 0.892), Nadeau–Bengio corrected
        interval over 3×10 folds"``.
    """
    mean = summary.get("mean")
    se = summary.get("se")
    if mean is None:
        return f"{metric}: no finite values {where}"
    d = decimals_for(se, mean)
    if se is None:
        return f"{metric} {format_number(mean, d)} from a single value {where}; no interval"
    ci = f"{format_number(summary['ci_low'], d)} to {format_number(summary['ci_high'], d)}"
    return (
        f"{metric} {format_number(mean, d)} \u00b1 {format_number(se, d)} SE "
        f"({format_confidence(float(summary['confidence']))} CI {ci}), {how} {where}"
    )


# --------------------------------------------------------------------------- tests


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


def _zero_variance_result(mean_d: float) -> tuple[float, str]:
    """p-value and note when every paired difference is identical (t is undefined)."""
    if mean_d == 0.0:
        return 1.0, "every difference is exactly 0, so t is undefined; p set to 1"
    return 0.0, "every difference is identical and non-zero, so t is infinite; p set to 0"


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
    correction = 1.0 / j + nte / ntr
    se = math.sqrt(correction) * std_d
    df = j - 1
    lo, hi = _interval(mean_d, se, df, c)
    note: str | None = None
    t_stat: float | None
    if se == 0.0:
        p, note = _zero_variance_result(mean_d)
        t_stat = None
    else:
        t_stat = mean_d / se
        p = float(2.0 * sps.t.sf(abs(t_stat), df))
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
    se = std_d / math.sqrt(j)
    df = j - 1
    lo, hi = _interval(mean_d, se, df, c)
    note: str | None = None
    t_stat: float | None
    if se == 0.0:
        p, note = _zero_variance_result(mean_d)
        t_stat = None
    else:
        res = sps.ttest_rel(xa, xb)
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


WELCH_WARNING = (
    "runs are not on identical splits; Welch's test ignores the dependence between resampled scores and is optimistic"
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
        res = sps.ttest_ind(xa, xb, equal_var=False)
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


# --------------------------------------------------------------------------- sequences


def running_stats(values_in_order: Sequence[float] | npt.ArrayLike, confidence: float = 0.95) -> pd.DataFrame:
    """Cumulative mean and Student-t interval after each additional value.

    Used for the "how many repeats are enough" plot. Non-finite values are dropped
    first (keeping the order of the rest), so ``n`` counts finite values only.

    Args:
        values_in_order: Scores in the order they were produced, shape ``(n,)``.
        confidence: Coverage of the intervals.

    Returns:
        DataFrame with ``k`` rows (finite values) and columns ``n``, ``mean``, ``std``
        (ddof=1), ``se``, ``ci_low``, ``ci_high``; ``std``/``se``/``ci_*`` are NaN where n < 2.
    """
    c = _check_confidence(confidence)
    x, _ = _finite(values_in_order, "values_in_order")
    n = np.arange(1, x.size + 1, dtype=np.float64)
    mean = np.cumsum(x) / n
    # Two-pass per prefix: cumulative sum-of-squares formulas lose precision when the
    # mean is large relative to the spread, and n is small (repeats), so O(n^2) is fine.
    std = np.full(x.size, np.nan)
    for i in range(1, x.size):
        std[i] = float(np.std(x[: i + 1], ddof=1))
    se = std / np.sqrt(n)
    tq = np.full(x.size, np.nan)
    if x.size > 1:
        tq[1:] = sps.t.ppf(0.5 + c / 2.0, n[1:] - 1)
    return pd.DataFrame(
        {
            "n": n.astype(np.int64),
            "mean": mean,
            "std": std,
            "se": se,
            "ci_low": mean - tq * se,
            "ci_high": mean + tq * se,
        }
    )


def summarize_vector(values: npt.ArrayLike) -> dict[str, Any]:
    """Distribution summary of a vector: quantiles alongside the mean.

    Args:
        values: Numbers, shape ``(n,)``; non-finite values are dropped and counted.

    Returns:
        Dict with keys ``n``, ``n_nan``, ``mean``, ``std`` (ddof=1, None if n < 2), ``min``,
        ``q25``, ``median``, ``q75``, ``max`` (linear-interpolation quantiles; None if n = 0).
    """
    x, n_nan = _finite(values, "values")
    out: dict[str, Any] = {"n": int(x.size), "n_nan": n_nan}
    if x.size == 0:
        out.update(mean=None, std=None, min=None, q25=None, median=None, q75=None, max=None)
        return out
    q = np.quantile(x, [0.25, 0.5, 0.75])
    out.update(
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else None,
        min=float(x.min()),
        q25=float(q[0]),
        median=float(q[1]),
        q75=float(q[2]),
        max=float(x.max()),
    )
    return out
