"""Run a spec with the command its evaluation mode belongs to (``train`` or ``cv``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlrun.data.sources import Dataset
from dlrun.protocol.jobs import prepare
from dlrun.reporting import Reporter
from dlrun.runs.cv import run_cv
from dlrun.runs.record import RunOutcome
from dlrun.runs.train import run_train
from dlrun.spec.schema import Spec

if TYPE_CHECKING:
    from dlrun.execution.executors import Executor


def execute(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    smoothing: float = 0.0,
    executor: str | Executor | None = None,
    data: Dataset | None = None,
    plot_helper: bool = False,
) -> RunOutcome:
    """Run a spec with the command its mode belongs to (``train`` or ``cv``), in ``run_dir``, holding its lock.

    A run directory that already holds saved folds or a checkpoint is continued.

    Args:
        spec: The validated spec.
        run_dir: The run directory.
        reporter: Progress sink.
        argv: The command line, for ``env.json``.
        smoothing: Smoothing of plotted curves (train).
        executor: Where cv folds train (default: ``runtime.executor``); train runs here.
        data: The dataset, already loaded (else it is loaded from ``spec.data``).
        plot_helper: See :func:`run_cv`.
    """
    from dlrun.runs.locking import RunLock

    with RunLock(run_dir):
        if spec.is_cv:
            prep = prepare(spec, reporter, data=data) if data is not None else None
            return run_cv(spec, run_dir, reporter, argv=argv, prep=prep, executor=executor, plot_helper=plot_helper)
        return run_train(spec, run_dir, reporter, argv=argv, smoothing=smoothing, data=data)
