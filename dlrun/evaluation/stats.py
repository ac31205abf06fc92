"""Summary statistics and significance tests for resampled model scores.

Every function here is pure (no I/O) and returns plain JSON-serialisable values:
Python floats and ints, with ``None`` wherever a number does not exist (never NaN
or infinity, which are not valid JSON).

The estimates follow standard practice for resampled evaluation:

* ``describe`` -- sample mean, sample standard deviation (ddof=1), standard error
  and a Student-t interval, treating the values as independent draws.
* ``nadeau_bengio`` -- the headline: the corrected resampled variance of Nadeau & Bengio
  (2003), which accounts for the overlap between training sets of different folds, with
  the fold correlation calibrated in ``benchmarks/calibration.py`` and repeats treated as
  re-testing the same rows (see its docstring).
* ``corrected_paired_ttest`` -- the corresponding paired test for two models scored
  on identical splits.
* ``welch_ttest`` -- Welch's unequal-variance test, the fallback when the splits
  differ; it ignores the dependence between resampled scores, so its p-value is only
  approximate (in the calibration study it was conservative, with little power).
* ``bayesian_correlated_ttest`` -- the Bayesian correlated t-test of Corani & Benavoli
  (2015) with a region of practical equivalence (Benavoli et al., 2017).
* ``holm`` -- Holm's step-down adjustment of p-values for many comparisons.

Intervals of bounded metrics (accuracy, ROC AUC, F1, precision, recall, balanced
accuracy in [0, 1]; R² ≤ 1; errors ≥ 0) are built on a scale that respects the bound
(logit, log) with the delta method and mapped back, or capped (R² at 1), so they never leave
the metric's range. Only an interval whose coverage was checked in
``benchmarks/calibration.py`` is called a confidence interval; every block carries a
``kind`` and a ``label`` saying what its spread measures.
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

#: Modes whose repeats use different splits, so the corrected (headline) interval applies.
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


#: The scale each metric's interval is built on, so that it stays inside the metric's range:
#: scores in [0, 1] on the logit scale (delta method, mapped back: asymmetric near a bound, where
#: a bounded score's sampling distribution is skewed), errors ≥ 0 on the log scale. R² (≤ 1,
#: unbounded below) keeps the plain interval capped at 1 (``cap1``): on the log(1 − R²) scale,
#: whose interval is short on the upper side, it covered the truth less often in
#: benchmarks/calibration.py. ``clip01`` (the plain interval clipped to [0, 1]) and ``log1m`` remain
#: available to :func:`bounded_interval`.
METRIC_SCALES: dict[str, str] = {
    "accuracy": "logit",
    "balanced_accuracy": "logit",
    "roc_auc": "logit",
    "f1": "logit",
    "precision": "logit",
    "recall": "logit",
    "r2": "cap1",
    "mae": "log",
    "mse": "log",
    "rmse": "log",
    "log_loss": "log",
}

#: The range of each scale's metric, for messages: ``(low, high)`` with None for no bound.
_SCALE_RANGE: dict[str, tuple[float | None, float | None]] = {
    "logit": (0.0, 1.0),
    "clip01": (0.0, 1.0),
    "log1m": (None, 1.0),
    "cap1": (None, 1.0),
    "log": (0.0, None),
    "identity": (None, None),
}

#: Fewer degrees of freedom than this and an interval is reported but called not informative:
#: t_{0.975, 2} = 4.3, so a 3-fold interval is more than twice as wide as the normal one.
MIN_INFORMATIVE_DF = 3


def metric_scale(metric: str | None) -> str:
    """The scale an interval of ``metric`` is built on (``identity`` for unknown metrics)."""
    return METRIC_SCALES.get(str(metric), "identity") if metric is not None else "identity"


def _to_scale(x: float, scale: str) -> tuple[float, float] | None:
    """``(g(x), g'(x))`` on ``scale``, or None when ``x`` sits on (or past) the bound."""
    if scale == "logit":
        if not 0.0 < x < 1.0:
            return None
        return math.log(x / (1.0 - x)), 1.0 / (x * (1.0 - x))
    if scale == "log1m":
        if not x < 1.0:
            return None
        return math.log(1.0 - x), -1.0 / (1.0 - x)
    if scale == "log":
        if not x > 0.0:
            return None
        return math.log(x), 1.0 / x
    return x, 1.0


def _from_scale(g: float, scale: str) -> float:
    if scale in ("log1m", "log") and g > 700.0:  # exp would overflow: the end is unbounded
        return -math.inf if scale == "log1m" else math.inf
    if scale == "logit":
        return 1.0 / (1.0 + math.exp(-g)) if g >= 0 else math.exp(g) / (1.0 + math.exp(g))
    if scale == "log1m":
        return 1.0 - math.exp(g)
    if scale == "log":
        return math.exp(g)
    return g


def bounded_interval(mean: float, se: float, df: float, confidence: float, scale: str) -> tuple[float, float, str]:
    """Student-t interval built on ``scale`` by the delta method, mapped back to the metric.

    On the transformed scale the interval is ``g(mean) ± t·se·|g'(mean)|``; mapping it back
    keeps it inside the metric's range and makes it asymmetric near a bound (where the
    sampling distribution of a bounded score is skewed).

    Args:
        mean: The estimate.
        se: Its standard error on the metric's own scale.
        df: Degrees of freedom of the t quantile.
        confidence: Coverage asked for.
        scale: One of ``clip01`` (plain, clipped to [0, 1]), ``logit``, ``log1m``, ``log``,
            ``cap1`` (plain, capped at 1), ``identity``
            (see :data:`METRIC_SCALES`).

    Returns:
        ``(low, high, scale_used)``; ``scale_used`` is ``identity`` when ``mean`` sits on the
        bound (then the plain interval is clipped to the range, and zero-width when se is 0).
    """
    if scale == "cap1":
        lo, hi = _interval(mean, se, df, confidence)
        return min(lo, 1.0), min(hi, 1.0), "cap1"
    if scale == "clip01":
        lo, hi = _interval(mean, se, df, confidence)
        return min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0), "clip01"
    if scale != "identity":
        g = _to_scale(mean, scale)
        if g is not None:
            half = _t_quantile(confidence, df) * se * abs(g[1])
            a, b = _from_scale(g[0] - half, scale), _from_scale(g[0] + half, scale)
            if math.isfinite(a) and math.isfinite(b):
                return min(a, b), max(a, b), scale
    lo, hi = _interval(mean, se, df, confidence)
    rlo, rhi = _SCALE_RANGE.get(scale, (None, None))
    if rlo is not None:
        lo, hi = max(lo, rlo), max(hi, rlo)
    if rhi is not None:
        lo, hi = min(lo, rhi), min(hi, rhi)
    return lo, hi, "identity"


