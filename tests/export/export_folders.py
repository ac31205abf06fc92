"""Tiny finished folders of each kind (train, cv, sweep, search) for the export tests (a fixture they import)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_spec, write_spec
from typer.testing import CliRunner

from dlrun.cli.app import app

# made once per session although each test module that imports the fixture registers its own copy
_MADE: dict[str, Path] = {}


@pytest.fixture(scope="session", name="folders")
def folders_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A train run, a 2-fold cv run, a sweep of two single-split points and a search of two 2-fold trials (2 epochs)."""
    if _MADE:
        return _MADE
    root = tmp_path_factory.mktemp("export_runs")
    cv = tiny_spec("binary", mode="kfold", epochs=2, evaluation={"folds": 2})
    cv["name"] = "tiny_cv"
    search = {**cv, "name": "tiny_search"}
    search["search"] = {
        "training.batch_size": {"type": "categorical", "choices": [8, 16]},
        "trials": 2,
        "sampler": "random",
    }
    split = tiny_spec("binary", mode="split", epochs=2)
    cases = {
        "train": (["train"], split),
        "cv": (["cv"], cv),
        "sweep": (["sweep", "--grid", "training.batch_size=8,16"], split),  # split points: the cheapest
        "search": (["search"], search),
    }
    out = {}
    for name, (command, raw) in cases.items():
        out[name] = root / name
        args = [*command, str(write_spec(root / f"{name}.yaml", raw)), "--out", str(out[name])]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, f"{name}: {result.output}\n{result.exception!r}"
    _MADE.update(out)
    return out
