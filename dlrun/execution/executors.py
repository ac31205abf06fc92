"""Executors: where the jobs of a cv, sweep or batch run: in this process, or as Ray tasks.

One protocol, :class:`Executor`, with one method: ``map(fn, jobs)`` calls ``fn(job)`` for every
job and yields an :class:`Outcome` for each value ``fn`` produces (a finished value), or one
for a job that failed (with the exception and a one-line reason). ``fn(job)`` returns an
iterable, so a job that trains several models hands each back as soon as the executor has it:
in this process as it is produced, on Ray when the job's task returns.

The orchestrations (:func:`dlrun.runs.cv.run_cv`, :mod:`dlrun.runs.sweep`, :mod:`dlrun.runs.batch`) are
written once against this protocol; the driver always scores and writes every file itself, so
a run on Ray writes the same files, with the same values for the same seed, as a local one.

:class:`RayExecutor` runs each job as a Ray task asking for ``runtime.num_cpus`` CPUs and
``runtime.num_gpus`` GPUs, so two jobs never share a GPU unless a fraction is asked for; a
task whose worker dies is retried ``runtime.max_retries`` times, then its outcome is a failure.
Closing the iterator ``map`` returns (``contextlib.closing``), an exception, or Ctrl-C while it
waits, cancels every task still out. Ray is optional: it is imported only when a
:class:`RayExecutor` starts.

Clusters: start one with ``ray start --head`` and join it with ``--address HOST:6379`` (or
``runtime.address``). Every node needs the same Python with dlrun installed
(``pip install 'dlrun[ray]'``): workers import ``dlrun`` by name. With a local instance (no
address), workers share this machine, its working directory and its ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import dlrun
from dlrun.data.sources import CACHE_DIR_ENV, DATA_DIR_ENV
from dlrun.errors import DlrunError, InputError, Interrupted
from dlrun.store.signals import check_stop

J = TypeVar("J")
V = TypeVar("V")

RAY_MISSING = "the Ray executor needs Ray: pip install 'dlrun[ray]'"

FAULT_ENV = "DLRUN_RAY_FAULT"
"""Test hook: a marker file path. While it names a file that does not exist, the next Ray task
to start creates it and kills its own worker (SIGKILL), so tests can watch Ray retry."""

_POLL_S = 0.5  # how often the driver wakes while waiting on Ray, so Ctrl-C is seen promptly


# ----------------------------------------------------------------------------- the protocol
@dataclass
class Outcome(Generic[J, V]):
    """How one job (or one value of a job) ended.

    Attributes:
        job: The job as it was given to ``map``.
        value: What ``fn`` produced (None on failure).
        error: The exception that ended the job, or None. From a Ray task, the exception the
            task raised where Ray passes it on, else Ray's own error (a dead worker).
        reason: One line saying why the job failed ("" when it did not).
    """

    job: J
    value: V | None = None
    error: BaseException | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether this is a finished value."""
        return self.error is None


@dataclass(frozen=True)
class Resources:
    """What one job asks of a Ray cluster (``runtime.num_cpus``, ``num_gpus``, ``max_retries``)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2

    @classmethod
    def of(cls, runtime: Any) -> Resources:
        """The resources a spec's ``runtime`` section asks for."""
        return cls(float(runtime.num_cpus), float(runtime.num_gpus), int(runtime.max_retries))