def _scale_text(scale: str) -> str:
    return {
        "logit": "built on the logit scale and mapped back, so it stays inside [0, 1]",
        "log1m": "built on the log(1 \u2212 R\u00b2) scale and mapped back, so it stays at or below 1",
        "cap1": "capped at 1, the largest possible value",
        "clip01": "clipped to [0, 1], the metric's range",
        "log": "built on the log scale and mapped back, so it stays positive",
    }.get(scale, "")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's (1979) step-down adjusted p-values; controls the family-wise error rate.

    Args:
        pvalues: Raw p-values, length ``m``; None entries (no test) are skipped and stay None.

    Returns:
        Adjusted p-values in the input order, each ``min(1, max_{j ≤ i} (m − j + 1)·p_(j))``
        over the sorted tested p-values.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(float(p))]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda k: float(pvalues[k]))):  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


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
    return float((sps.t.ppf(1.0 - alpha / 2.0, df) + sps.t.ppf(power, df)) * se)


def _is_zero_spread(std: float, values: npt.NDArray[np.float64]) -> bool:
    """Whether a sample std is zero up to rounding (identical values in floating point).

    Differences such as 0.8 − 0.7 and 0.9 − 0.8 differ by ~1e-16, which gives a
    "t" of 1e15 for what is a constant; anything below 1e-12 of the values' size is 0.
    """
    scale = max(1.0, float(np.max(np.abs(values)))) if values.size else 1.0
    return std <= 1e-12 * scale


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


