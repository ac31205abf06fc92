"""The one fold loop: fit, score, time; no files, no printing.

In the spirit of scikit-learn's ``_fit_and_score``: :func:`fit_and_score` prepares each fold's job,
lets an engine train it, checks and scores the result, and returns it; :class:`FitWorker` is the one
picklable worker an :class:`~dlrun.execution.executors.Executor` runs (a chunk of folds of one spec,
or the folds of a group of specs that share one program); :func:`fit_folds` sends chunks through an
executor and scores what comes back. ``train``, ``cv``, ``search`` and nested cross-validation all
go through here; what they write is their own business.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.data.preprocessing import Preprocessor
from dlrun.engines import EpochCallback, FitJob, FitResult, fit_many, make_engine
from dlrun.engines.runtime import quiet_tensorflow, setup
from dlrun.errors import DlrunError
from dlrun.execution.executors import Executor, chunk_size
from dlrun.protocol.jobs import Prepared, check_finite, make_job, score_fold
from dlrun.protocol.splits import Fold
from dlrun.spec.schema import Spec


@dataclass
class Scored:
    """One fold, trained and scored.

    Attributes:
        fold: The fold.
        part: Its scores, history and predictions (what a run saves), or None when its job failed.
        result: The engine's result (holds the Keras model when the engine keeps it), None when it failed.
        error: Why the job failed ("" when it did not).
        pre: The fold's fitted preprocessing (``fit_and_score`` only).
    """

    fold: Fold
    part: dict[str, Any] | None
    result: FitResult | None = None
    error: str = ""
    pre: Preprocessor | None = None


def score_result(prep: Prepared, fold: Fold, pre: Preprocessor, result: FitResult) -> dict[str, Any]:
    """Check a fold's result (a NaN loss raises) and score it.

    Raises:
        RunError: The model's loss diverged.
    """
    check_finite(result)
    return score_fold(prep, fold, pre, result)


def fit_and_score(
    prep: Prepared,
    folds: list[Fold],
    fit: Callable[[list[FitJob]], Iterable[FitResult]],
    *,
    adjust_job: Callable[[FitJob], object] | None = None,
    adjust_result: Callable[[FitResult], object] | None = None,
) -> Iterator[Scored]:
    """Train ``folds`` with ``fit`` (an engine's ``fit``, say) in this process and score each result.

    Args:
        prep: The prepared run.
        folds: The folds to train.
        fit: Trains a list of jobs, yielding one result per job (in any order).
        adjust_job: Called on each job before it trains (a checkpoint's weights, say).
        adjust_result: Called on each result before it is scored (a checkpoint's earlier epochs, say).

    Yields:
        Each fold, scored, as its result comes back.
    """
    by_key = {f.key: f for f in folds}
    jobs, pres = [], {}
    for fold in folds:
        job, pre = make_job(prep, fold)
        if adjust_job is not None:
            adjust_job(job)
        jobs.append(job)
        pres[fold.key] = pre
    for result in fit(jobs):
        if adjust_result is not None:
            adjust_result(result)
        key = (result.repeat, result.fold)
        pre = pres.pop(key)
        yield Scored(by_key[key], score_result(prep, by_key[key], pre, result), result, pre=pre)


# ----------------------------------------------------------------------------- the one worker
@dataclass
class FitTask:
    """One executor job: folds of one spec, or of a group of specs that share one program.

    Attributes:
        specs: One spec, or a ``share_groups`` group.
        jobs: The folds, preprocessed once (a group's specs share the preprocessing).
        engine: The engine that trains one spec (unused for a shared group).
        shared: Train the group with ``fit_many`` as one program.
        tags: The caller's names for the specs (trial numbers), in the same order.
    """

    specs: list[Spec]
    jobs: list[FitJob]
    engine: str
    shared: bool = False
    tags: list[int] = field(default_factory=list)


@dataclass
class FitWorker:
    """Train a :class:`FitTask` where the executor runs it; yields ``(index in task.specs, FitResult)``.

    Models do not travel (weights, scores and predictions do). Pickled for another process without
    its progress callback or engines; there it sets the runtime up as the driver did.

    Attributes:
        task: The resolved task.
        input_shape: One preprocessed sample's shape.
        n_outputs: The model's output width.
        on_epoch: Progress callback (this process only; the executor decides).
    """

    task: str
    input_shape: tuple[int, ...]
    n_outputs: int
    on_epoch: EpochCallback | None = None
    engines: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "on_epoch": None, "engines": {}}

    def engine(self, name: str, spec: Spec) -> Any:
        """The engine ``name`` for ``spec``, built once per worker (the runtime set up first)."""
        key = (name, id(spec))
        if key not in self.engines:
            quiet_tensorflow()
            setup(spec.runtime)  # once per process: a no-op where the driver did it
            self.engines[key] = make_engine(name, spec, self.task, self.input_shape, self.n_outputs)
        return self.engines[key]

    def __call__(self, task: FitTask) -> Iterator[tuple[int, FitResult]]:
        if task.shared:
            quiet_tensorflow()
            setup(task.specs[0].runtime)
            results: Iterable[tuple[int, FitResult]] = fit_many(
                task.specs, task.jobs, self.task, self.input_shape, self.n_outputs, self.on_epoch
            )
        else:
            results = ((0, r) for r in self.engine(task.engine, task.specs[0]).fit(task.jobs, self.on_epoch))
        for i, result in results:
            result.model = None
            yield i, result


# ----------------------------------------------------------------------------- folds through an executor
def size_stubs(folds: list[Fold], *, test: bool = True) -> list[FitJob]:
    """Stand-ins for an engine's memory estimate: the row counts of each fold, no data.

    Args:
        folds: The folds.
        test: Count the test rows too (a search's batch size leaves them out, as it always has).
    """
    return [
        FitJob(
            repeat=f.repeat,
            fold=f.fold,
            seed=f.seed,
            x_train=np.empty((len(f.train), 0), np.float32),
            y_train=np.empty((len(f.train),), np.float32),
            x_val=np.empty((len(f.val), 0), np.float32) if len(f.val) else None,
            x_test=np.empty((len(f.test), 0), np.float32) if test and len(f.test) else None,
        )
        for f in folds
    ]


def chunk_plan(engine: Any, folds: list[Fold]) -> list[list[Fold]]:
    """How ``engine`` groups ALL the run's folds into chunks trained together, in fold order.

    The plan depends on the whole run, not on what is left, so a resumed run trains each
    remaining chunk as an uninterrupted run did (the stacked engine's results agree only to
    about 1e-8 across different groupings).
    """
    try:
        per = max(1, int(engine.models_per_chunk(size_stubs(folds))))
    except Exception:  # an engine that needs real arrays to size itself: one call, chunked as it likes
        return [list(folds)]
    n_chunks = -(-len(folds) // per)
    size = -(-len(folds) // n_chunks)  # even chunks, as the stacked engine makes them
    return [folds[i : i + size] for i in range(0, len(folds), size)]


class FoldFitter:
    """The folds of one spec, trained on an executor and scored here as they come back.

    The executor supplies the progress sink: where it runs the worker in this process, the engine
    is built here, gets the sink, and decides how folds are grouped (:func:`chunk_plan`); elsewhere
    the folds are spread over its slots, at most two jobs per slot out at once, so preprocessed
    arrays do not pile up.

    Args:
        prep: The prepared run.
        executor: Where the folds train.
        slots: How many jobs the executor runs at once.
        engine: The engine's name.
        on_epoch: Progress callback, if the executor can call it.
    """

    def __init__(
        self, prep: Prepared, executor: Executor, slots: int, engine: str, on_epoch: EpochCallback | None = None
    ) -> None:
        self.prep, self.executor, self.slots, self.engine_name = prep, executor, slots, engine
        self.worker = FitWorker(prep.task, prep.input_shape, prep.n_outputs, executor.sink(on_epoch))
        self.local = executor.sink(_noop) is not None  # the worker runs in this process
        if self.local:
            self.worker.engine(engine, prep.spec)

    def plan(self, folds: list[Fold]) -> list[list[Fold]] | None:
        """The chunks of the whole run (:func:`chunk_plan`) where the engine runs here, else None."""
        if not self.local:
            return None
        return chunk_plan(self.worker.engine(self.engine_name, self.prep.spec), folds)

    def chunks(self, folds: list[Fold], plan: list[list[Fold]] | None) -> list[list[Fold]]:
        """``folds`` (those still to train) in the chunks they train in."""
        if plan is not None:
            pending = {f.key for f in folds}
            return [c for c in ([f for f in chunk if f.key in pending] for chunk in plan) if c]
        size = chunk_size(len(folds), self.slots, self.prep.spec.runtime.max_models_per_chunk)
        return [folds[i : i + size] for i in range(0, len(folds), size)]

    def fit(self, chunks: list[list[Fold]], note: Callable[[str], None]) -> Iterator[Scored]:
        """Train ``chunks``; yield each fold scored, or with its error when its job failed.

        Raises:
            DlrunError: A deterministic failure (a NaN loss) ends the run as it is.
        """
        prep = self.prep
        folds = [f for c in chunks for f in c]
        if not self.local:
            size = max((len(c) for c in chunks), default=0)
            note(f"{self.executor.name}: {len(folds)} fold(s) in {len(chunks)} task(s) of up to {size}")
        pres: dict[tuple[int, int], Preprocessor] = {}
        by_key = {f.key: f for f in folds}

        def tasks() -> Iterator[FitTask]:
            for chunk in chunks:
                jobs = []
                for fold in chunk:
                    job, pre = make_job(prep, fold)
                    jobs.append(job)
                    pres[fold.key] = pre
                yield FitTask([prep.spec], jobs, self.engine_name)

        with contextlib.closing(self.executor.map(self.worker, tasks(), window=2 * self.slots)) as outcomes:
            for out in outcomes:
                if out.ok:
                    assert out.value is not None
                    result = out.value[1]
                    key = (result.repeat, result.fold)
                    yield Scored(by_key[key], score_result(prep, by_key[key], pres.pop(key), result), result)
                    continue
                if isinstance(out.error, DlrunError):  # deterministic (a NaN loss): it ends the run as it is
                    raise out.error
                lost = [by_key[j.key] for j in out.job.jobs if j.key in pres]
                note(f"{self.executor.name}: folds {', '.join(str(f.key) for f in lost)} failed: {out.reason}")
                for fold in lost:
                    pres.pop(fold.key, None)
                    yield Scored(fold, None, None, out.reason)


def _noop(event: Any) -> None:
    return None
