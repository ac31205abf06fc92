"""Helpers every statistics module shares: input checks, the Student-t quantile and interval, number formatting."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from dlrun.errors import InputError


def scipy_stats() -> Any:
    """``scipy.stats``, imported on first use: it takes about a second, which ``dlrun status``,
    ``validate`` or ``--help`` need not pay."""
    from scipy import stats

    return stats


#: Evaluation modes that ``summarize_metric`` understands.
CV_MODES: tuple[str, ...] = ("kfold", "repeated_kfold", "repeated_split")

#: Modes whose repeats use different splits, so the corrected (headline) interval applies.
_RESAMPLED_MODES: tuple[str, ...] = ("kfold", "repeated_kfold")


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
    return float(scipy_stats().t.ppf(0.5 + confidence / 2.0, df))


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


#: Fewer degrees of freedom than this and an interval is reported but called not informative:
#: t_{0.975, 2} = 4.3, so a 3-fold interval is more than twice as wide as the normal one.
MIN_INFORMATIVE_DF = 3


def _is_zero_spread(std: float, values: npt.NDArray[np.float64]) -> bool:
    """Whether a sample std is zero up to rounding (identical values in floating point).

    Differences such as 0.8 − 0.7 and 0.9 − 0.8 differ by ~1e-16, which gives a
    "t" of 1e15 for what is a constant; anything below 1e-12 of the values' size is 0.
    """
    scale = max(1.0, float(np.max(np.abs(values)))) if values.size else 1.0
    return std <= 1e-12 * scale


def _positive(x: float, name: str) -> float:
    """Validate a strictly positive finite number (a set size)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number; got {x!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number; got {x!r}")
    return v