#: The calibrated fold-correlation factor c of the headline interval: the correlation ρ between
#: two fold scores of one k-fold partition is taken as ρ/(1 − ρ) = c·n_test/n_train. Nadeau &
#: Bengio (2003) use c = 1 (ρ = n_test/n), a heuristic made for random train/test splits, whose
#: test sets overlap; the test sets of one k-fold partition are disjoint, so only the overlap of
#: training sets correlates its folds, and c = 1 covered the truth 97–99% of the time at 10 folds.
#: c = 1/2 is **estimated from benchmarks/calibration.py** (two selection runs with seeds of their
#: own, 1,500 and 900 datasets per design: moment estimates of ρ at single k-fold gave c = 0.3–0.6,
#: and every headline row covered 93–97.5% with c = 0.5 or 0.55). It is calibrated for small
#: networks on 200-row tabular data; a less stable learner correlates its folds more.
FOLD_RHO_FACTOR = 0.5


def adjust_fold_scores(values: npt.ArrayLike, metric: str | None, n_test: float) -> tuple[npt.NDArray[np.float64], str]:
    """Per-fold scores as the headline averages them: R² with the variance of y estimated without bias.

    A fold's R² is ``1 − SS_res/SS_tot`` with ``SS_tot = Σ(y − ȳ_fold)²`` over its own m rows:
    ``SS_res/m`` estimates the model's mean squared error without bias, but ``SS_tot/m``
    underestimates the variance of y by the factor (m − 1)/m, so a small fold's R² understates
    R² on new data. The adjusted score ``1 − (1 − R²_fold)·(m − 1)/m`` is the ratio of the two
    unbiased estimates. (A ratio of unbiased estimates is itself still biased low; in
    benchmarks/calibration.py the mean of per-fold R² was 0.09 below the truth at 20 rows per
    fold and about 0.055 below it after the adjustment.) Other metrics are unbiased per fold and are
    returned unchanged.

    Args:
        values: Per-fold scores, shape ``(J,)``.
        metric: Metric name.
        n_test: Test rows per fold (a mean for unequal folds).

    Returns:
        ``(scores, note)``: the scores, shape ``(J,)``, and a sentence fragment saying what was done
        (empty when nothing was).
    """
    x = _as_1d(values, "values")
    m = float(n_test)
    if metric != "r2" or not m >= 2.0:
        return x, ""
    return 1.0 - (1.0 - x) * (m - 1.0) / m, (
        f"per-fold R\u00b2 adjusted to 1 \u2212 (1 \u2212 R\u00b2)\u00b7(m \u2212 1)/m with m = {m:g} test rows, "
        "so that the variance of y is estimated without bias"
    )


def _repeat_groups(
    x: npt.NDArray[np.float64], repeats: npt.ArrayLike | None
) -> tuple[list[npt.NDArray[np.float64]], bool]:
    """Split scores by repeat: ``([finite scores of each repeat], every repeat complete)``."""
    if repeats is None:
        return [x[np.isfinite(x)]], bool(np.isfinite(x).all())
    ids = np.asarray(repeats)
    if ids.shape != x.shape:
        raise InputError(f"repeats must give one repeat id per score; got {ids.size} ids for {x.size} scores")
    groups, complete = [], True
    for rep in pd.unique(ids):
        g = x[ids == rep]
        complete = complete and bool(np.isfinite(g).all())
        groups.append(g[np.isfinite(g)])
    return groups, complete


