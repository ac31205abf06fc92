"""Whole specs as jobs: what a sweep point and a batch config share, on any executor.

:func:`run_spec_jobs` runs each :class:`SpecJob` (one spec into one run folder) on an
:class:`~dlrun.execution.executors.Executor` and tells the caller how each ended (:class:`SpecDone`).

* In this process, each spec runs in its own folder (``train`` or ``cv`` as its mode says),
  holding the folder's lock, with the caller's reporter showing progress.
* Elsewhere (Ray), a worker runs the spec in a temporary folder and returns every file it
  wrote; this process writes them into the job's folder atomically (``state.json`` last). A
  job started before ships its folder to the worker, so it continues where it stopped. Each
  folder is locked here while its job is out and shows ``status: running``.

Where it can, each distinct dataset is loaded once here and shared with the jobs (through
Ray's object store on Ray); one that fails to load is left to the job, which reports it as a
run of its own would. A failed job is recorded and the others go on (``fail_fast`` stops them);
Ctrl-C or SIGTERM cancels the jobs still out, marks their folders interrupted and raises
:class:`~dlrun.errors.Interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.data.sources import CACHE_DIR_ENV, DATA_DIR_ENV, Dataset, load_dataset
from dlrun.engines.runtime import quiet_tensorflow
from dlrun.errors import Interrupted
from dlrun.execution.executors import Executor, LocalExecutor, Resources, fetch, reason_of
from dlrun.protocol.jobs import prepare
from dlrun.reporting import Reporter
from dlrun.runs.cv import run_cv
from dlrun.runs.result import RunResult
from dlrun.runs.train import run_train
from dlrun.spec.schema import Spec
from dlrun.store import io as report
from dlrun.store.io import pack, unpack, write_files
from dlrun.store.lock import RunLock
from dlrun.store.run_folder import RunFolder, state_of
from dlrun.store.signals import StopSignals


def run_spec(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    smoothing: float = 0.0,
    executor: str | Executor | None = None,
    data: Dataset | None = None,
    plot_helper: bool = False,
) -> RunResult:
    """Run a spec with the command of its mode (``train`` or ``cv``) in ``run_dir``, whose lock the caller holds.

    A run directory that already holds saved folds or a checkpoint is continued.

    Args:
        spec: The validated spec.
        run_dir: The run directory.
        reporter: Progress sink.
        argv: The command line, for ``env.json``.
        smoothing: Smoothing of plotted curves (train).
        executor: Where cv folds train (default: ``runtime.executor``); train runs here.
        data: The dataset, already loaded (else it is loaded from ``spec.data``).
        plot_helper: See :func:`dlrun.runs.cv.run_cv`.
    """
    if spec.is_cv:
        prep = prepare(spec, reporter, data=data) if data is not None else None
        return run_cv(spec, run_dir, reporter, argv=argv, prep=prep, executor=executor, plot_helper=plot_helper)
    return run_train(spec, run_dir, reporter, argv=argv, smoothing=smoothing, data=data)


@dataclass
class SpecJob:
    """One spec to run into ``path``.

    Attributes:
        index: The job's position among its sweep points or batch configs.
        spec: The validated spec.
        path: Its run folder (on this machine).
        label: How messages name it (a point's folder, a config's path).
        data: A shared dataset handle, or None (the job loads its data).
        shipped: The folder's files when the job continues a started run elsewhere.
    """

    index: int
    spec: Spec
    path: Path
    label: str
    data: Any = None
    shipped: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass
class SpecDone:
    """How a :class:`SpecJob` ended.

    Attributes:
        status: ``finished``, ``failed``, ``cancelled`` or ``interrupted``.
        error: One line (empty when finished).
        summary: The run's ``summary.json`` content (empty unless finished).
        seconds: Wall time of the job.
        files: Every file the job wrote (relative path to bytes) when it ran elsewhere, else None.
    """

    status: str
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    files: dict[str, bytes] | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- the job itself
@dataclass
class RunSpec:
    """Run one :class:`SpecJob` (``train`` or ``cv`` as its mode says), its cv folds in-process.

    Attributes:
        in_place: Write into the job's own folder (this process); else run in a temporary
            folder and return every file.
        argv: The command line, for ``env.json``.
        cwd: The driver's working directory: relative data paths mean what they mean there.
        data_env: The driver's data folders (``DLRUN_DATA_DIR``, ``DLRUN_CACHE_DIR``).
        reporter: Progress sink (this process only).
    """

    in_place: bool
    argv: list[str]
    cwd: str
    data_env: dict[str, str]
    reporter: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "reporter": None}

    def __call__(self, job: SpecJob) -> Iterator[SpecDone]:
        if self.in_place:
            yield self._run(job, job.path)
            return
        quiet_tensorflow()
        old_cwd = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="dlrun-job-") as tmp, contextlib.ExitStack() as stack:
            run_dir = Path(tmp) / "run"
            run_dir.mkdir()
            unpack(run_dir, job.shipped)
            try:
                if os.path.isdir(self.cwd):
                    os.chdir(self.cwd)
                stack.enter_context(_use_env(self.data_env))
                done = self._run(job, run_dir)
            finally:
                os.chdir(old_cwd)
            done.files = pack(run_dir)
        yield done

    def _run(self, job: SpecJob, run_dir: Path) -> SpecDone:
        t0 = time.perf_counter()
        try:
            data = fetch(job.data) if job.data is not None else None
            with RunLock(run_dir):
                outcome = run_spec(
                    job.spec, run_dir, self.reporter, argv=self.argv, executor=LocalExecutor(), data=data
                )
        except Interrupted:
            raise
        except Exception as exc:  # a failure (or a bug) in one spec's run must not lose the others
            return SpecDone("failed", reason_of(exc), seconds=time.perf_counter() - t0)
        return SpecDone("finished", summary=outcome.summary, seconds=time.perf_counter() - t0)


def _data_env() -> dict[str, str]:
    return {k: os.environ[k] for k in (DATA_DIR_ENV, CACHE_DIR_ENV) if os.environ.get(k)}


@contextlib.contextmanager
def _use_env(env: dict[str, str]) -> Iterator[None]:
    """Set the driver's data folders for one job, where they exist on this node."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if os.path.isdir(v):
                os.environ[k] = v
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def data_key(spec: Spec) -> str:
    return json.dumps([spec.data.model_dump(mode="json"), spec.seed], sort_keys=True, default=str)


