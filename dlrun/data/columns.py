"""Column and label helpers of :mod:`dlrun.data.preprocessing`: scalers by name, which columns hold
labels, picking columns, the sorted classes of a target, and classes as plain JSON data."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import DataError
from dlrun.spec.dotted import suggest


def make_scaler(name: str) -> Any:
    """Return a fresh scikit-learn scaler for ``preprocessing.scaling`` (``"passthrough"`` for none)."""
    from sklearn.preprocessing import MinMaxScaler, PowerTransformer, RobustScaler, StandardScaler

    if name == "standard":
        return StandardScaler()
    if name == "minmax":
        return MinMaxScaler()
    if name == "robust":
        return RobustScaler()
    if name == "power":
        return PowerTransformer(method="yeo-johnson")
    if name == "none":
        return "passthrough"
    raise DataError(f"unknown scaling '{name}'; use standard, minmax, robust, power or none")


def is_categorical_dtype(s: pd.Series | Any) -> bool:
    """Whether a column (or a dtype) holds labels rather than numbers (bool counts as labels)."""
    dtype: Any = getattr(s, "dtype", s)
    try:
        return _categorical_dtype(dtype)
    except TypeError:  # an unhashable extension dtype: the same test, uncached
        return bool(_categorical_dtype.__wrapped__(dtype))


@functools.lru_cache(maxsize=64)
def _categorical_dtype(dtype: Any) -> bool:
    # cached: cross-validation asks this for every column of every fold
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def select_columns(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``frame[names]``, without pandas' copy when the columns already are exactly ``names``."""
    if len(frame.columns) == len(names) and all(a == b for a, b in zip(frame.columns, names)):
        return frame
    return frame[names]


def resolve_categorical(ref: int | str, columns: list[str]) -> str:
    """A ``preprocessing.categorical`` entry (name or index) → column name."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not -len(columns) <= ref < len(columns):
            raise DataError(
                f"preprocessing.categorical index {ref} is out of range: there are {len(columns)} feature columns "
                f"(indices count features only, after the target and data.drop are removed)"
            )
        return columns[ref]
    if ref in columns:
        return str(ref)
    raise DataError(
        f"preprocessing.categorical column '{ref}' is not a feature column{suggest(str(ref), columns)}; "
        f"feature columns: {', '.join(columns[:30])}"
    )


def sorted_unique(values: pd.Series) -> np.ndarray:
    """Distinct labels, sorted, with their original types (ints stay ints, strings stay strings)."""
    uniq = pd.unique(values.to_numpy())
    try:
        ordered = sorted(uniq.tolist())
    except TypeError:  # mixed types: order by text so the order is still deterministic
        ordered = sorted(uniq.tolist(), key=str)
    arr = np.asarray(ordered)
    return arr if arr.dtype.kind in "biufU" else np.asarray(ordered, dtype=object)


def labels_to_plain(classes: np.ndarray | None) -> dict[str, Any] | None:
    if classes is None:
        return None
    values = [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()]
    return {"dtype": "object" if classes.dtype == object else classes.dtype.str, "values": values}


def labels_from_plain(d: dict[str, Any] | None) -> np.ndarray | None:
    if d is None:
        return None
    return np.asarray(d["values"], dtype=object if d["dtype"] == "object" else np.dtype(d["dtype"]))
