"""The loaded dataset every loader returns, before any preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

TaskName = Literal["binary", "multiclass", "regression"]


@dataclass
class Dataset:
    """A loaded dataset, before any preprocessing.

    Attributes:
        X: Tabular features as a DataFrame of shape (n_rows, n_features) with string column names,
            or images as an ndarray of shape (n, height, width) or (n, height, width, channels).
        y: The target column(s), shape (n_rows, n_targets), with ORIGINAL values (labels as read).
        feature_names: Names of the feature columns of ``X`` (empty for images).
        target_names: Names of the columns of ``y``.
        task: What is learned.
        task_inferred: True when ``task`` was inferred from the target values (``data.task: auto``).
        description: One line saying what the data is.
        raw_columns: The full column layout of the source table, target included, so predictions can
            read files in the training layout; None for images.
        test_rows: Indices of the source's own test rows (Keras' official test sets), shape ``(n_test,)``,
            for ``evaluation.test_rows: source``; None when the source has no such division.
    """

    X: pd.DataFrame | np.ndarray
    y: pd.DataFrame
    feature_names: list[str]
    target_names: list[str]
    task: TaskName
    task_inferred: bool
    description: str
    raw_columns: list[str] | None = None
    test_rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows (samples)."""
        return len(self.y)
