"""``keras:`` datasets read Keras' own file from DLRUN_DATA_DIR, and can be tested on their official test rows.

The file here is a small generated ``mnist.npz`` in Keras' format (arrays ``x_train``,
``y_train``, ``x_test``, ``y_test``); its checksum is registered in place of Keras' for the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlrun.cli.app import app
from dlrun.data import loaders as datasets
from dlrun.data.registry import sha256_of
from dlrun.errors import DataError, SpecError
from dlrun.spec.models import DataSpec
from dlrun.spec.validation import validate

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mnist_mlp.yaml"


def _fake_mnist(folder: Path, n_train: int = 60, n_test: int = 20, **drop: bool) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        # dark training images, bright test images: a test can tell which rows are which
        "x_train": rng.integers(0, 128, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(128, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for key in drop:
        arrays.pop(key)
    path = folder / "mnist.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = _fake_mnist(tmp_path)
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(datasets.KERAS_FILES, "mnist", ("mnist.npz", sha256_of(path)))
    return path


def test_keras_file_in_the_data_dir_is_used_with_its_test_rows(fake_mnist: Path) -> None:
    data = datasets.load_dataset(DataSpec(source="keras:mnist", task="multiclass"))
    assert data.X.shape == (80, 28, 28)
    assert data.test_rows is not None and list(data.test_rows) == list(range(60, 80))
    assert str(fake_mnist) in data.description and "60 training then 20 test" in data.description


def test_max_rows_keeps_track_of_the_test_rows(fake_mnist: Path) -> None:
    data = datasets.load_dataset(DataSpec(source="keras:mnist", task="multiclass", max_rows=40), seed=1)
    assert isinstance(data.X, np.ndarray) and data.test_rows is not None
    is_test = np.zeros(len(data.X), dtype=bool)
    is_test[data.test_rows] = True
    assert len(data.X) == 40 and 0 < is_test.sum() < 40
    assert data.X[is_test].min() >= 128 and data.X[~is_test].max() < 128, "the subset's test rows are the source's"


def test_a_file_that_is_not_keras_own_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mnist(tmp_path)
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"checksum mismatch for mnist.npz .* expected Keras' sha256 731c5ac6"):
        datasets.load_dataset(DataSpec(source="keras:mnist", task="multiclass"))


def test_a_file_without_the_four_arrays_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake_mnist(tmp_path, y_test=True)
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(datasets.KERAS_FILES, "mnist", ("mnist.npz", sha256_of(path)))
    with pytest.raises(DataError, match="x_train, y_train, x_test, y_test"):
        datasets.load_dataset(DataSpec(source="keras:mnist", task="multiclass"))


@pytest.mark.parametrize(
    ("data", "evaluation", "message"),
    [
        ({"source": "keras:mnist"}, {"mode": "kfold", "test_rows": "source"}, "test_rows: source needs mode split"),
        ({"source": "sklearn:iris"}, {"mode": "split", "test_rows": "source"}, "needs a data source with its own"),
    ],
)
def test_test_rows_source_is_validated(data: dict[str, str], evaluation: dict[str, str], message: str) -> None:
    raw = {"data": data, "model": {"layers": [{"Dense": {"units": 3}}]}, "evaluation": evaluation}
    with pytest.raises(SpecError, match=message):
        validate(raw)


def test_mnist_config_trains_on_the_official_split(fake_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(CONFIG), "--out", str(out), "--set", "training.epochs=2"])
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_test"] == 20 and summary["n_train"] == 60, "Keras' own test rows, not a random split"
    assert (out / "report.html").is_file()
