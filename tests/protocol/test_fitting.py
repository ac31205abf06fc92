"""protocol.fitting: the one fold loop (fit, score; no files), the one worker, and folds through an executor.

An engine that predicts a constant stands in for Keras, so nothing here trains."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import tiny_spec

from dlrun.engines.base import FitJob, FitResult
from dlrun.errors import RunError
from dlrun.execution.executors import LocalExecutor, Outcome
from dlrun.protocol import fitting
from dlrun.protocol.jobs import Prepared, prepare
from dlrun.spec.schema import validate


class ConstantEngine:
    """Predicts 0.5 for every row; ``loss`` is what each result's history says."""

    name = "constant"

    def __init__(self, per_chunk: int = 2, loss: float = 0.7) -> None:
        self.per_chunk, self.loss = per_chunk, loss
        self.calls: list[list[tuple[int, int]]] = []

    def models_per_chunk(self, jobs: Any) -> int:
        return self.per_chunk

    def fit(self, jobs: list[FitJob], on_epoch: Any = None) -> Iterator[FitResult]:
        self.calls.append([j.key for j in jobs])
        for j in jobs:
            if on_epoch is not None:
                on_epoch(j.key)
            n_test = 0 if j.x_test is None else len(j.x_test)
            yield FitResult(
                j.repeat, j.fold, {"loss": [self.loss]}, np.full((len(j.x_train), 1), 0.5),
                np.full((n_test, 1), 0.5), 1, 0.01, self.name, model=object(),
            )  # fmt: skip


class Elsewhere(LocalExecutor):
    """Runs here, but as a remote executor would: no progress sink, the worker crosses a pickle."""

    name = "elsewhere"
    where = " elsewhere"

    def sink(self, callback: Any) -> Any:
        return None

    def map(self, fn: Any, jobs: Any, *, resources: Any = None, window: int | None = None) -> Any:
        for job in jobs:
            far = pickle.loads(pickle.dumps(fn))
            far.engines[(job.engine, id(job.specs[0]))] = ENGINE
            if job.jobs[0].fold == 3:
                yield Outcome(job, error=OSError("worker died"), reason="worker died")
                continue
            for value in far(job):
                yield Outcome(job, value)


ENGINE = ConstantEngine()


@pytest.fixture
def prep() -> Prepared:
    return prepare(validate(tiny_spec(mode="kfold", evaluation={"folds": 5})))


def test_fit_and_score_scores_every_fold_and_writes_nothing(prep: Prepared, tmp_path: Any) -> None:
    seen_jobs: list[tuple[int, int]] = []
    engine = ConstantEngine()
    scored = list(
        fitting.fit_and_score(
            prep,
            list(prep.folds),
            lambda jobs: engine.fit(jobs),
            adjust_job=lambda job: seen_jobs.append(job.key),
            adjust_result=lambda r: r.history.update(loss=[0.6]),
        )
    )
    assert [s.fold.key for s in scored] == [f.key for f in prep.folds] == seen_jobs
    for s in scored:
        assert s.part is not None and s.pre is not None and s.result is not None
        assert s.part["scores"]["accuracy"] == pytest.approx(s.part["scores"]["baseline_accuracy"], abs=0.5)
        assert list(s.part["history"]["loss"]) == [0.6]
    assert list(tmp_path.iterdir()) == []


def test_a_diverged_loss_ends_the_loop(prep: Prepared) -> None:
    engine = ConstantEngine(loss=float("nan"))
    with pytest.raises(RunError, match="NaN at epoch 1 of repeat 0 fold 0"):
        list(fitting.fit_and_score(prep, list(prep.folds), lambda jobs: engine.fit(jobs)))


def test_the_worker_travels_without_its_callback_and_engines_and_keeps_no_model(prep: Prepared) -> None:
    worker = fitting.FitWorker(prep.task, prep.input_shape, prep.n_outputs, on_epoch=print)
    worker.engines[("constant", id(prep.spec))] = ConstantEngine()
    far = pickle.loads(pickle.dumps(worker))
    assert far.on_epoch is None and far.engines == {}
    job = fitting.FitTask([prep.spec], [fitting.size_stubs(prep.folds[:1])[0]], "constant")
    ((i, result),) = list(worker(job))
    assert i == 0 and result.model is None


def test_local_folds_train_in_the_engines_chunks_with_progress(prep: Prepared, monkeypatch: Any) -> None:
    engine = ConstantEngine(per_chunk=2)
    monkeypatch.setattr(fitting, "make_engine", lambda *a, **k: engine)
    monkeypatch.setattr(fitting, "setup", lambda runtime: {})
    ticks: list[Any] = []
    fitter = fitting.FoldFitter(prep, LocalExecutor(), 1, "constant", ticks.append)
    plan = fitter.plan(list(prep.folds))
    assert [[f.fold for f in c] for c in plan or []] == [[0, 1], [2, 3], [4]]
    pending = list(prep.folds[1:])  # a resume: fold 0 is saved
    scored = list(fitter.fit(fitter.chunks(pending, plan), print))
    assert engine.calls == [[(0, 1)], [(0, 2), (0, 3)], [(0, 4)]]
    assert len(ticks) == 4 and all(s.part is not None for s in scored)


def test_folds_elsewhere_spread_over_slots_and_a_lost_job_names_its_folds(prep: Prepared) -> None:
    fitter = fitting.FoldFitter(prep, Elsewhere(), 2, "constant", print)
    assert fitter.plan(list(prep.folds)) is None and fitter.worker.on_epoch is None
    notes: list[str] = []
    chunks = fitter.chunks(list(prep.folds), None)
    scored = list(fitter.fit(chunks, notes.append))
    assert [[f.fold for f in c] for c in chunks] == [[0, 1, 2], [3, 4]]  # at most two jobs per slot out
    failed = [s.fold.fold for s in scored if s.part is None]
    assert failed == [3, 4] and scored[3].error == "worker died"
    assert "folds (0, 3), (0, 4) failed: worker died" in notes[-1]
    assert notes[0] == "elsewhere: 5 fold(s) in 2 task(s) of up to 3"
