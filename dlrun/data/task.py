"""What is learned from a target, and whether loaded rows can be trained on.

:func:`infer_task` guesses the task from the target values; :func:`check_task` checks a task the
spec sets; :func:`check_usable` finds what would otherwise surface mid-training (missing or
infinite values, a classification loss on a regression target).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from dlrun.data.dataset import Dataset, TaskName
from dlrun.errors import DataError, SpecError
from dlrun.spec.keras_checks import CLASSIFICATION_LOSSES
from dlrun.spec.models import DataSpec

# More distinct integer values than this and an integer target is taken as a quantity, not a class.
MAX_AUTO_CLASSES = 20


def infer_task(y: pd.DataFrame) -> TaskName:
    """Guess the task from the target values.

    Rules: more than one target column → regression; floats with non-integer values →
    regression; two distinct values → binary; non-numeric (or boolean) with more → multiclass;
    integers with 3..20 distinct values → multiclass, more than 20 → regression.

    Args:
        y: Target values, shape (n_rows, n_targets).

    Raises:
        DataError: The target has fewer than two distinct values.
    """
    if y.shape[1] > 1:
        return "regression"
    col = y.iloc[:, 0].dropna()
    n_unique = col.nunique()
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if numeric and pd.api.types.is_float_dtype(col) and not np.all(np.mod(col.to_numpy(dtype=float), 1.0) == 0):
        return "regression"
    if n_unique < 2:
        raise DataError(
            f"the target '{y.columns[0]}' has {n_unique} distinct value(s) ({some_values(col.unique())}); "
            "a model needs at least two classes or a varying quantity. Choose another data.target."
        )
    if n_unique == 2:
        return "binary"
    if not numeric or n_unique <= MAX_AUTO_CLASSES:
        return "multiclass"
    return "regression"


def check_task(y: pd.DataFrame, task: TaskName) -> None:
    """Check that a task set in the spec fits the target values.

    Args:
        y: Target values, shape (n_rows, n_targets).
        task: The task from the spec.

    Raises:
        DataError: The number of classes or the kind of values does not fit the task.
    """
    names = ", ".join(str(c) for c in y.columns)
    if task in ("binary", "multiclass") and y.shape[1] > 1:
        raise DataError(
            f"task '{task}' needs one target column, got {y.shape[1]} ({names}); "
            "multi-output targets are learned as regression: set data.task: regression or pick one data.target."
        )
    col = y.iloc[:, 0].dropna()
    if task == "regression":
        bad = [c for c in y.columns if not pd.api.types.is_numeric_dtype(y[c]) or pd.api.types.is_bool_dtype(y[c])]
        if bad:
            raise DataError(
                f"task 'regression' needs numeric targets, but {', '.join(map(str, bad))} holds labels such as "
                f"{some_values(y[bad[0]].dropna().unique())}; set data.task: binary/multiclass or auto."
            )
        return
    n_unique = col.nunique()
    if task == "binary" and n_unique != 2:
        few = "too few" if n_unique < 2 else "too many"
        raise DataError(
            f"task 'binary' needs exactly 2 classes, but the target '{names}' has {n_unique} ({few} classes: "
            f"{some_values(col.unique())}); set data.task: {'multiclass' if n_unique > 2 else 'auto'} "
            "or choose another data.target."
        )
    if task == "multiclass":
        if n_unique < 2:
            raise DataError(
                f"task 'multiclass' needs at least 2 classes, but the target '{names}' has {n_unique} (too few "
                f"classes: {some_values(col.unique())}); choose another data.target."
            )
        if pd.api.types.is_float_dtype(col) and not np.all(np.mod(col.to_numpy(dtype=float), 1.0) == 0):
            raise DataError(
                f"task 'multiclass' needs class labels, but the target '{names}' has non-integer values such as "
                f"{some_values(col.unique())}; set data.task: regression or auto."
            )


def some_values(values: Any, k: int = 6) -> str:
    """The first ``k`` values as a reader would write them, with how many there are in all."""
    vals = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in vals[:k])
    return text + (f", … ({len(vals)} in all)" if len(vals) > k else "")


def decide_task(y: pd.DataFrame, spec: DataSpec, registry_task: TaskName | None) -> tuple[TaskName, bool]:
    """The task (the spec's, else the registry's, else inferred) and whether it was inferred."""
    if spec.task != "auto":
        task = cast(TaskName, spec.task)
        check_task(y, task)
        return task, False
    if registry_task is not None:
        check_task(y, registry_task)
        return registry_task, False
    return infer_task(y), True


def check_usable(data: Dataset, *, impute: str = "none", loss: str | None = None, task: str | None = None) -> None:
    """Problems with the loaded rows that would otherwise surface mid-training or silently.

    Counts come from ALL rows (not a sample). Checked: missing values without ``preprocessing.impute``,
    infinite values (named by column), and a classification loss on a regression target.

    Args:
        data: The loaded dataset.
        impute: ``preprocessing.impute``.
        loss: The ``compile.loss`` name, if the spec sets one.
        task: The resolved task.

    Raises:
        DataError: Missing or infinite values.
        SpecError: A loss that does not fit the task.
    """
    if loss is not None and task == "regression" and loss in CLASSIFICATION_LOSSES:
        raise SpecError(
            [
                (
                    "compile.loss",
                    f"'{loss}' is a classification loss, but the target {', '.join(data.target_names)} is a regression "
                    "target (numbers); use mse, mae or huber, or set data.task if the target holds class labels",
                )
            ]
        )
    if not isinstance(data.X, pd.DataFrame):
        return
    numeric = data.X.select_dtypes(include="number")
    if not numeric.empty:
        values = numeric.to_numpy(dtype=np.float64)
        inf = np.isinf(values).sum(axis=0)
        if inf.any():
            cols = [f"{c} ({int(n)} row{'s' if n != 1 else ''})" for c, n in zip(numeric.columns, inf) if n]
            raise DataError(
                f"infinite values (inf) in column(s) {', '.join(cols[:8])}; a network cannot learn from them: "
                "remove or replace those values in the file, or drop the column(s) with data.drop"
            )
    if impute == "none":
        listing = missing_listing(data.X)
        if listing:
            raise DataError(
                f"missing values (NaN) in {listing} of {data.n_rows} rows; set preprocessing.impute: median (or mean, "
                "most_frequent) to fill them from each fold's training rows, or drop those columns with data.drop"
            )


def missing_listing(X: pd.DataFrame) -> str:
    """``"col (n missing), …"`` for the columns of ``X`` with NaNs; empty when there are none."""
    counts = X.isna().sum()
    return ", ".join(f"{c} ({int(n)} missing)" for c, n in counts[counts > 0].items())