def nadeau_bengio(
    values: npt.ArrayLike,
    n_train: float,
    n_test: float,
    confidence: float = 0.95,
    metric: str | None = None,
    *,
    repeats: npt.ArrayLike | None = None,
    rho_factor: float = FOLD_RHO_FACTOR,
) -> dict[str, Any]:
    """The headline: mean of resampled scores with a variance corrected for correlated folds.

    Fold scores are positively correlated because their training sets overlap, so ``s²/J``
    underestimates the variance of their mean. Nadeau & Bengio (2003) correct it to
    ``(1/J + ρ/(1 − ρ))·s²``, taking ``ρ/(1 − ρ) = n_test/n_train``; Bouckaert & Frank (2004)
    apply that to all J = r·k scores of r×k-fold cross-validation. Here, as calibrated in
    ``benchmarks/calibration.py``:

    * one k-fold partition has variance ``(1/k + c·n_test/n_train)·s_w²`` with ``c`` =
      ``rho_factor`` (:data:`FOLD_RHO_FACTOR`; Nadeau & Bengio's c = 1 over-covers a single
      k-fold, whose test sets are disjoint), ``s_w²`` the fold variance within a repeat, pooled
      over repeats with ``Σ(k_i − 1)`` degrees of freedom;
    * r repeats re-test the same rows, so averaging them removes only the split-to-split part of
      that variance (Vanwinckelen & Blockeel 2012): ``se² = (1/k + c·n_test/n_train)·s_w² −
      (1 − 1/r)·s_R²``, ``s_R²`` the variance of the per-repeat means (complete repeats only;
      never below the naive ``s²/J``). With r = 1 and c = 1 this is Nadeau & Bengio's interval.

    For a bounded ``metric`` the interval is built on a scale that respects the bound
    (:func:`bounded_interval`), and per-fold R² is first adjusted for small folds
    (:func:`adjust_fold_scores`).

    Args:
        values: Per-resample scores, shape ``(J,)``. Non-finite values are dropped and counted.
        n_train: Training-set size per resample (may be a float, e.g. a mean fold size).
        n_test: Test-set size per resample (may be a float).
        confidence: Coverage of the interval, strictly between 0 and 1.
        metric: Metric name, which picks the interval's scale (:data:`METRIC_SCALES`); None: plain.
        repeats: Repeat id of each score, shape ``(J,)``; None: all scores are one k-fold partition
            (or J resamples treated as one).
        rho_factor: The factor c above (1: Nadeau & Bengio's ρ = n_test/n).

    Returns:
        The keys of ``describe`` over the (adjusted) scores (``std`` is their plain sample std;
        ``se``, ``ci_low``, ``ci_high`` and ``df`` are the corrected ones) plus ``correction``
        (``se²/std²``, so ``se = √correction·std``), ``se_floor`` (the se with infinitely many
        repeats, the narrowest more repeats can reach), ``n_train``, ``n_test``, ``rho_factor``,
        ``scale`` (the interval's scale), ``se_method`` (why se ≠ std/√J), ``kind``
        (``"confidence_interval"``), ``label`` and ``informative`` (False below
        :data:`MIN_INFORMATIVE_DF` degrees of freedom).

    Raises:
        InputError: If ``n_train``, ``n_test`` or ``rho_factor`` is not a positive number, or as ``describe``.
    """
    c = _check_confidence(confidence)
    ntr = _positive(n_train, "n_train")
    nte = _positive(n_test, "n_test")
    cf = _positive(rho_factor, "rho_factor")
    raw = _as_1d(values, "values")
    x, adjusted = adjust_fold_scores(raw, metric, nte)
    groups, complete = _repeat_groups(x, repeats)
    out = describe(x, c)
    j = int(out["n"])
    pct = format_confidence(c)
    out.update(
        n_train=ntr,
        n_test=nte,
        rho_factor=cf,
        correction=None,
        se_floor=None,
        scale=None,
        kind="confidence_interval",
        label=f"{pct} confidence interval (corrected for correlated folds, calibrated)",
        se_method=None,
        informative=False,
    )
    dropped = _dropped_text(int(out["n_nan"]))
    within = [g for g in groups if g.size >= 2]
    df = sum(g.size - 1 for g in within)
    if j < 2 or df < 1:
        out["method"] = (
            f"{j} finite resample score{'s' if j != 1 else ''}{dropped}; the corrected variance needs at least "
            "2 in one repeat"
        )
        out.update(se=None, ci_low=None, ci_high=None, df=None)
        return out
    r = len(groups)
    k = j / r
    s_w2 = sum(float(((g - g.mean()) ** 2).sum()) for g in within) / df
    means = [float(g.mean()) for g in groups if g.size]
    s_r2 = float(np.var(means, ddof=1)) if r >= 2 and complete and len(means) == r else 0.0
    base = (1.0 / k + cf * nte / ntr) * s_w2
    std = float(out["std"])
    repeats_removed = base - (1.0 - 1.0 / r) * s_r2
    var = max(repeats_removed, std**2 / j)
    se = math.sqrt(var)
    mean = float(out["mean"])
    lo, hi, scale = bounded_interval(mean, se, df, c, metric_scale(metric))
    informative = df >= MIN_INFORMATIVE_DF
    correction = var / std**2 if std > 0 else 1.0 / k + cf * nte / ntr
    out.update(
        se=se,
        ci_low=lo,
        ci_high=hi,
        df=df,
        correction=correction,
        se_floor=math.sqrt(max(base - s_r2, 0.0)),
        scale=scale,
        informative=informative,
        se_method=(
            f"corrected standard error \u221a{correction:.4g}\u00b7std, not std/\u221aJ: the folds share training "
            "rows, so their scores are correlated" + (", and repeats re-test the same rows" if r > 1 else "")
        ),
    )
    on_scale = _scale_text(scale)
    sizes = f"k = {k:g}, c = {cf:g}, n_test/n_train = {nte:g}/{ntr:g}"
    floored = var > repeats_removed
    if r > 1:
        how = (
            f"variance of one k-fold partition (1/k + c\u00b7n_test/n_train)\u00b7s_w\u00b2 ({sizes}; s_w\u00b2 the "
            f"within-repeat fold variance pooled over {r} repeats) less the split-to-split variance that averaging "
            "the repeats removes, (1 \u2212 1/r)\u00b7s_R\u00b2 over the per-repeat means"
            + ("" if complete else " (not subtracted: a repeat has a failed fold)")
        )
    else:
        how = f"variance (1/k + c\u00b7n_test/n_train)\u00b7s\u00b2 ({sizes})"
    if floored:
        how += ", raised to the naive s\u00b2/J it may not go below"
    out["method"] = (
        f"mean of {j} resample scores{dropped}"
        + (f" ({adjusted})" if adjusted else "")
        + f"; {how}: factor {correction:.4g} instead of the naive 1/J = {1.0 / j:.4g}. This is the Nadeau & Bengio "
        f"(2003) correction with the fold correlation \u03c1/(1 \u2212 \u03c1) = c\u00b7n_test/n_train"
        + (
            f" (their paper uses c = 1; c = {cf:g} is calibrated in benchmarks/calibration.py)"
            if cf == FOLD_RHO_FACTOR
            else " (their paper uses c = 1)"
        )
        + f"; {pct} Student-t interval with {df} df"
        + (f", {on_scale}" if on_scale else "")
        + ("" if informative else f"; with only {df} df the interval is not informative")
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
        most defensible estimate) and ``headline_text`` (one sentence). Every block has
        ``kind`` and ``label``; only the headline block's interval is ``ci_low``/``ci_high``:
        the naive fold interval (k-fold modes) is ``naive_low``/``naive_high`` and the
        per-repeat interval is ``precision_low``/``precision_high`` (see :func:`interval_of`).
        Intervals of bounded metrics stay inside the metric's range.

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
    scale = metric_scale(metric)
    pct = format_confidence(c)
    folds = describe(vals, c)
    _rescale(folds, scale)

    per_repeat: dict[str, Any] | None = None
    if repeats > 1:
        # No skipna: a repeat with a failed fold has no mean (it would be an average over other
        # rows than its siblings'); describe drops it and counts it in n_nan.
        means = pd.Series(vals, index=scores.index).groupby(scores["repeat"]).agg(lambda v: v.mean(skipna=False))
        per_repeat = describe(means.to_numpy(dtype=np.float64), c)
        _rescale(per_repeat, scale)
        n_bad = int(per_repeat["n_nan"])
        per_repeat["method"] = (
            "over per-repeat means"
            + (f" ({n_bad} repeat{'s' if n_bad != 1 else ''} with a failed fold left out)" if n_bad else "")
            + ": "
            + per_repeat["method"].replace(_dropped_text(n_bad), "")
            + "; this is the precision of the cross-validation estimate for this dataset (how much it moves "
            "with another split), not an interval for the score on new data"
        )
        _relabel(
            per_repeat,
            "split_precision",
            f"precision of the CV estimate (how much it moves with another split): {pct} t-interval over "
            f"per-repeat means, not a confidence interval for the score on new data",
            "precision",
        )

    corrected: dict[str, Any] | None = None
    if mode in _RESAMPLED_MODES:
        corrected = nadeau_bengio(vals, n_train, n_test, c, metric=metric, repeats=scores["repeat"].to_numpy())

    headline = "corrected" if corrected is not None and corrected["n"] >= 2 else "folds"
    if mode == "repeated_split":
        folds["kind"] = "seed_interval"
        folds["label"] = (
            f"{pct} interval over seeds on one fixed split: training randomness only, not the choice of split"
        )
        folds["informative"] = folds["df"] is not None and folds["df"] >= MIN_INFORMATIVE_DF
    else:
        folds["method"] += "; treats the folds as independent, which they are not (they share training rows)"
        _relabel(
            folds,
            "naive_fold_interval",
            f"naive {pct} t-interval over folds: ignores the dependence between folds (too narrow), "
            "not a confidence interval",
            "naive",
        )
    n_rep = int(scores["repeat"].nunique())
    n_fold = int(scores["fold"].nunique())
    chosen = corrected if headline == "corrected" else folds
    assert chosen is not None  # headline == "corrected" implies corrected is set
    if mode == "repeated_split":
        where = f"over {n_rep} seeds on one fixed split (reflects training randomness only, not the choice of split)"
        how = "Student-t interval"
        word = "interval"
    else:
        grid = f"{n_rep}\u00d7{n_fold} folds" if n_rep > 1 else f"{n_fold} folds"
        where = f"over {grid}"
        how = "interval corrected for correlated folds" if headline == "corrected" else "no interval"
        word = "CI"
    return {
        "folds": folds,
        "repeats": per_repeat,
        "corrected": corrected,
        "headline": headline,
        "headline_text": headline_sentence(metric, chosen, how, where, ci_word=word),
    }