# ----------------------------------------------------------------------------- the driver
@dataclass
class JobNotes:
    """The lines a sweep or batch says about its jobs; :func:`run_spec_jobs` picks them by where jobs run.

    Attributes:
        note: Where the lines go.
        submitting: Said once before jobs are sent elsewhere (``submitting 3 point(s)``).
        started: The line for a job as it starts in this process (its progress follows).
        finished: The line for a job sent elsewhere when it comes back finished.
    """

    note: Callable[[str], None]
    submitting: str
    started: Callable[[SpecJob], str]
    finished: Callable[[SpecJob], str]


def runs_here(executor: Executor) -> bool:
    """Whether ``executor`` runs a whole-spec job in this process: in its own folder, holding its
    lock, its progress shown here; else the job's folder travels as bytes (see the module)."""
    return executor.in_process


def run_spec_jobs(
    executor: Executor,
    jobs: Iterable[SpecJob],
    on_done: Callable[[SpecJob, SpecDone], None],
    *,
    argv: list[str] | None = None,
    fail_fast: bool = False,
    reporter: Reporter | None = None,
    notes: JobNotes | None = None,
) -> None:
    """Run every job on ``executor``; call ``on_done`` once per job as it ends.

    Args:
        executor: Where the jobs run.
        jobs: Taken lazily (a job may be validated just before it is taken).
        on_done: Told how each job ended, in the order they end.
        argv: The command line, for each run's ``env.json``.
        fail_fast: After the first failure, cancel the jobs still out and take no more.
        reporter: Progress of jobs that run in this process.
        notes: What to say as jobs are sent, start and come back.

    Raises:
        InputError: A job asks for more than any node offers, or its folder is in use.
        Interrupted: Ctrl-C or SIGTERM (jobs still out are cancelled, marked and reported).
    """
    here = runs_here(executor)
    if notes is not None and not here:
        notes.note(f"{executor.name}: {notes.submitting}")
    fn = RunSpec(
        in_place=here,
        argv=list(argv if argv is not None else sys.argv),
        cwd=os.getcwd(),
        data_env=_data_env(),
        reporter=reporter,
    )
    shared: dict[str, Any] = {}
    out: dict[int, tuple[SpecJob, dict[str, Any]]] = {}  # taken and not yet done
    locks: dict[int, RunLock] = {}

    def release(job: SpecJob) -> None:
        lock = locks.pop(job.index, None)
        if lock is not None:
            lock.__exit__(None, None, None)

    def mark(job: SpecJob, placeholder: dict[str, Any], status: str, error: str) -> None:
        if here:
            return  # a run in this process marks its own folder (and a folder it could not lock is not ours)
        if state_of(job.path).get("status") not in (None, "running"):
            return  # the worker's own state came back and says how it ended
        folder = RunFolder(job.path)
        folder.write_state({**placeholder, "status": status, "error": error, "ended": report.now_iso()})
        folder.append_progress({"event": status, "error": error})

    def take() -> Iterator[SpecJob]:
        for job in jobs:
            key = data_key(job.spec)
            if key not in shared:
                try:
                    shared[key] = executor.share(load_dataset(job.spec.data, seed=job.spec.seed))
                except Exception:  # the job loads it again and reports the error as a run of its own would
                    shared[key] = None
            job.data = shared[key]
            placeholder: dict[str, Any] = {}
            if not here:
                executor.slots(Resources.of(job.spec.runtime))  # refuse a size no node offers
                lock = RunLock(job.path)
                lock.__enter__()
                locks[job.index] = lock
                old = state_of(job.path)
                job.shipped = pack(job.path) if old else {}  # a started run continues where it stopped
                placeholder = {
                    **old,
                    "name": job.spec.name,
                    "command": "cv" if job.spec.is_cv else "train",
                    "mode": job.spec.evaluation.mode,
                    "status": "running",
                    "started": old.get("started", report.now_iso()),
                    "executor": executor.name,
                }
                RunFolder(job.path).write_state(placeholder)
            out[job.index] = (job, placeholder)
            if notes is not None and here:
                notes.note(notes.started(job))
            yield job

    def stop_all(status: str, error: str) -> None:
        for job, placeholder in list(out.values()):
            mark(job, placeholder, "interrupted", error)
            release(job)
            on_done(job, SpecDone(status, error))
        out.clear()

    try:
        with (
            StopSignals(),
            contextlib.closing(
                executor.map(fn, take(), resources=lambda job: Resources.of(job.spec.runtime))
            ) as outcomes,
        ):
            for outcome in outcomes:
                job = outcome.job
                placeholder = out.pop(job.index, (job, {}))[1]
                if outcome.ok:
                    done = outcome.value
                    assert done is not None
                    if done.files is not None:
                        write_files(job.path, done.files, job.shipped)
                else:
                    done = SpecDone("failed", outcome.reason)
                if done.status == "failed":
                    mark(job, placeholder, "failed", done.error)
                release(job)
                if notes is not None and not here and done.status == "finished":
                    notes.note(notes.finished(job))
                on_done(job, done)
                if done.status == "failed" and fail_fast:
                    outcomes.close()
                    stop_all("cancelled", "cancelled after a failure (--fail-fast)")
                    break
    except (KeyboardInterrupt, Interrupted):
        stop_all("interrupted", "stopped by a signal")
        raise Interrupted("interrupted") from None
    except BaseException:
        stop_all("interrupted", "the driver stopped on an error")
        raise
    finally:
        for lock in locks.values():
            lock.__exit__(None, None, None)
