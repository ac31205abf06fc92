"""Shared test set-up: offline dataset copies, an isolated download cache, tiny spec builders."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

# The suite runs on dlrun's default backend (JAX) unless KERAS_BACKEND says otherwise; the
# TensorFlow-backend subset (tests/engines/test_runtime.py) runs in subprocesses of its own.
os.environ.setdefault("KERAS_BACKEND", "jax")

# One persistent XLA compilation cache for the whole test session, made fresh by the pytest
# process and inherited by its xdist workers and the dlrun subprocesses the tests start: many
# tests compile the same tiny programs, and compiling each once cut the suite's CPU time by a
# third (9 min 31 s to 6 min 18 s of user time on 2 cores). Assertions are unchanged: a cached
# executable is the one XLA would compile.
_OWN_XLA_CACHE = "PYTEST_XDIST_WORKER" not in os.environ and "DLRUN_TEST_JAX_CACHE" not in os.environ
if _OWN_XLA_CACHE:
    os.environ["DLRUN_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="dlrun-test-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["DLRUN_TEST_JAX_CACHE"]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# Byte-exact offline copies of the named datasets: DLRUN_DATA_DIR where the suite is run with it,
# else shared/data next to the repository.
SHARED_DATA = Path(os.environ.get("DLRUN_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
HAVE_SHARED_DATA = (SHARED_DATA / "sonar.csv").is_file()

needs_shared_data = pytest.mark.skipif(
    not HAVE_SHARED_DATA, reason=f"offline dataset copies not found in {SHARED_DATA}"
)


@pytest.fixture(autouse=True)
def _dlrun_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point dlrun at the offline data, keep its download cache out of $HOME, and draw plots off-screen."""
    monkeypatch.setenv("DLRUN_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dlrun-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def isolated_data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No data directory, a fresh download cache, and no network: what a new user's machine has offline."""
    import urllib.error

    from dlrun.data import registry

    monkeypatch.delenv("DLRUN_DATA_DIR", raising=False)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))

    def no_network(url: str, dest: Path) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(registry, "_download", no_network)


@pytest.fixture
def shared_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The offline copies as DLRUN_DATA_DIR (the test is skipped where they are missing)."""
    if not HAVE_SHARED_DATA:
        pytest.skip(f"offline dataset copies not found in {SHARED_DATA}")
    monkeypatch.setenv("DLRUN_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


def load_script(path: Path) -> Any:
    """A script of the repository (``benchmarks/…``, ``scripts/…``) imported as a module, to test its functions."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- tiny specs
_SYNTH = {"n_samples": 120, "n_features": 6, "n_informative": 4, "n_redundant": 0}


def tiny_spec(task: str = "binary", *, mode: str = "split", epochs: int = 3, **sections: Any) -> dict[str, Any]:
    """A raw spec on 120 synthetic rows that trains in about a second.

    ``task`` picks the data and the output layer: ``binary`` (sigmoid), ``multiclass``
    (3 classes, softmax) or ``regression`` (one linear output). Extra keyword arguments
    are merged into the named sections (``evaluation={"folds": 3}``).
    """
    if task == "regression":
        data = {"source": "make_regression", "params": {"n_samples": 120, "n_features": 6, "noise": 5.0}}
        out = {"Dense": {"units": 1}}
    elif task == "multiclass":
        data = {"source": "make_classification", "params": {**_SYNTH, "n_classes": 3, "n_clusters_per_class": 1}}
        out = {"Dense": {"units": 3, "activation": "softmax"}}
    else:
        data = {"source": "make_classification", "params": dict(_SYNTH)}
        out = {"Dense": {"units": 1, "activation": "sigmoid"}}
    data["task"] = task
    raw: dict[str, Any] = {
        "name": f"tiny_{task}",
        "seed": 3,
        "data": data,
        "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}}, out]},
        "training": {"epochs": epochs, "batch_size": 16},
        "evaluation": {"mode": mode},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **copy.deepcopy(value)}
        else:
            raw[key] = copy.deepcopy(value)
    return raw


def spec_problems(raw: dict[str, Any], overrides: list[str] | None = None) -> list[tuple[str, str]]:
    """The ``(path, message)`` problems validating ``raw`` (with ``--set`` overrides) reports; it must fail."""
    from dlrun.errors import SpecError
    from dlrun.spec.validation import validate
    from dlrun.spec.yaml_io import apply_overrides

    with pytest.raises(SpecError) as info:
        validate(apply_overrides(raw, overrides or []))
    return info.value.problems


def edited_spec(fn: Any) -> dict[str, Any]:
    """A tiny binary spec changed in place by ``fn``."""
    raw = tiny_spec("binary")
    fn(raw)
    return raw


def write_spec(path: Path, raw: dict[str, Any]) -> Path:
    """Write a raw spec as YAML and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def spec_file(tmp_path: Path):
    """``spec_file(raw, name="spec.yaml") -> Path``: write a raw spec into the test's folder."""

    def make(raw: dict[str, Any], name: str = "spec.yaml") -> Path:
        return write_spec(tmp_path / name, raw)

    return make


def run_main(args: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``dlrun.cli.app.main(ARGS)``; return (exit code, stdout, stderr)."""
    from dlrun.cli.app import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else int(code)), out, err


# ----------------------------------------------------------------------------- parallel runs
# `make test` runs pytest-xdist with `--dist loadgroup`. The tests of a file whose module fixtures
# are expensive (a Ray instance, reference runs) stay together on one worker, so those are made
# once; every other test is spread over the workers on its own, which balances the two cores.
GROUPED_FILES = {
    "test_api.py",
    "test_cli.py",
    "test_distributed.py",
    "test_html_report.py",
    "test_integrity.py",
    "test_predict.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in GROUPED_FILES and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_XLA_CACHE:
        shutil.rmtree(os.environ["DLRUN_TEST_JAX_CACHE"], ignore_errors=True)
