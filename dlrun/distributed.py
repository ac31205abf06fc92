"""The Ray executor: sweep points, batch configs and chunks of cv folds as Ray tasks.

``runtime.executor: ray`` (or ``--executor ray``) sends work to Ray instead of running it
in this process. What a task gets and returns:

* a chunk of folds of ``dlrun cv``: the driver loads the data, makes the folds and
  preprocesses them into :class:`~dlrun.engines.base.FitJob` arrays, so workers need no
  data files and no shared filesystem. A worker trains its chunk with the engine the
  driver chose (stacked where it can, else sequential) and returns the
  :class:`~dlrun.engines.base.FitResult` of each fold (without the Keras model). The
  driver scores each fold and saves it as a part as soon as its task returns, then
  assembles the run exactly as :func:`dlrun.runner.run_cv` does: the same files, the same
  values for the same seed (timing columns aside), and ``--resume`` skips saved folds.
* a sweep point or a batch config: a worker runs the spec (train or cv, in-process) into a
  temporary folder and returns every file it wrote; the driver writes them into the
  point's folder atomically. A point that was started before ships its folder to the
  worker, so it continues there. Where it can, the driver loads each distinct dataset
  once and ships it through Ray's object store.

A worker that dies is retried by Ray up to ``runtime.max_retries`` times; after that its
job is reported failed (a sweep row or batch item with the reason; ``dlrun cv`` raises
:class:`~dlrun.errors.RunError` naming the folds) and what had finished is kept. Ctrl-C
(or SIGTERM) on the driver cancels outstanding tasks, marks the run interrupted and raises
:class:`~dlrun.errors.Interrupted`.

Each task asks Ray for ``runtime.num_cpus`` CPUs and ``runtime.num_gpus`` GPUs, so two jobs
never share a GPU unless a fraction is asked for.

Clusters: start one with ``ray start --head`` and join it with ``--address HOST:6379`` (or
``runtime.address``). Every node needs the same Python with dlrun (``pip install 'dlrun[ray]'``)
and TensorFlow installed: workers import ``dlrun`` by name. With a local instance (no
address), workers share this machine, its working directory and its ``PYTHONPATH``.

Ray is optional: it is imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dlrun import report
from dlrun.errors import DlrunError, InputError, Interrupted, RunError

if TYPE_CHECKING:
    from dlrun.batch import BatchItem
    from dlrun.datasets import Dataset
    from dlrun.engines.base import FitJob, FitResult
    from dlrun.progress import Reporter
    from dlrun.runner import Prepared, RunOutcome
    from dlrun.spec import RuntimeSpec, Spec
    from dlrun.splits import Fold
    from dlrun.sweep import SweepPoint

RAY_MISSING = "the Ray executor needs Ray: pip install 'dlrun[ray]'"

FAULT_ENV = "DLRUN_RAY_FAULT"
"""Test hook: a marker file path. While it names a file that does not exist, the next task
to start creates it and kills its own worker (SIGKILL), so tests can watch Ray retry."""

_POLL_S = 0.5  # how often the driver wakes while waiting, so Ctrl-C is seen promptly


# ----------------------------------------------------------------------------- Ray itself
def import_ray() -> Any:
    """Import Ray, or raise the one-line :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def _worker_env(local: bool) -> dict[str, str]:
    """Environment variables every worker gets (TensorFlow quiet, Keras backend, data folders)."""
    from dlrun.datasets import CACHE_DIR_ENV, DATA_DIR_ENV

    env = {
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    if local:
        for name in (DATA_DIR_ENV, CACHE_DIR_ENV):  # on a cluster each task brings them, where they exist
            if os.environ.get(name):
                env[name] = os.environ[name]
        # Workers on this machine import dlrun from wherever the driver does (even a source checkout).
        root = str(Path(__file__).resolve().parents[1])
        paths = [root, os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def init_ray(address: str | None, num_cpus_local: int | None = None) -> Any:
    """Join the Ray cluster at ``address``, or start a local instance; return the ``ray`` module.

    Does nothing when Ray is already initialised in this process (it is reused as it is).

    Args:
        address: ``HOST:PORT`` of a running cluster (``ray start --head``), ``auto``, or None for
            a local instance on this machine.
        num_cpus_local: CPUs a local instance offers (default: all of them).

    Raises:
        InputError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    import logging

    common: dict[str, Any] = {
        "runtime_env": {"env_vars": _worker_env(local=address is None)},
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "ignore_reinit_error": True,
    }
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(address="local", num_cpus=num_cpus_local, include_dashboard=False, **common)
    except ConnectionError as exc:
        raise InputError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    return ray


def _check_fits(ray: Any, rt: RuntimeSpec) -> int:
    """How many tasks of ``rt``'s size run at once; refuse sizes no node can ever offer."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpu = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
    gpu = max((float(r.get("GPU", 0)) for r in nodes), default=0.0)
    if rt.num_cpus > cpu:
        raise InputError(
            f"runtime.num_cpus is {rt.num_cpus:g} but the largest Ray node offers {cpu:g} CPU(s); "
            "lower runtime.num_cpus"
        )
    if rt.num_gpus > gpu:
        raise InputError(
            f"runtime.num_gpus is {rt.num_gpus:g} but the largest Ray node offers {gpu:g} GPU(s); "
            "set runtime.num_gpus: 0 or join a cluster with GPUs (--address)"
        )
    slots = sum(int(float(r.get("CPU", 0)) // rt.num_cpus) for r in nodes)
    if rt.num_gpus > 0:
        slots = min(slots, sum(int(float(r.get("GPU", 0)) // rt.num_gpus) for r in nodes))
    return max(1, slots)


_REMOTES: dict[tuple[Any, ...], Any] = {}


def _remote(ray: Any, fn: Callable[..., Any], rt: RuntimeSpec) -> Any:
    """``fn`` as a Ray remote function sized by ``rt`` (cached per size)."""
    key = (fn.__name__, rt.num_cpus, rt.num_gpus, rt.max_retries)
    if key not in _REMOTES:
        _REMOTES[key] = ray.remote(num_cpus=rt.num_cpus, num_gpus=rt.num_gpus, max_retries=rt.max_retries)(fn)
    return _REMOTES[key]


def _fault_marker() -> str | None:
    return os.environ.get(FAULT_ENV) or None


def _maybe_fault(marker: str | None) -> None:
    """The :data:`FAULT_ENV` test hook, run first thing in every task."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _reason(ray: Any, exc: BaseException, retries: int) -> str:
    """One line saying why a task failed."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        text = str(cause).splitlines()[0] if str(cause) else ""
        return text if isinstance(cause, DlrunError) and text else f"{type(cause).__name__}: {text}".rstrip(": ")
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return "cancelled"
    kind = type(exc).__name__
    if isinstance(
        exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)
    ):
        return f"the Ray worker died ({kind}) and {retries} retr{'y' if retries == 1 else 'ies'} did not help"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{kind}: {first}".rstrip(": ")


def _cancel(ray: Any, refs: list[Any]) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


def _wait_one(ray: Any, refs: list[Any]) -> Any:
    """Block until one of ``refs`` is ready (waking often, so signals are handled)."""
    while True:
        done, _ = ray.wait(refs, num_returns=1, timeout=_POLL_S)
        if done:
            return done[0]


# ----------------------------------------------------------------------------- cv: fold chunks
def _fit_chunk_task(
    spec: Spec,
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    engine_name: str,
    jobs: list[FitJob],
    fault: str | None = None,
) -> list[FitResult]:
    """Worker side: train a chunk of folds with the engine the driver chose."""
    _maybe_fault(fault)
    from dlrun.runtime import quiet_tensorflow, setup

    quiet_tensorflow()
    setup(spec.runtime)
    engine: Any
    if engine_name == "stacked":
        from dlrun.engines.stacked import StackedEngine

        engine = StackedEngine(spec, task, input_shape, n_outputs)
    else:
        from dlrun.engines.sequential import SequentialEngine

        engine = SequentialEngine(spec, task, input_shape, n_outputs)
    out = []
    for result in engine.fit(jobs, None):
        result.model = None  # Keras models do not travel; the weights do
        out.append(result)
    return out


def chunk_size(n_folds: int, slots: int, cap: int | None) -> int:
    """Folds per Ray task: ``runtime.max_models_per_chunk``, else spread evenly over the slots."""
    if n_folds <= 0:
        return 1
    return max(1, cap if cap is not None else math.ceil(n_folds / max(1, slots)))


def run_cv_ray(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    prep: Prepared | None = None,
) -> RunOutcome:
    """:func:`dlrun.runner.run_cv` with the folds trained as Ray tasks, a chunk of folds per task.

    Writes the same files as a local run (``parts/`` as each chunk returns, then scores,
    history, predictions, summary and plots). Saved folds are skipped, so ``--resume`` works.

    Raises:
        InputError: A cv mode is not set, Ray is missing, or the cluster cannot fit a task.
        RunError: Some folds failed (their worker died past ``runtime.max_retries``, or training
            raised); the other folds are saved.
        Interrupted: Ctrl-C or SIGTERM; outstanding tasks are cancelled.
    """
    from dlrun import runner
    from dlrun.progress import NullReporter
    from dlrun.spec import CV_MODES, resolved_dict

    reporter = reporter or NullReporter()
    if spec.evaluation.mode not in CV_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(CV_MODES)} for `dlrun cv`, got '{spec.evaluation.mode}'; "
            "use `dlrun train` for split, validation_split and none"
        )
    ray = init_ray(spec.runtime.address)
    slots = _check_fits(ray, spec.runtime)
    prep = prep or runner.prepare(spec, reporter)
    writer = report.RunWriter(run_dir)
    writer.write_table(report.FOLDS, runner.folds_table(prep.folds))
    # The driver only scores and writes: a GPU asked for is the workers' business, not its own.
    driver_spec = spec
    if spec.runtime.device == "gpu":
        driver_spec = spec.model_copy(update={"runtime": spec.runtime.model_copy(update={"device": "auto"})})
    previous = (writer.read_state() or {}).get("engine")
    state = runner._begin(driver_spec, writer, "cv", len(prep.folds), argv)
    if driver_spec is not spec:
        writer.write_config(resolved_dict(spec))
    state["executor"] = "ray"
    parts = writer.read_parts()
    pending = [f for f in prep.folds if f.key not in parts]
    engine_name = "none"
    inflight: dict[Any, list[Fold]] = {}
    try:
        with runner._StopSignals():
            if pending:
                engine_name = runner.choose_engine(
                    prep, reporter, len(pending), previous=previous if parts else None
                ).name
                state["engine"] = engine_name
                reporter.start(spec.name, len(prep.folds), spec.training.epochs, done_models=len(parts))
                state["finished_models"] = len(parts)
                writer.write_state(state)
                size = chunk_size(len(pending), slots, spec.runtime.max_models_per_chunk)
                chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
                reporter.note(f"ray: {len(pending)} fold(s) in {len(chunks)} task(s) of up to {size}")
                failed = _train_chunks(
                    ray, prep, engine_name, chunks, 2 * slots, inflight, writer, state, parts, reporter
                )
                reporter.finish()
                if failed:
                    names = ", ".join(f"repeat {f.repeat} fold {f.fold}" for f, _ in failed)
                    raise RunError(
                        f"{len(failed)} of {len(prep.folds)} fold(s) failed on Ray ({names}): {failed[0][1]}; "
                        f"the other folds are saved: resume with: dlrun cv --resume --out {run_dir}"
                    )
            if engine_name == "none":
                engine_name = str(state.get("engine") or next(iter(parts.values()))["scores"].get("engine", "none"))
            summary = runner.assemble_cv(prep, writer, parts, engine_name)
    except (KeyboardInterrupt, Interrupted) as exc:
        _cancel(ray, list(inflight))
        reporter.finish()
        runner._fail(writer, state, exc)
        raise Interrupted(
            f"interrupted after {len(parts)}/{len(prep.folds)} folds; resume with: dlrun cv --resume --out {run_dir}"
        ) from None
    except BaseException as exc:
        _cancel(ray, list(inflight))
        reporter.finish()
        runner._fail(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=len(parts))
    writer.write_state(state)
    writer.append_progress({"event": "finished"})
    return runner.RunOutcome(run_dir, summary, engine_name)


def _train_chunks(
    ray: Any,
    prep: Prepared,
    engine_name: str,
    chunks: list[list[Fold]],
    window: int,
    inflight: dict[Any, list[Fold]],
    writer: report.RunWriter,
    state: dict[str, Any],
    parts: dict[tuple[int, int], dict[str, Any]],
    reporter: Reporter,
) -> list[tuple[Fold, str]]:
    """Submit chunks (a bounded window of them, so preprocessed arrays do not pile up), save
    each fold as its chunk returns; return the folds that failed with the reason."""
    from dlrun import runner
    from dlrun.preprocessing import Preprocessor

    spec = prep.spec
    fn = _remote(ray, _fit_chunk_task, spec.runtime)
    queue = list(chunks)
    pres: dict[tuple[int, int], Preprocessor] = {}
    by_key = {f.key: f for chunk in chunks for f in chunk}
    failed: list[tuple[Fold, str]] = []
    fault = _fault_marker()

    def submit() -> None:
        chunk = queue.pop(0)
        jobs = []
        for fold in chunk:
            job, pre = runner.make_job(prep, fold)
            jobs.append(job)
            pres[fold.key] = pre
        ref = fn.remote(spec, prep.task, prep.input_shape, prep.n_outputs, engine_name, jobs, fault)
        inflight[ref] = chunk

    while queue and len(inflight) < window:
        submit()
    while inflight:
        ref = _wait_one(ray, list(inflight))
        chunk = inflight.pop(ref)
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as exc:
            why = _reason(ray, exc, spec.runtime.max_retries)
            reporter.note(f"ray: folds {', '.join(str(f.key) for f in chunk)} failed: {why}")
            failed += [(f, why) for f in chunk]
            for f in chunk:
                pres.pop(f.key, None)
            writer.append_progress({"event": "chunk_failed", "folds": [list(f.key) for f in chunk], "error": why})
        else:
            for result in results:
                runner.check_finite(result)
                key = (result.repeat, result.fold)
                fold = by_key[key]
                part = runner.score_fold(prep, fold, pres.pop(key), result)
                writer.write_part(fold.repeat, fold.fold, part)
                parts[key] = part
                state["finished_models"] = len(parts)
                writer.write_state(state)
                main = runner._main_scores(prep, part)
                writer.append_progress({"event": "fold", "repeat": fold.repeat, "fold": fold.fold, "scores": main})
                reporter.model_done(key, main, float(part["scores"]["seconds"]))
        while queue and len(inflight) < window:
            submit()
    return failed


# ----------------------------------------------------------------------------- whole specs
def _accepts_data(fn: Callable[..., Any]) -> bool:
    import inspect

    return "data" in inspect.signature(fn).parameters


def _pack(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path → bytes), the lock file aside."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != report.LOCK
    }


def _unpack(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def _data_env() -> dict[str, str]:
    """The driver's data folders (``DLRUN_DATA_DIR``, ``DLRUN_CACHE_DIR``), for the workers."""
    from dlrun.datasets import CACHE_DIR_ENV, DATA_DIR_ENV

    return {k: os.environ[k] for k in (DATA_DIR_ENV, CACHE_DIR_ENV) if os.environ.get(k)}


@contextlib.contextmanager
def _use_env(env: dict[str, str]) -> Any:
    """Set the driver's data folders for one task, where they exist on this node."""
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


def _run_spec_task(
    spec: Spec,
    dataset: Dataset | None,
    existing: dict[str, bytes],
    argv: list[str] | None,
    cwd: str,
    data_env: dict[str, str],
    fault: str | None = None,
) -> dict[str, Any]:
    """Worker side: run one spec (train or cv, in this process) in a temporary folder.

    Returns:
        ``files`` (every file written, relative path → bytes), ``summary`` (None on failure),
        ``error`` (None, or one line as the local sweep/batch would record it) and ``seconds``.
    """
    _maybe_fault(fault)
    from dlrun import runner
    from dlrun.runtime import quiet_tensorflow

    quiet_tensorflow()
    t0 = time.perf_counter()
    summary: dict[str, Any] | None = None
    error: str | None = None
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="dlrun-ray-") as tmp, contextlib.ExitStack() as stack:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        _unpack(run_dir, existing)
        try:
            if os.path.isdir(cwd):
                os.chdir(cwd)  # relative data paths mean what they mean to the driver
            stack.enter_context(_use_env(data_env))
            # The spec runs here, in-process: runner.execute would send a ray-executor cv back to Ray.
            if spec.is_cv:
                prep = runner.prepare(spec, data=dataset) if dataset is not None else None
                outcome = runner.run_cv(spec, run_dir, argv=argv, prep=prep)
            elif dataset is not None and _accepts_data(runner.run_train):
                outcome = runner.run_train(spec, run_dir, argv=argv, data=dataset)  # type: ignore[call-arg]
            else:
                outcome = runner.run_train(spec, run_dir, argv=argv)
            summary = outcome.summary
        except DlrunError as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # a bug in one spec's run must not lose the others
            error = f"{type(exc).__name__}: {exc}"
        finally:
            os.chdir(old_cwd)
        files = _pack(run_dir)
    return {"files": files, "summary": summary, "error": error, "seconds": time.perf_counter() - t0}


def _write_files(folder: Path, files: dict[str, bytes], shipped: dict[str, bytes]) -> None:
    """Write a worker's files into ``folder`` atomically (``state.json`` last) and remove
    files the worker had and deleted (a cleared checkpoint)."""
    order = sorted(files, key=lambda rel: (rel == report.STATE, rel))
    for rel in order:
        with report.atomic_path(folder / rel) as tmp:
            tmp.write_bytes(files[rel])
    for rel in shipped:
        if rel not in files:
            with contextlib.suppress(FileNotFoundError):
                (folder / rel).unlink()


@dataclass
class _SpecJob:
    """One spec to run on Ray into ``path``."""

    index: int
    spec: Spec
    path: Path
    label: str


@dataclass
class _Done:
    """How a :class:`_SpecJob` ended: finished, failed, cancelled or interrupted."""

    status: str
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _data_key(spec: Spec) -> str:
    return json.dumps([spec.data.model_dump(mode="json"), spec.seed], sort_keys=True, default=str)


def _ship_datasets(ray: Any, specs: list[Spec], note: Callable[[str], None]) -> dict[str, Any]:
    """Load each distinct dataset once on the driver and put it in Ray's object store.

    Only for specs whose run can take a loaded dataset (cv; train once ``run_train`` accepts
    ``data=``); a dataset that fails to load here is left to the worker, which reports it.
    """
    from dlrun import runner
    from dlrun.datasets import load_dataset

    train_ok = _accepts_data(runner.run_train)
    refs: dict[str, Any] = {}
    for spec in specs:
        key = _data_key(spec)
        if key in refs or not (spec.is_cv or train_ok):
            continue
        try:
            refs[key] = ray.put(load_dataset(spec.data, seed=spec.seed))
        except Exception:  # the worker loads it again and reports the error as a local run would
            refs[key] = None
    if refs:
        note(f"ray: {sum(r is not None for r in refs.values())} dataset(s) loaded once and shipped to the workers")
    return refs


def _state_of(path: Path) -> dict[str, Any]:
    p = path / report.STATE
    return dict(report.read_json(p)) if p.exists() else {}


def _run_spec_jobs(
    ray: Any,
    jobs: list[_SpecJob],
    on_done: Callable[[_SpecJob, _Done], None],
    *,
    argv: list[str] | None,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
) -> None:
    """Run every job as a Ray task; call ``on_done`` once per job as it ends.

    Every job's size is checked and its folder locked before anything is submitted; a folder
    shows ``status: running`` while its task is out. On Ctrl-C or SIGTERM, outstanding tasks
    are cancelled, their folders marked interrupted, ``on_done`` told, and
    :class:`Interrupted` raised.

    Raises:
        InputError: A job asks for more than any node offers, or its folder is in use.
    """
    from dlrun.locking import RunLock
    from dlrun.runner import _StopSignals

    for job in jobs:
        _check_fits(ray, job.spec.runtime)
    fault = _fault_marker()
    cwd = os.getcwd()
    argv = list(argv if argv is not None else sys.argv)
    data_env = _data_env()
    inflight: dict[Any, tuple[_SpecJob, dict[str, bytes], dict[str, Any]]] = {}
    locks: dict[int, RunLock] = {}

    def release(job: _SpecJob) -> None:
        lock = locks.pop(job.index, None)
        if lock is not None:
            lock.__exit__(None, None, None)

    def mark(job: _SpecJob, placeholder: dict[str, Any], status: str, error: str) -> None:
        if _state_of(job.path).get("status") not in (None, "running"):
            return  # the worker's own state came back
        writer = report.RunWriter(job.path)
        writer.write_state({**placeholder, "status": status, "error": error, "ended": report.now_iso()})
        writer.append_progress({"event": status, "error": error})

    def stop_all(status: str, error: str) -> None:
        _cancel(ray, list(inflight))
        for job, _, placeholder in inflight.values():
            mark(job, placeholder, "interrupted", error)
            release(job)
            on_done(job, _Done(status, error))
        inflight.clear()

    try:
        with _StopSignals():
            for job in jobs:
                lock = RunLock(job.path)
                lock.__enter__()
                locks[job.index] = lock
            refs = _ship_datasets(ray, [j.spec for j in jobs], note)
            for job in jobs:
                old = _state_of(job.path)
                shipped = _pack(job.path) if old else {}  # a started run continues where it stopped
                placeholder = {
                    **old,
                    "name": job.spec.name,
                    "command": "cv" if job.spec.is_cv else "train",
                    "mode": job.spec.evaluation.mode,
                    "status": "running",
                    "started": old.get("started", report.now_iso()),
                    "executor": "ray",
                }
                report.RunWriter(job.path).write_state(placeholder)
                fn = _remote(ray, _run_spec_task, job.spec.runtime)
                ref = fn.remote(job.spec, refs.get(_data_key(job.spec)), shipped, argv, cwd, data_env, fault)
                inflight[ref] = (job, shipped, placeholder)
            while inflight:
                ref = _wait_one(ray, list(inflight))
                job, shipped, placeholder = inflight.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    why = _reason(ray, exc, job.spec.runtime.max_retries)
                    mark(job, placeholder, "failed", why)
                    done = _Done("failed", why)
                else:
                    _write_files(job.path, out["files"], shipped)
                    if out["error"] is not None:
                        mark(job, placeholder, "failed", out["error"])
                        done = _Done("failed", out["error"], seconds=out["seconds"])
                    else:
                        done = _Done("finished", summary=out["summary"] or {}, seconds=out["seconds"])
                release(job)
                on_done(job, done)
                if done.status == "failed" and fail_fast:
                    stop_all("cancelled", "cancelled after a failure (--fail-fast)")
    except (KeyboardInterrupt, Interrupted):
        stop_all("interrupted", "stopped by a signal")
        raise Interrupted("interrupted") from None
    except BaseException:
        stop_all("interrupted", "the driver stopped on an error")
        raise
    finally:
        for lock in locks.values():
            lock.__exit__(None, None, None)


# ----------------------------------------------------------------------------- sweeps
def run_points_ray(
    base: Spec,
    points: list[SweepPoint],
    sweep_dir: Path,
    *,
    resume: bool = False,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
    argv: list[str] | None = None,
) -> pd.DataFrame:
    """:func:`dlrun.sweep.run_sweep` with one Ray task per point; the same ``sweep.csv`` and plots.

    Points already finished are skipped; unfinished ones continue from their folder.

    Returns:
        The sweep table, in grid order (also written as ``sweep.csv``).

    Raises:
        Interrupted: Ctrl-C or SIGTERM (outstanding points are cancelled and marked).
    """
    from dlrun.sweep import SWEEP_CSV, SWEEP_STATE, _row_from_dir, _sweep_plots, point_status

    ray = init_ray(base.runtime.address)
    writer = report.RunWriter(sweep_dir)
    listing = [{"folder": p.folder, "overrides": p.overrides} for p in points]
    report.write_json(sweep_dir / SWEEP_STATE, {"name": base.name, "points": listing, "status": "running"})
    rows: dict[int, dict[str, Any]] = {}
    jobs: list[_SpecJob] = []
    for i, point in enumerate(points):
        path = sweep_dir / point.folder
        if point_status(path) == "finished":
            note(f"[{i + 1}/{len(points)}] {point.folder}: finished earlier, skipped")
            rows[i] = {**point.overrides, "folder": point.folder, **_row_from_dir(path)}
            continue
        jobs.append(_SpecJob(i, point.spec, path, point.folder))
    if jobs:
        note(f"ray: submitting {len(jobs)} point(s)")

    def on_done(job: _SpecJob, done: _Done) -> None:
        point = points[job.index]
        row: dict[str, Any] = {**point.overrides, "folder": point.folder}
        if done.status == "finished":
            rows[job.index] = {**row, **_row_from_dir(job.path)}
            note(f"[{job.index + 1}/{len(points)}] {point.folder}: finished")
        else:
            rows[job.index] = {**row, "status": done.status, "error": done.error}
            note(f"{point.folder}: {done.status}: {done.error}")

    interrupted = False
    try:
        _run_spec_jobs(ray, jobs, on_done, argv=argv, fail_fast=fail_fast, note=note)
    except Interrupted:
        interrupted = True
    ordered = [rows[i] for i in sorted(rows)]
    table = pd.DataFrame(ordered)
    writer.write_table(SWEEP_CSV, table)
    _sweep_plots(writer, table, points, sweep_dir)
    finished = all(r.get("status") == "finished" for r in ordered) and len(ordered) == len(points)
    status = "interrupted" if interrupted else ("finished" if finished else "failed")
    report.write_json(sweep_dir / SWEEP_STATE, {"name": base.name, "points": listing, "status": status})
    if interrupted:
        raise Interrupted(f"sweep interrupted; resume with: dlrun sweep --resume --out {sweep_dir} (same grid)")
    return table


# ----------------------------------------------------------------------------- batches
def run_batch_ray(
    configs: list[Path],
    batch_dir: Path,
    extra_overrides: list[str],
    *,
    resume: bool = False,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
    argv: list[str] | None = None,
) -> list[BatchItem]:
    """:func:`dlrun.batch.run_batch` with one Ray task per config; the same ``batch.csv``.

    Each config is read and validated on the driver (with ``extra_overrides``); one that does
    not validate is a failed item, as locally.

    Raises:
        InputError: A config's folder already holds a run and ``resume`` is off.
        Interrupted: Ctrl-C or SIGTERM (outstanding configs are cancelled and marked).
    """
    from dlrun.batch import _write, plan_items, previous_status
    from dlrun.spec import load_spec

    items = plan_items(configs, batch_dir)
    jobs: list[_SpecJob] = []
    for n, item in enumerate(items):
        previous_status(item, n, len(items), resume, note)
        if item.status == "finished":
            continue
        try:
            spec = load_spec(item.config, list(extra_overrides))
        except DlrunError as exc:
            item.status = "failed"
            item.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            note(f"{item.config}: failed: {item.error}")
            if fail_fast:
                _write(batch_dir, items)
                return items
            continue
        jobs.append(_SpecJob(n, spec, item.folder, str(item.config)))
    batch_dir.mkdir(parents=True, exist_ok=True)
    _write(batch_dir, items)
    if not jobs:
        return items
    ray = init_ray(jobs[0].spec.runtime.address)
    note(f"ray: submitting {len(jobs)} config(s)")

    def on_done(job: _SpecJob, done: _Done) -> None:
        item = items[job.index]
        item.status = done.status
        item.error = done.error
        item.seconds = done.seconds
        if done.status == "finished":
            item.headline = str((done.summary.get("headline") or {}).get("text", ""))
            note(f"[{job.index + 1}/{len(items)}] {item.config}: finished")
        else:
            note(f"{item.config}: {done.status}: {done.error}")
        _write(batch_dir, items)

    try:
        _run_spec_jobs(ray, jobs, on_done, argv=argv, fail_fast=fail_fast, note=note)
    except Interrupted:
        _write(batch_dir, items)
        raise Interrupted(f"batch interrupted; resume with: dlrun batch --resume --out {batch_dir} ...") from None
    _write(batch_dir, items)
    return items
