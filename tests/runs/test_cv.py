"""runs.cv: a cv run through its RunFolder, with an engine that predicts a constant (nothing trains)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_spec

from dlrun.engines import EngineChoice
from dlrun.engines.base import FitJob, FitResult
from dlrun.errors import InputError, RunError
from dlrun.protocol import fitting
from dlrun.runs import cv
from dlrun.spec.schema import Spec, validate
from dlrun.store import layout


class ConstantEngine:
    name = "constant"

    def __init__(self, broken_fold: int | None = None) -> None:
        self.broken_fold = broken_fold
        self.calls: list[list[int]] = []

    def models_per_chunk(self, jobs: Any) -> int:
        return 2

    def fit(self, jobs: list[FitJob], on_epoch: Any = None) -> Iterator[FitResult]:
        self.calls.append([j.fold for j in jobs])
        if any(j.fold == self.broken_fold for j in jobs):
            raise OSError("the device went away")
        for j in jobs:
            n_test = 0 if j.x_test is None else len(j.x_test)
            train, test = np.full((len(j.x_train), 1), 0.5), np.full((n_test, 1), 0.5)
            yield FitResult(j.repeat, j.fold, {"loss": [0.7], "accuracy": [0.5]}, train, test, 1, 0.01, self.name)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> ConstantEngine:
    e = ConstantEngine()
    monkeypatch.setattr(cv, "choose_engine", lambda *a, **k: EngineChoice("constant", None, False))
    monkeypatch.setattr(cv, "setup", lambda runtime: {"device": "cpu"})
    monkeypatch.setattr(cv, "versions", lambda: {})
    monkeypatch.setattr(fitting, "make_engine", lambda *a, **k: e)
    monkeypatch.setattr(fitting, "setup", lambda runtime: {})
    return e


def _spec(**evaluation: Any) -> Spec:
    return validate(tiny_spec(mode="kfold", evaluation={"folds": 5, **evaluation}))


def test_a_cv_run_saves_its_folds_in_the_engines_chunks_and_writes_every_table(
    engine: ConstantEngine, tmp_path: Path
) -> None:
    out = cv.run_cv(_spec(), tmp_path / "run")
    assert out.engine == "constant" and out.summary["n_models"] == 5
    assert engine.calls == [[0, 1], [2, 3], [4]]
    assert len(list((tmp_path / "run" / layout.PARTS).glob(layout.PART_GLOB))) == 3
    assert len(pd.read_csv(tmp_path / "run" / layout.SCORES)) == 5
    state = json.loads((tmp_path / "run" / layout.STATE).read_text())
    assert state["status"] == "finished" and state["finished_models"] == 5 and state["engine"] == "constant"


def test_a_resumed_cv_run_trains_only_what_is_missing(engine: ConstantEngine, tmp_path: Path) -> None:
    first = cv.run_cv(_spec(), tmp_path / "run")
    engine.calls.clear()
    again = cv.run_cv(_spec(), tmp_path / "run")
    assert engine.calls == [] and again.summary["metrics"] == first.summary["metrics"]


def test_a_lost_chunk_fails_the_run_and_keeps_the_other_folds(engine: ConstantEngine, tmp_path: Path) -> None:
    engine.broken_fold = 4
    with pytest.raises(RunError, match=r"1 of 5 fold\(s\) failed \(repeat 0 fold 4\).*other folds are saved"):
        cv.run_cv(_spec(), tmp_path / "run")
    state = json.loads((tmp_path / "run" / layout.STATE).read_text())
    assert state["status"] == "failed" and "device went away" in state["error"]
    engine.broken_fold = None
    engine.calls.clear()
    cv.run_cv(_spec(), tmp_path / "run")
    assert engine.calls == [[4]]


def test_a_train_mode_is_refused_before_any_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dlrun train"):
        cv.run_cv(validate(tiny_spec(mode="split")), tmp_path / "run")
    assert not (tmp_path / "run").exists()