class Executor(Protocol):
    """Runs jobs and reports how each ended.

    Attributes:
        name: ``local`` or ``ray`` (``state.json`` records it).
        in_process: Whether ``fn`` runs in this process, so callbacks (progress) reach the
            console and a job may write its own files.
        where: Words for messages, e.g. `` on Ray`` ("" for this process).
    """

    name: str
    in_process: bool
    where: str

    def slots(self, resources: Resources) -> int:
        """How many jobs of this size run at once (raises :class:`InputError` if none can)."""
        ...

    def share(self, value: Any) -> Any:
        """A handle to a large read-only value that jobs can carry cheaply (see :func:`fetch`)."""
        ...

    def sink(self, callback: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
        """The progress callback a job can call: ``callback`` where jobs run in this process, else None."""
        ...

    def driver_runtime(self, runtime: Any) -> Any:
        """The runtime section this (driving) process sets itself up with."""
        ...

    def map(
        self,
        fn: Callable[[J], Iterable[V]],
        jobs: Iterable[J],
        *,
        resources: Callable[[J], Resources] | None = None,
        window: int | None = None,
    ) -> Generator[Outcome[J, V], None, None]:
        """Run ``fn`` on every job; yield outcomes as they come.

        Args:
            fn: Called once per job; what it yields comes back as finished outcomes. For Ray it
                must be picklable (a module-level function or a dataclass instance).
            jobs: Taken lazily, one when there is room for it, so a job can be prepared (and
                its memory spent) just before it is submitted.
            resources: What each job asks for (default: the executor's own).
            window: At most this many jobs out at once (None: no limit).
        """
        ...


def fetch(handle: Any) -> Any:
    """The value behind a :meth:`Executor.share` handle (in a job, on whichever machine)."""
    if type(handle).__name__ == "ObjectRef":
        import ray

        return ray.get(handle)
    return handle


def reason_of(exc: BaseException) -> str:
    """One line saying why a job failed: a dlrun error's text (every problem of a spec, joined), else
    the type and text."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = (lines[0] + " " + "; ".join(lines[1:])).strip() if lines else ""
    if isinstance(exc, DlrunError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}".rstrip(": ")


# ----------------------------------------------------------------------------- in this process
class LocalExecutor:
    """Runs every job here, one after another, in the order given."""

    name = "local"
    in_process = True
    where = ""

    def slots(self, resources: Resources) -> int:
        """One job at a time."""
        return 1

    def share(self, value: Any) -> Any:
        """The value itself."""
        return value

    def sink(self, callback: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
        """``callback``: jobs run here, so they can report progress."""
        return callback

    def driver_runtime(self, runtime: Any) -> Any:
        """``runtime`` itself: the jobs train in this process."""
        return runtime

    def map(
        self,
        fn: Callable[[J], Iterable[V]],
        jobs: Iterable[J],
        *,
        resources: Callable[[J], Resources] | None = None,
        window: int | None = None,
    ) -> Generator[Outcome[J, V], None, None]:
        """Run each job in turn; an exception ends that job only (Ctrl-C and Interrupted end all)."""
        for job in jobs:
            try:
                for value in fn(job):
                    yield Outcome(job, value)
            except Interrupted:
                raise
            except Exception as exc:
                yield Outcome(job, error=exc, reason=reason_of(exc))


# ----------------------------------------------------------------------------- Ray
def import_ray() -> Any:
    """Import Ray, or raise the one-line :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def _worker_env(local: bool) -> dict[str, str]:
    """Environment variables every worker gets (TensorFlow quiet, Keras backend, data folders)."""
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    if os.environ.get("KERAS_BACKEND"):
        env["KERAS_BACKEND"] = os.environ["KERAS_BACKEND"]
    if local:
        for name in (DATA_DIR_ENV, CACHE_DIR_ENV):  # on a cluster each task brings them, where they exist
            if os.environ.get(name):
                env[name] = os.environ[name]
        # Workers on this machine import dlrun from wherever the driver does (even a source checkout).
        root = str(Path(dlrun.__file__).resolve().parents[1])
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


def _maybe_fault(marker: str | None) -> None:
    """The :data:`FAULT_ENV` test hook, run first thing in every task: exactly one task dies.

    The marker is created with ``O_EXCL``: two tasks starting at once on two workers would both
    see no marker with a plain existence check, and both die.
    """
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _task(fn: Callable[[Any], Iterable[Any]], job: Any, fault: str | None) -> list[Any]:
    """Worker side of every Ray task: the fault hook, then every value of ``fn(job)``."""
    _maybe_fault(fault)
    return list(fn(job))


class RayExecutor:
    """Runs each job as a Ray task (see the module docstring).

    Args:
        address: The cluster to join (None: a local instance, started on first use).
        resources: What a job asks for unless ``map`` is told otherwise.
        num_cpus_local: CPUs a local instance offers (default: all).
    """

    name = "ray"
    in_process = False
    where = " on Ray"

    def __init__(
        self, address: str | None = None, resources: Resources | None = None, num_cpus_local: int | None = None
    ) -> None:
        self.address = address
        self.resources = resources or Resources()
        self.num_cpus_local = num_cpus_local
        self._remotes: dict[Resources, Any] = {}

    def sink(self, callback: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
        """None: a task in another process cannot reach this process's console."""
        return None

    def driver_runtime(self, runtime: Any) -> Any:
        """Jobs train on their own devices: a GPU asked for is theirs, not this process's."""
        return runtime.model_copy(update={"device": "auto"}) if runtime.device == "gpu" else runtime

    def ray(self) -> Any:
        """The ``ray`` module, initialised (joined or started) on first use."""
        return init_ray(self.address, self.num_cpus_local)

    def slots(self, resources: Resources) -> int:
        """How many tasks of this size run at once; refuse sizes no node can ever offer."""
        ray = self.ray()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        cpu = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
        gpu = max((float(r.get("GPU", 0)) for r in nodes), default=0.0)
        if resources.num_cpus > cpu:
            raise InputError(
                f"runtime.num_cpus is {resources.num_cpus:g} but the largest Ray node offers {cpu:g} CPU(s); "
                "lower runtime.num_cpus"
            )
        if resources.num_gpus > gpu:
            raise InputError(
                f"runtime.num_gpus is {resources.num_gpus:g} but the largest Ray node offers {gpu:g} GPU(s); "
                "set runtime.num_gpus: 0 or join a cluster with GPUs (--address)"
            )
        n = sum(int(float(r.get("CPU", 0)) // resources.num_cpus) for r in nodes)
        if resources.num_gpus > 0:
            n = min(n, sum(int(float(r.get("GPU", 0)) // resources.num_gpus) for r in nodes))
        return max(1, n)

    def share(self, value: Any) -> Any:
        """Put ``value`` in Ray's object store once; jobs carry the reference."""
        return self.ray().put(value)

    def _remote(self, res: Resources) -> Any:
        if res not in self._remotes:
            self._remotes[res] = self.ray().remote(
                num_cpus=res.num_cpus, num_gpus=res.num_gpus, max_retries=res.max_retries
            )(_task)
        return self._remotes[res]

    def _reason(self, exc: BaseException, retries: int) -> tuple[BaseException, str]:
        """The exception to report and one line saying why a task failed."""
        ray = self.ray()
        cause = getattr(exc, "cause", None)
        if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
            return cause, reason_of(cause)
        if isinstance(exc, ray.exceptions.TaskCancelledError):
            return exc, "cancelled"
        kind = type(exc).__name__
        died = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)
        if isinstance(exc, died):
            return exc, f"the Ray worker died ({kind}) and {retries} retr{'y' if retries == 1 else 'ies'} did not help"
        return exc, reason_of(exc)

    def map(
        self,
        fn: Callable[[J], Iterable[V]],
        jobs: Iterable[J],
        *,
        resources: Callable[[J], Resources] | None = None,
        window: int | None = None,
    ) -> Generator[Outcome[J, V], None, None]:
        """Submit jobs as tasks (at most ``window`` out at once); yield outcomes as tasks end."""
        ray = self.ray()
        fault = os.environ.get(FAULT_ENV) or None
        pending = iter(jobs)
        inflight: dict[Any, tuple[J, Resources]] = {}

        def fill() -> None:
            while window is None or len(inflight) < window:
                job = next(pending, _END)
                if job is _END:
                    return
                res = resources(job) if resources is not None else self.resources
                inflight[self._remote(res).remote(fn, job, fault)] = (job, res)  # type: ignore[index]

        try:
            fill()
            while inflight:
                ref = self._wait_one(list(inflight))
                job, res = inflight.pop(ref)
                try:
                    values = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    error, why = self._reason(exc, res.max_retries)
                    yield Outcome(job, error=error, reason=why)
                else:
                    for value in values:
                        yield Outcome(job, value)
                fill()
        finally:
            for ref in inflight:  # closed early, an error, or Ctrl-C: nothing keeps running
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def _wait_one(self, refs: list[Any]) -> Any:
        """Block until one of ``refs`` is ready, waking often: a stop signal ends the wait (and
        ``map``'s ``finally`` cancels the tasks still out)."""
        ray = self.ray()
        while True:
            check_stop()  # the CLI routes SIGINT/SIGTERM to a flag checked here
            done, _ = ray.wait(refs, num_returns=1, timeout=_POLL_S)
            if done:
                return done[0]


_END: Any = object()


# ----------------------------------------------------------------------------- choosing one
EXECUTORS = ("local", "ray")


def make_executor(executor: str | Executor | None, runtime: Any) -> Executor:
    """The executor named by ``executor`` (or by ``runtime.executor`` when None).

    Args:
        executor: ``local``, ``ray``, an :class:`Executor`, or None.
        runtime: The spec's ``runtime`` section (address and job size for Ray).

    Raises:
        InputError: An unknown name.
    """
    if executor is not None and not isinstance(executor, str):
        return executor
    name = executor or runtime.executor
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(runtime.address, Resources.of(runtime))
    raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got '{name}'")


def chunk_size(n_jobs: int, slots: int, cap: int | None) -> int:
    """Folds per task: ``runtime.max_models_per_chunk``, else spread evenly over the slots."""
    if n_jobs <= 0:
        return 1
    return max(1, cap if cap is not None else math.ceil(n_jobs / max(1, slots)))
