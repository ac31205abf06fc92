"""The last step of a cv run: plots, ``report.html`` and the ``finished`` state, here or in helpers.

Plot functions take a matplotlib ``ax`` (:mod:`dlrun.report.plots`); this module decides which
figures a cv run gets. :class:`Finisher` runs that work in spawned helper processes, so a search
or a large cv run draws while it trains or writes its tables.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.engines.runtime import usable_cores
from dlrun.evaluation import stats
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.jobs import Prepared, curve_units
from dlrun.store import io as report
from dlrun.store.run_folder import RunFolder
from dlrun.store.signals import check_stop


def finish_cv_folder(
    run_dir: Path,
    ctx: PlotContext,
    scores: pd.DataFrame,
    history: pd.DataFrame,
    summary: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """The last step of a cv run handed to a :class:`Finisher`: plots, ``report.html``, then ``finished``."""
    folder = RunFolder(run_dir)
    try:
        cv_plots(ctx, folder.writer, scores, history, summary)
    except BaseException as exc:
        folder.mark_failed(state, exc)
        raise
    folder.write_state(state)
    folder.append_progress({"event": "finished"})


def helper_warm() -> None:
    """A plot helper's first job: the imports and font loading its plots need, done before they are asked for."""
    from matplotlib.figure import Figure

    from dlrun.report import plots  # noqa: F401

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().set_title("warm")
    fig.canvas.draw()  # the first text drawn loads the font


def _skip_teardown() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _helper_start(parent: int) -> None:
    """Set up a :class:`Finisher` helper process: it ignores Ctrl-C and ends with its parent."""
    import atexit
    import threading

    # a helper's files are closed when its job returns; tearing down its modules (matplotlib,
    # pandas, scikit-learn) took 0.4 s, which the parent's exit waited for
    atexit.register(_skip_teardown)

    # Ctrl-C reaches the whole process group: the parent stops the search and cancels what is queued
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        # a parent killed with SIGKILL never closes the task queue (the helpers hold its other end)
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="dlrun-parent-watch", daemon=True).start()


