"""Tests of dlrun.data.registry: named sets, checksums, the local folder, the cache and downloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA, needs_shared_data

from dlrun.data import registry
from dlrun.data.loaders import load_dataset
from dlrun.data.registry import NAMED, dataset_status, resolve_named, sha256_of
from dlrun.errors import DataError
from dlrun.spec.models import DataSpec

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


# ----------------------------------------------------------------------------- registry and files
def test_registry_is_consistent() -> None:
    for name, entry in NAMED.items():
        assert entry.name == name
        assert entry.url == registry.BASE_URL + entry.filename
        assert len(entry.sha256) == 64
        assert entry.columns[-1] == entry.target
        assert len(entry.columns) == entry.n_features + 1
        assert len(set(entry.columns)) == len(entry.columns)


@needs_shared_data
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


@needs_shared_data
@pytest.mark.parametrize("name", list(NAMED))
def test_every_named_set_loads(shared_dir: Path, name: str) -> None:
    entry = NAMED[name]
    ds = load_dataset(DataSpec(source=name))
    assert ds.X.shape == (entry.rows, entry.n_features)
    assert ds.task == entry.task
    assert isinstance(ds.X, pd.DataFrame)
    assert not ds.X.isna().to_numpy().any()


@needs_shared_data
def test_mammography_keeps_quoted_labels(shared_dir: Path) -> None:
    ds = load_dataset(DataSpec(source="mammography"))
    assert set(ds.y["class"]) == {"'-1'", "'1'"}


@needs_shared_data
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
    assert sha256_of(bad / "sonar.csv") in msg


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


@needs_shared_data
def test_download_goes_to_cache_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copyfile(SHARED_DATA / Path(url).name, dest)

    cache = tmp_path / "elsewhere"
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(cache))
    monkeypatch.setattr(registry, "_download", fake_download)
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

    monkeypatch.setattr(registry, "_download", bad_download)
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
