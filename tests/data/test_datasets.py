"""Tests of dlrun.data.sources: named sets, checksums, cache, CSV options, columns, loaders, task inference."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlrun.data import sources as datasets
from dlrun.data.sources import NAMED, Dataset, check_task, dataset_status, infer_task, load_dataset, resolve_named
from dlrun.errors import DataError
from dlrun.spec.schema import CsvOptions, DataSpec

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "sonar.csv").is_file(),
    reason=f"offline dataset copies not found in {SHARED_DATA} (set up /work/shared/data to run these)",
)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache, and never reach the network."""
    monkeypatch.delenv("DLRUN_DATA_DIR", raising=False)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))

    def no_network(url: str, dest: Path) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(datasets, "_download", no_network)


@pytest.fixture
def shared_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (SHARED_DATA / "sonar.csv").is_file():
        pytest.skip(f"offline dataset copies not found in {SHARED_DATA}")
    monkeypatch.setenv("DLRUN_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


# ----------------------------------------------------------------------------- registry and files
def test_registry_is_consistent() -> None:
    for name, entry in NAMED.items():
        assert entry.name == name
        assert entry.url == datasets.BASE_URL + entry.filename
        assert len(entry.sha256) == 64
        assert entry.columns[-1] == entry.target
        assert len(entry.columns) == entry.n_features + 1
        assert len(set(entry.columns)) == len(entry.columns)


@needs_shared
def test_named_from_data_dir(shared_dir: Path) -> None:
    assert resolve_named("sonar") == shared_dir / "sonar.csv"
    ds = load_dataset(DataSpec(source="sonar"))
    assert isinstance(ds.X, pd.DataFrame)
    assert ds.X.shape == (208, 60)
    assert ds.y.shape == (208, 1)
    assert set(ds.y["class"]) == {"M", "R"}
    assert ds.task == "binary" and not ds.task_inferred
    assert ds.raw_columns == NAMED["sonar"].columns
    assert ds.feature_names == NAMED["sonar"].columns[:-1]


@needs_shared
@pytest.mark.parametrize("name", list(NAMED))
def test_every_named_set_loads(shared_dir: Path, name: str) -> None:
    entry = NAMED[name]
    ds = load_dataset(DataSpec(source=name))
    assert ds.X.shape == (entry.rows, entry.n_features)
    assert ds.task == entry.task
    assert isinstance(ds.X, pd.DataFrame)
    assert not ds.X.isna().to_numpy().any()


@needs_shared
def test_mammography_keeps_quoted_labels(shared_dir: Path) -> None:
    ds = load_dataset(DataSpec(source="mammography"))
    assert set(ds.y["class"]) == {"'-1'", "'1'"}


@needs_shared
def test_named_task_override_and_other_target(shared_dir: Path) -> None:
    ds = load_dataset(DataSpec(source="wine-quality-red", task="multiclass"))
    assert ds.task == "multiclass"
    # a different target than the registry's: the registry task no longer applies
    ds = load_dataset(DataSpec(source="wine-quality-red", target="alcohol"))
    assert ds.task == "regression" and ds.task_inferred
    assert "quality" in ds.feature_names


def test_checksum_mismatch_in_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "sonar.csv").write_text("0.1,0.2,M\n")
    monkeypatch.setenv("DLRUN_DATA_DIR", str(bad))
    with pytest.raises(DataError) as err:
        resolve_named("sonar")
    msg = str(err.value)
    assert "sonar.csv" in msg and NAMED["sonar"].sha256 in msg
    assert datasets.sha256_of(bad / "sonar.csv") in msg


def test_checksum_mismatch_in_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "iris.csv").write_text("corrupt")
    with pytest.raises(DataError, match="checksum mismatch"):
        resolve_named("iris")


def test_offline_not_found_names_url_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as err:
        resolve_named("pima")
    msg = str(err.value)
    assert NAMED["pima"].url in msg
    assert "pima-indians-diabetes.csv" in msg
    assert "DLRUN_DATA_DIR" in msg
    assert not list((tmp_path / "cache").glob("*.part")), "a failed download must leave no temp file"


@needs_shared
def test_download_goes_to_cache_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copyfile(SHARED_DATA / Path(url).name, dest)

    cache = tmp_path / "elsewhere"
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(cache))
    monkeypatch.setattr(datasets, "_download", fake_download)
    assert resolve_named("iris") == cache / "iris.csv"
    assert calls == [NAMED["iris"].url]
    assert [p.name for p in cache.iterdir()] == ["iris.csv"]
    # second time: served from the cache, no download
    assert resolve_named("iris") == cache / "iris.csv"
    assert len(calls) == 1
    status = {row["name"]: row for row in dataset_status()}
    assert status["iris"]["location"] == "cache"
    assert status["sonar"]["location"] == "not downloaded"


def test_corrupt_download_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_download(url: str, dest: Path) -> None:
        dest.write_text("<html>rate limited</html>")

    monkeypatch.setattr(datasets, "_download", bad_download)
    with pytest.raises(DataError, match="checksum mismatch"):
        resolve_named("iris")
    assert not any((tmp_path / "cache").iterdir())


def test_dataset_status_does_not_download(shared_dir: Path) -> None:
    rows = dataset_status()
    assert [r["name"] for r in rows] == list(NAMED)
    assert {r["location"] for r in rows} == {"DLRUN_DATA_DIR"}
    assert {"name", "task", "rows", "features", "location"} <= set(rows[0])


def test_unknown_named_dataset_suggests() -> None:
    with pytest.raises(DataError, match="did you mean 'sonar'"):
        resolve_named("sonra")


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
        "from dlrun.data.sources import load_dataset\n"
        "from dlrun.spec.schema import DataSpec\n"
        "load_dataset(DataSpec(source='sklearn:iris'))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


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