class Finisher:
    """Draws finished runs' plots and report pages in a helper process while this one trains on.

    A search's trials are scored and summarised here (the sampler needs their values), then handed
    over: their plots (about 0.7 s of CPU per trial on the 2-core reference machine, more than the
    training of a Sonar trial) are drawn by helper processes on the cores the search leaves idle
    between its engine calls. Helpers are fresh interpreters (spawned, not forked: JAX's threads do
    not survive a fork) that import no Keras or JAX. A run's state
    says ``finished`` only once its plots and page are written, so a process killed before then
    leaves it ``writing``; :func:`run_cv` on its folder writes everything again from the saved
    folds, without training.

    Use it as a context manager. A normal exit waits for every run handed over and raises the first
    error; an exit by an exception cancels what has not started and waits for the rest.
    """

    def __init__(self, workers: int | None = None) -> None:
        # one helper per core, at most 4: on the 2-core reference machine a 40-trial Sonar search
        # took 46.6 s with 1 helper, 32.6 s with 2, 35.0 s with 3 and 41.0 s with 4 (45.0 s with none)
        self.workers = workers or min(4, usable_cores())
        self._pool: Any = None
        self._futures: list[Any] = []

    def submit(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` in the helper (``fn`` and ``args`` picklable); raises an earlier run's error now."""
        for f in [f for f in self._futures if f.done()]:
            self._futures.remove(f)
            f.result()
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_helper_start,
                initargs=(os.getpid(),),
            )
        self._futures.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Block until every run handed over is finished; raises the first error.

        Raises:
            Interrupted: Ctrl-C or SIGTERM while waiting (the runs not started are then cancelled
                by :meth:`close`).
        """
        while self._futures:
            try:
                self._futures[0].result(timeout=0.25)
            except TimeoutError:
                check_stop()
                continue
            self._futures.pop(0)

    def __enter__(self) -> Finisher:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(cancel=exc_type is not None)

    def close(self, cancel: bool = False) -> None:
        """Wait for every run handed over (or cancel those not started), then end the helpers."""
        try:
            if not cancel:
                self.wait()
        finally:
            for f in self._futures:
                f.cancel()
            self._futures = []
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def history_metrics(history: pd.DataFrame) -> list[str]:
    skip = {"repeat", "fold", "epoch"}
    return [c for c in history.columns if c not in skip and not c.startswith(("val_", "test_"))]


@dataclass(frozen=True)
class PlotContext:
    """What a run's plots need from its :class:`Prepared` (small and picklable, for a :class:`Finisher`).

    Attributes:
        name: The run's name, for titles.
        units: What per-epoch losses are measured in (a transformed target), or "".
        main_metric: The metric of the score plots.
        confidence: The intervals' confidence level.
        task: The task.
        classes: The class labels as text (classification), else None.
    """

    name: str
    units: str
    main_metric: str
    confidence: float
    task: str
    classes: tuple[str, ...] | None

    @classmethod
    def of(cls, prep: Prepared) -> PlotContext:
        """The context of a prepared run."""
        classes = None if prep.classes is None else tuple(str(c) for c in prep.classes)
        return cls(
            prep.spec.name, curve_units(prep), prep.main_metric, prep.spec.evaluation.confidence, prep.task, classes
        )


def confusion_plot(ctx: PlotContext, writer: report.RunWriter, preds: pd.DataFrame, note: str) -> None:
    """``plots/confusion_matrix.png`` from held-out predictions (``true``/``pred`` columns)."""
    from sklearn.metrics import confusion_matrix

    from dlrun.report import plots

    assert ctx.classes is not None
    # compared as text: the CSV read back and the in-memory labels spell every class alike
    labels = list(ctx.classes)
    cm = confusion_matrix(preds["true"].astype(str), preds["pred"].astype(str), labels=labels)
    writer.plot(
        "confusion_matrix",
        lambda ax: plots.confusion_matrix(ax, cm, labels, run_name=ctx.name, note=note),
        size=(6.4, 4.8),
    )


def write_html_report(writer: report.RunWriter) -> None:
    """``report.html`` beside the run's files (one self-contained page)."""
    from dlrun.report import html as html_report

    html_report.write_report([writer.path], writer.path / html_report.REPORT_HTML)


def cv_plots(
    ctx: PlotContext, writer: report.RunWriter, scores: pd.DataFrame, history: pd.DataFrame, summary: dict[str, Any]
) -> None:
    _curve_plots(ctx, writer, history)
    score_plots(ctx, writer, scores, summary)
    write_html_report(writer)


def _curve_plots(ctx: PlotContext, writer: report.RunWriter, history: pd.DataFrame) -> None:
    """One learning-curve figure per metric in ``history`` (every model's per-epoch values)."""
    from dlrun.report import plots

    name, units = ctx.name, ctx.units
    for m in history_metrics(history):
        writer.plot(
            f"learning_curve_{m}", lambda ax, m=m: plots.learning_curve(ax, history, m, run_name=name, units=units)
        )


def draw_history(run_dir: Path, ctx: PlotContext, history: pd.DataFrame) -> None:
    """A cv run's ``history.csv`` and learning curves, in a plot helper (see :func:`~dlrun.runs.cv.run_cv`).

    For Sonar 30×10×300 this is about as long as the score plots and confusion matrix that the
    run draws meanwhile (0.6 s and 0.8 s on the 2-core reference machine).
    """
    writer = report.RunWriter(run_dir)
    writer.write_table(report.HISTORY, history)
    _curve_plots(ctx, writer, history)


def score_plots(ctx: PlotContext, writer: report.RunWriter, scores: pd.DataFrame, summary: dict[str, Any]) -> None:
    """The plots of the fold scores (distribution, Q-Q, running mean) and the pooled confusion matrix."""
    from dlrun.report import plots

    name = ctx.name
    main = ctx.main_metric
    values = scores[main].to_numpy(dtype=float)
    block = summary["metrics"][main]
    headline = headline_block(block)
    base_block = summary["baseline"]["metrics"].get(main) or {}
    base = headline_block(base_block).get("mean")
    writer.plot(
        f"scores_{main}",
        lambda ax: plots.score_distribution(ax, values, headline, main, run_name=name, baseline=base),
        size=(7.4, 3.6),
    )
    writer.plot(f"qq_{main}", lambda ax: plots.qq_plot(ax, values, main, run_name=name))
    if summary["repeats"] > 1:
        per_repeat = scores.groupby("repeat")[main].mean().to_numpy()
        running = stats.running_stats(per_repeat, confidence=ctx.confidence)
        writer.plot(
            f"repeats_{main}", lambda ax: plots.running_mean(ax, running, main, run_name=name, headline=headline)
        )
    _pooled_confusion(ctx, writer, int(summary["n_models"]), int(summary["repeats"]))


def _pooled_confusion(ctx: PlotContext, writer: report.RunWriter, n_models: int, repeats: int) -> None:
    """The confusion matrix of every model's held-out predictions (``predictions.csv``), if classified."""
    preds_path = writer.file(report.PREDICTIONS)
    if ctx.task in ("binary", "multiclass") and ctx.classes is not None and preds_path.exists():
        # read as text and compare with the classes as text: the CSV's spelling of every label
        preds = pd.read_csv(preds_path, usecols=["true", "pred"], dtype=str, keep_default_na=False)
        note = f"Out-of-fold predictions of all {n_models} models pooled" + (
            f"; each row is counted once per repeat ({repeats})." if repeats > 1 else "; each row is predicted once."
        )
        confusion_plot(ctx, writer, preds, note)
