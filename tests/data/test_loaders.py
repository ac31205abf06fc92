"""Tests of dlrun.data.loaders: CSV options, columns, scikit-learn sets, generators and Keras images."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlrun.data.loaders import load_dataset
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions, DataSpec

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


# ----------------------------------------------------------------------------- CSV
@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("a,b,color,label\n1,2.5,red,yes\n2,3.5,blue,no\n3,4.5,red,yes\n4,5.5,blue,no\n")
    return path


def test_csv_default_target_is_last_column(csv_file: Path) -> None:
    ds = load_dataset(DataSpec(source=str(csv_file)))
    assert ds.feature_names == ["a", "b", "color"]
    assert ds.target_names == ["label"]
    assert ds.task == "binary" and ds.task_inferred
    assert ds.raw_columns == ["a", "b", "color", "label"]


@pytest.mark.parametrize("target", ["a", 0, -4])
def test_csv_target_by_name_or_index(csv_file: Path, target: int | str) -> None:
    ds = load_dataset(DataSpec(source=str(csv_file), target=target, task="regression"))
    assert ds.target_names == ["a"]
    assert "a" not in ds.feature_names


def test_csv_target_list_is_multi_output(csv_file: Path) -> None:
    ds = load_dataset(DataSpec(source=str(csv_file), target=["a", 1], drop=["label"]))
    assert ds.target_names == ["a", "b"]
    assert ds.feature_names == ["color"]
    assert ds.y.shape == (4, 2)
    assert ds.task == "regression"


def test_csv_drop_by_name_and_index(csv_file: Path) -> None:
    ds = load_dataset(DataSpec(source=str(csv_file), drop=["color", 0]))
    assert ds.feature_names == ["b"]


def test_missing_target_suggests_close_name(csv_file: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec(source=str(csv_file), target="lable"))
    msg = str(err.value)
    assert "'lable'" in msg and "did you mean 'label'" in msg and "available columns: a, b, color, label" in msg


def test_missing_drop_column_is_named(csv_file: Path) -> None:
    with pytest.raises(DataError, match=r"data\.drop column 'colour' not found.*did you mean 'color'"):
        load_dataset(DataSpec(source=str(csv_file), drop=["colour"]))


def test_index_out_of_range(csv_file: Path) -> None:
    with pytest.raises(DataError, match="out of range"):
        load_dataset(DataSpec(source=str(csv_file), target=9))


def test_target_and_drop_overlap(csv_file: Path) -> None:
    with pytest.raises(DataError, match=r"both the target and in data\.drop"):
        load_dataset(DataSpec(source=str(csv_file), target="a", drop=["a"]))


def test_csv_header_none_sep_and_names(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("1;2;0\n3;4;1\n5;6;0\n")
    ds = load_dataset(DataSpec(source=str(path), csv=CsvOptions(header=None, sep=";")))
    assert ds.feature_names == ["0", "1"] and ds.target_names == ["2"]
    assert isinstance(ds.X, pd.DataFrame) and ds.X.shape == (3, 2)
    named = load_dataset(DataSpec(source=str(path), csv=CsvOptions(sep=";", names=["p", "q", "r"]), target="r"))
    assert named.feature_names == ["p", "q"] and len(named.X) == 3


def test_csv_header_row_index_and_na_values(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("# a comment line\nx,y\n1,?\n2,1\n3,0\n")
    ds = load_dataset(DataSpec(source=str(path), csv=CsvOptions(header=1, na_values=["?"]), target="x"))
    assert isinstance(ds.X, pd.DataFrame)
    assert ds.X["y"].isna().sum() == 1


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CSV file not found"):
        load_dataset(DataSpec(source=str(tmp_path / "nope.csv")))


def test_csv_wrong_separator_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(DataError, match="sep"):
        load_dataset(DataSpec(source=str(path)))


def test_missing_target_values_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("a,y\n1,1\n2,\n3,0\n")
    with pytest.raises(DataError, match=r"missing in 1 row\(s\)"):
        load_dataset(DataSpec(source=str(path)))


def test_max_rows_is_a_seeded_subset(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    pd.DataFrame({"i": range(100), "y": [0, 1] * 50}).to_csv(path, index=False)
    a = load_dataset(DataSpec(source=str(path), max_rows=10), seed=1)
    b = load_dataset(DataSpec(source=str(path), max_rows=10), seed=1)
    c = load_dataset(DataSpec(source=str(path), max_rows=10), seed=2)
    assert isinstance(a.X, pd.DataFrame) and isinstance(b.X, pd.DataFrame) and isinstance(c.X, pd.DataFrame)
    assert len(a.X) == 10
    assert a.X["i"].tolist() == b.X["i"].tolist()
    assert a.X["i"].tolist() != c.X["i"].tolist()
    assert a.X["i"].is_monotonic_increasing  # kept in file order
    assert a.X["i"].tolist() != list(range(10))  # not simply the first rows


# ----------------------------------------------------------------------------- sklearn and synthetic
def test_sklearn_breast_cancer() -> None:
    ds = load_dataset(DataSpec(source="sklearn:breast_cancer"))
    assert ds.X.shape == (569, 30)
    assert ds.task == "binary"
    assert all(isinstance(c, str) for c in ds.feature_names)


def test_sklearn_iris_and_drop() -> None:
    ds = load_dataset(DataSpec(source="sklearn:iris", drop=["sepal width (cm)"]))
    assert ds.X.shape == (150, 3)
    assert ds.task == "multiclass"
    assert sorted(ds.y["target"].unique().tolist()) == [0, 1, 2]


def test_sklearn_linnerud_is_multi_output_regression() -> None:
    ds = load_dataset(DataSpec(source="sklearn:linnerud"))
    assert ds.y.shape == (20, 3)
    assert ds.target_names == ["Weight", "Waist", "Pulse"]
    assert ds.task == "regression"


def test_synthetic_regression_multi_target() -> None:
    ds = load_dataset(DataSpec(source="make_regression", params={"n_samples": 30, "n_features": 4, "n_targets": 2}))
    assert ds.feature_names == ["x0", "x1", "x2", "x3"]
    assert ds.target_names == ["y0", "y1"]
    assert ds.task == "regression"


def test_synthetic_classification_uses_seed_unless_given() -> None:
    params = {"n_samples": 40, "n_features": 5, "n_classes": 3, "n_informative": 3}
    a = load_dataset(DataSpec(source="make_classification", params=params), seed=1)
    b = load_dataset(DataSpec(source="make_classification", params=params), seed=1)
    c = load_dataset(DataSpec(source="make_classification", params=params), seed=2)
    d = load_dataset(DataSpec(source="make_classification", params={**params, "random_state": 2}), seed=1)
    assert isinstance(a.X, pd.DataFrame) and isinstance(b.X, pd.DataFrame)
    assert isinstance(c.X, pd.DataFrame) and isinstance(d.X, pd.DataFrame)
    assert a.X.equals(b.X) and not a.X.equals(c.X) and d.X.equals(c.X)
    assert a.task == "multiclass" and a.target_names == ["y0"]


def test_synthetic_bad_params() -> None:
    with pytest.raises(DataError, match=r"make_regression rejected data\.params"):
        load_dataset(DataSpec(source="make_regression", params={"n_sample": 10}))


def test_loading_tabular_data_does_not_import_tensorflow() -> None:
    # a fresh interpreter: other tests in this process may have imported TensorFlow already
    code = (
        "import sys\n"
        "from dlrun.data.loaders import load_dataset\n"
        "from dlrun.spec.models import DataSpec\n"
        "load_dataset(DataSpec(source='sklearn:iris'))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ----------------------------------------------------------------------------- keras images (faked: no network, no TF)
def _fake_keras(monkeypatch: pytest.MonkeyPatch, load_data: Any) -> None:
    fake = types.ModuleType("keras")
    fake.datasets = types.SimpleNamespace(mnist=types.SimpleNamespace(load_data=load_data))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras", fake)


def test_keras_images_train_then_test(monkeypatch: pytest.MonkeyPatch) -> None:
    train = (np.zeros((3, 4, 4), dtype=np.uint8), np.array([0, 1, 2]))
    test = (np.ones((2, 4, 4), dtype=np.uint8), np.array([[3], [4]]))
    _fake_keras(monkeypatch, lambda: (train, test))
    ds = load_dataset(DataSpec(source="keras:mnist"))
    assert isinstance(ds.X, np.ndarray) and ds.X.shape == (5, 4, 4)
    assert ds.X[3:].min() == 1  # test images come after the training images
    assert ds.y["label"].tolist() == [0, 1, 2, 3, 4]
    assert ds.task == "multiclass" and ds.raw_columns is None
    sub = load_dataset(DataSpec(source="keras:mnist", max_rows=2), seed=0)
    assert sub.X.shape == (2, 4, 4)


def test_keras_download_failure_says_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> Any:
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    _fake_keras(monkeypatch, fail)
    with pytest.raises(DataError, match="needs network"):
        load_dataset(DataSpec(source="keras:mnist"))
