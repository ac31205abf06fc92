"""Tests of dlrun.data.task: task inference and checks of a task the spec sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.data.dataset import Dataset
from dlrun.data.loaders import load_dataset
from dlrun.data.task import check_task, infer_task
from dlrun.errors import DataError
from dlrun.spec.models import DataSpec


# ----------------------------------------------------------------------------- task inference
@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1, 0, 1], "binary"),
        (["M", "R", "R"], "binary"),
        (["'-1'", "'1'"], "binary"),
        ([True, False, True], "binary"),
        ([1.0, 2.0, 1.0], "binary"),
        (["a", "b", "c"], "multiclass"),
        ([3, 4, 5, 6, 7, 8], "multiclass"),
        ([1.0, 2.0, 3.0], "multiclass"),
        (list(range(21)), "regression"),
        ([0.5, 1.0, 1.5], "regression"),
        ([0.1, 0.2], "regression"),
        ([f"c{i}" for i in range(30)], "multiclass"),
    ],
)
def test_infer_task(values: list[object], task: str) -> None:
    assert infer_task(pd.DataFrame({"t": values})) == task


def test_infer_task_multi_column_is_regression() -> None:
    assert infer_task(pd.DataFrame({"a": [0, 1], "b": [1, 0]})) == "regression"


def test_infer_task_single_value() -> None:
    with pytest.raises(DataError, match="1 distinct value"):
        infer_task(pd.DataFrame({"t": [1, 1, 1]}))


@pytest.mark.parametrize(
    ("values", "task", "match"),
    [
        (["a", "b", "c"], "binary", "too many classes"),
        ([1, 1, 1], "binary", "too few classes"),
        (["a", "b"], "regression", "numeric"),
        ([0.5, 1.5, 2.5], "multiclass", "non-integer"),
    ],
)
def test_check_task_rejects(values: list[object], task: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        check_task(pd.DataFrame({"t": values}), task)  # type: ignore[arg-type]


def test_user_task_binary_with_three_classes(tmp_path: Path) -> None:
    path = tmp_path / "three.csv"
    path.write_text("x,y\n1,a\n2,b\n3,c\n")
    with pytest.raises(DataError, match="too many classes"):
        load_dataset(DataSpec(source=str(path), task="binary"))


def test_dataset_n_rows() -> None:
    ds = Dataset(
        X=np.zeros((3, 2, 2)),
        y=pd.DataFrame({"label": [0, 1, 0]}),
        feature_names=[],
        target_names=["label"],
        task="binary",
        task_inferred=True,
        description="",
    )
    assert ds.n_rows == 3 and ds.raw_columns is None