def _rescale(block: dict[str, Any], scale: str) -> None:
    """Rebuild a ``describe`` block's interval on the metric's bounded scale (in place)."""
    if block.get("se") is None or block.get("mean") is None:
        return
    lo, hi, used = bounded_interval(
        float(block["mean"]), float(block["se"]), float(block["df"]), float(block["confidence"]), scale
    )
    block.update(ci_low=lo, ci_high=hi, scale=used)
    text = _scale_text(used)
    if text:
        block["method"] += f", {text}"
    if block["df"] < MIN_INFORMATIVE_DF:
        block["method"] += f"; with only {block['df']} df the interval is not informative"


def _relabel(block: dict[str, Any], kind: str, label: str, prefix: str) -> None:
    """Name a non-headline interval for what it is: ``ci_low``/``ci_high`` become ``<prefix>_low/high``."""
    block["kind"] = kind
    block["label"] = label
    block[f"{prefix}_low"] = block.pop("ci_low", None)
    block[f"{prefix}_high"] = block.pop("ci_high", None)
    block["informative"] = block.get("df") is not None and block["df"] >= MIN_INFORMATIVE_DF


def interval_of(block: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """The interval of any summary block, whatever it is named (``ci_``, ``naive_``, ``precision_``)."""
    if not block:
        return None, None
    for prefix in ("ci", "naive", "precision"):
        if f"{prefix}_low" in block:
            return block.get(f"{prefix}_low"), block.get(f"{prefix}_high")
    return None, None


def headline_sentence(metric: str, summary: dict[str, Any], how: str, where: str, *, ci_word: str = "CI") -> str:
    """One sentence stating an estimate, its standard error and its interval.

    Args:
        metric: Metric name.
        summary: A ``describe``/``nadeau_bengio`` dict.
        how: Name of the interval, e.g. ``"interval corrected for correlated folds"``.
        where: What it is over, e.g. ``"over 3×10 folds"``.
        ci_word: What the interval is called: ``CI`` only where its coverage was checked.

    Returns:
        E.g. ``"accuracy 0.861 ± 0.015 SE (95% CI 0.830 to 0.892), interval corrected for
        correlated folds over 3×10 folds"``; a sentence saying the interval is not informative is
        appended below :data:`MIN_INFORMATIVE_DF` degrees of freedom.
    """
    mean = summary.get("mean")
    se = summary.get("se")
    if mean is None:
        return f"{metric}: no finite values {where}"
    d = decimals_for(se, mean)
    if se is None:
        return f"{metric} {format_number(mean, d)} from a single value {where}; no interval"
    lo, hi = interval_of(summary)
    ci = f"{format_number(lo, d)} to {format_number(hi, d)}"
    text = (
        f"{metric} {format_number(mean, d)} \u00b1 {format_number(se, d)} SE "
        f"({format_confidence(float(summary['confidence']))} {ci_word} {ci}), {how} {where}"
    )
    df = summary.get("df")
    if df is not None and df < MIN_INFORMATIVE_DF:
        text += f"; with only {df} degree{'s' if df != 1 else ''} of freedom this interval is not informative"
    return text


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
        p = float(2.0 * sps.t.sf(abs(t_stat), df))
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
        ``decided`` (the region with probability ≥ 0.95, or None), ``method`` and ``note``.

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
        below = float(sps.t.cdf((-r - mean_d) / scale, df))
        above = float(sps.t.sf((r - mean_d) / scale, df))
        inside = max(0.0, 1.0 - below - above)
    p_a, p_b = (above, below) if higher_is_better else (below, above)
    decided = None
    for name, prob in (("a_better", p_a), ("equal", inside), ("b_better", p_b)):
        if prob >= 0.95:
            decided = name
    if df < MIN_INFORMATIVE_DF:
        few = f"only {df} df: the posterior is dominated by the prior-free t with very heavy tails"
        note = f"{note}; {few}" if note else few
    return {
        "test": "bayesian_correlated",
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
            f"Bayesian correlated t-test (Corani & Benavoli 2015; Benavoli et al. 2017) on {j} differences "
            f"a \u2212 b{_dropped_text(n_nan)}; posterior Student t with {df} df, scale "
            f"\u221a{correction:.4g}\u00b7s_d; region of practical equivalence \u00b1{r:g}"
        ),
        "note": note,
    }


WELCH_WARNING = (
    "runs are not on identical splits, so no paired test is possible; Welch's test ignores the dependence between "
    "fold scores, so its p-value is only approximate (conservative, with little power, in the calibration study)"
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
