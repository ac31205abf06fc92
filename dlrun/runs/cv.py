"""``dlrun cv``: train every fold (skipping folds already saved), score, summarise, write.

Training returns data (:mod:`dlrun.protocol.fitting`); the run folder
(:class:`~dlrun.store.run_folder.RunFolder`) records it. Each finished chunk of folds is saved at
once as a part file, so a killed run loses at most the folds in flight and ``--resume`` continues
where it stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.engines import choose_engine
from dlrun.engines.runtime import setup, versions
from dlrun.errors import RunError
from dlrun.evaluation import stats
from dlrun.evaluation.scoring import HIGHER_IS_BETTER, baseline_name
from dlrun.execution.executors import Executor, Resources, make_executor
from dlrun.protocol.fitting import FoldFitter, chunk_plan
from dlrun.protocol.jobs import Prepared, folds_table, prepare
from dlrun.protocol.splits import Fold, concrete_repeats, splits_digest
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.adaptive import extend_repeats, grow_until_narrow, halfwidth_floor, with_repeats
from dlrun.runs.finish import (
    Finisher,
    PlotContext,
    cv_plots,
    draw_history,
    finish_cv_folder,
    helper_warm,
    score_plots,
    write_html_report,
)
from dlrun.runs.result import RunResult
from dlrun.runs.summarize import add_divergence_warning, headline, positive_class, summary_markdown
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import io as report
from dlrun.store.fingerprint import data_checksum
from dlrun.store.run_folder import Run, RunFolder, check_command
from dlrun.store.signals import check_stop

__all__ = [
    "PLOT_HELPER_MIN_EPOCHS",
    "ChunkCommitter",
    "assemble_cv",
    "chunk_plan",
    "extend_repeats",
    "halfwidth_floor",
    "run_cv",
    "run_cv_auto",
    "with_repeats",
]

#: A ``dlrun cv`` run of this many model-epochs or more draws its learning curves in a helper
#: process. Below it, starting one costs more than it saves: Sonar 30×10×300 (90,000) spends about
#: 2 s on its plots and tables at the end; a 10-fold 300-epoch run (3,000) about 1 s.
PLOT_HELPER_MIN_EPOCHS = 20_000


def stopping_relay(reporter: Reporter, folder: RunFolder | None = None) -> Any:
    """The engines' per-epoch callback: progress, then a safe point for stop signals.

    With ``folder``, an ``epoch`` event goes to ``progress.jsonl`` at most once a second, so
    ``dlrun status`` can show the epoch and an ETA while a chunk of models trains.
    """
    last = [0.0]

    def on_epoch(event: Any) -> None:
        reporter.epoch(event)
        now = time.monotonic()
        if folder is not None and (now - last[0] >= 1.0 or event.epoch == event.epochs):
            last[0] = now
            folder.append_progress(
                {"event": "epoch", "epoch": event.epoch, "epochs": event.epochs, "models": len(event.keys)}
            )
        check_stop()

    return on_epoch


# ----------------------------------------------------------------------------- cv
def run_cv(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    prep: Prepared | None = None,
    executor: str | Executor | None = None,
    finisher: Finisher | None = None,
    plot_helper: bool = False,
) -> RunResult:
    """Cross-validate: train every fold (skipping folds already saved), then summarise.

    The folds train on ``executor``: in this process (the engine streams each fold back as it
    finishes), or as Ray tasks (a chunk of folds per task). Either way this process preprocesses
    the folds, scores each fold as it comes back, saves it as a part, and writes every file. The
    caller holds the folder's lock.

    Args:
        spec: A spec whose ``evaluation.mode`` is kfold, repeated_kfold or repeated_split.
        run_dir: The run directory; folds already saved there are not trained again.
        reporter: Progress sink.
        argv: The command line, for ``env.json``.
        prep: A :func:`prepare` result to reuse.
        executor: ``local``, ``ray`` or an :class:`~dlrun.execution.executors.Executor` (default: ``runtime.executor``).
        finisher: Hand the plots, the report page and the ``finished`` state to this
            :class:`Finisher` instead of writing them before returning (the tables and the summary
            are written here either way).
        plot_helper: For a run of :data:`PLOT_HELPER_MIN_EPOCHS` model-epochs or more (and no
            ``finisher``), start one helper process before training, while this process imports
            Keras and compiles on one core, to write ``history.csv`` and draw the learning curves
            at the end while this process writes the rest.

    Raises:
        InputError: Not a cv mode; Ray is missing or no node fits a job.
        RunError: Some folds failed (a worker died past ``runtime.max_retries``, say); the
            others are saved. A dlrun error raised while training (a NaN loss) ends the run as it is.
        Interrupted: Ctrl-C or SIGTERM; jobs still out are cancelled.
    """
    reporter = reporter or NullReporter()
    check_command(spec, "cv")
    if spec.evaluation.repeats == "auto":
        return run_cv_auto(spec, run_dir, reporter, argv=argv, executor=executor)
    folder = RunFolder(run_dir)
    folder.check_spec(spec)  # before any file: another config is refused, never mixed in
    runner = make_executor(executor, spec.runtime)
    slots = runner.slots(Resources.of(spec.runtime))  # before any file: a job no node can run is refused
    with folder.running(spec, "cv", argv, on_end=reporter.finish) as run:
        prep = prep or prepare(spec, reporter)
        folder.record_fingerprint(spec, data_checksum(prep.data.X, prep.data.y), splits_digest(prep.folds))
        helper = None
        if plot_helper and finisher is None and len(prep.folds) * spec.training.epochs >= PLOT_HELPER_MIN_EPOCHS:
            helper = Finisher(workers=1)
            helper.submit(helper_warm)
        try:
            return _run_cv(run, prep, runner, slots, reporter, finisher, helper)
        finally:
            if helper is not None:
                helper.close(cancel=True)


def run_cv_auto(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    executor: Any = None,
) -> RunResult:
    """``evaluation.repeats: auto``: add repeats until the headline is narrow enough
    (:func:`dlrun.runs.adaptive.grow_until_narrow` with this module's :func:`run_cv`)."""
    return grow_until_narrow(
        spec,
        run_dir,
        lambda *a, **k: run_cv(*a, **k),  # looked up when called, so a test may replace it
        reporter,
        argv=argv,
        executor=executor,
        extend=lambda *a, **k: extend_repeats(*a, **k),
    )


def _run_cv(
    run: Run,
    prep: Prepared,
    runner: Executor,
    slots: int,
    reporter: Reporter,
    finisher: Finisher | None,
    helper: Finisher | None,
) -> RunResult:
    """:func:`run_cv` once its folds are prepared."""
    spec, folder = prep.spec, run.folder
    folder.writer.write_table(report.FOLDS, folds_table(prep.folds))
    runtime = runner.driver_runtime(spec.runtime)
    driver_spec = spec if runtime is spec.runtime else spec.model_copy(update={"runtime": runtime})
    previous = run.previous_engine
    run.begin(len(prep.folds), setup(driver_spec.runtime), versions(), spec=driver_spec)
    if driver_spec is not spec:
        folder.writer.write_config(resolved_dict(spec))
    state = run.state
    state["executor"] = runner.name
    parts = folder.read_parts(on_corrupt=reporter.note)
    state["finished_models"] = len(parts)
    pending = [f for f in prep.folds if f.key not in parts]
    engine_name = "none"
    if pending:
        choice = choose_engine(spec, prep.task, previous=previous if parts else None)
        if choice.note:
            reporter.note(choice.note)
        engine_name = choice.name
        fitter = FoldFitter(prep, runner, slots, engine_name, stopping_relay(reporter, folder))
        state["engine"] = engine_name
        reporter.start(spec.name, len(prep.folds), spec.training.epochs, done_models=len(parts))
        run.save()
        last_state = time.monotonic()
        failed: list[tuple[Fold, str]] = []
        plan = fitter.plan(list(prep.folds))
        commit = ChunkCommitter(folder, plan, pending)
        for scored in fitter.fit(fitter.chunks(pending, plan), reporter.note):
            fold, part = scored.fold, scored.part
            if part is None:
                failed.append((fold, scored.error))
                event = {"event": "fold_failed", "repeat": fold.repeat, "fold": fold.fold, "error": scored.error}
                folder.append_progress(event)
                continue
            commit.add(fold, part)  # a chunk's folds are saved together, in one file
            parts[fold.key] = part
            state["finished_models"] = len(parts)
            # state.json is a progress display; the parts are the record, so rewrite it at most 2/s
            if time.monotonic() - last_state > 0.5 or len(parts) == len(prep.folds):
                run.save()
                last_state = time.monotonic()
            folder.append_progress(
                {"event": "fold", "repeat": fold.repeat, "fold": fold.fold, "scores": _main_scores(prep, part)}
            )
            reporter.model_done(fold.key, _main_scores(prep, part), float(part["scores"]["seconds"]))
            check_stop()
        reporter.finish()
        if failed:
            names = ", ".join(f"repeat {f.repeat} fold {f.fold}" for f, _ in failed)
            raise RunError(
                f"{len(failed)} of {len(prep.folds)} fold(s) failed{runner.where} ({names}): {failed[0][1]}; "
                f"the other folds are saved: resume with: dlrun cv --resume --out {folder.path}"
            )
    if engine_name == "none":
        engine_name = str(state.get("engine") or next(iter(parts.values()))["scores"].get("engine", "none"))
    state["phase"] = "writing"
    drawing: list[tuple[Any, ...]] = []
    summary = assemble_cv(
        prep,
        folder.writer,
        parts,
        engine_name,
        defer=(lambda *a: drawing.append(a)) if finisher else None,
        helper=helper,
    )
    check_stop()
    deferred = finisher is not None and bool(drawing)
    finished = run.finish(len(parts), write=not deferred)
    if finisher is not None and deferred:
        finisher.submit(finish_cv_folder, folder.path, *drawing[0], finished)
    return RunResult(folder.path, summary, engine_name)


def _main_scores(prep: Prepared, part: dict[str, Any]) -> dict[str, float]:
    return {m: part["scores"].get(m, float("nan")) for m in prep.metrics}


class ChunkCommitter:
    """Saves the parts of one chunk of folds together, in one sealed file, once all are scored.

    A run killed between two folds of a chunk then keeps none of them, and the resumed run
    trains that chunk whole, exactly as the uninterrupted run did.

    Args:
        folder: The run folder.
        plan: Chunks (:func:`chunk_plan`), or None: each fold is saved on its own.
        pending: The folds this process trains.
    """

    def __init__(self, folder: RunFolder, plan: list[list[Fold]] | None, pending: list[Fold]) -> None:
        self.folder = folder
        wanted = {f.key for f in pending}
        self.members: list[list[tuple[int, int]]] = []
        self.chunk_of: dict[tuple[int, int], int] = {}
        for chunk in plan or []:
            keys = [f.key for f in chunk if f.key in wanted]
            if keys:
                for k in keys:
                    self.chunk_of[k] = len(self.members)
                self.members.append(keys)
        self.staged: dict[int, dict[tuple[int, int], dict[str, Any]]] = {}

    def add(self, fold: Fold, part: dict[str, Any]) -> None:
        """Stage one scored fold; write its chunk when the chunk is complete."""
        i = self.chunk_of.get(fold.key)
        if i is None:
            self.folder.write_parts([part])
            return
        got = self.staged.setdefault(i, {})
        got[fold.key] = part
        if len(got) == len(self.members[i]):
            self.folder.write_parts([got[k] for k in self.members[i]])
            del self.staged[i]


def assemble_cv(
    prep: Prepared,
    writer: report.RunWriter,
    parts: dict[tuple[int, int], dict[str, Any]],
    engine: str,
    *,
    defer: Any = None,
    helper: Finisher | None = None,
) -> dict[str, Any]:
    """Write scores, history, predictions, summary and plots from every fold's part.

    Args:
        prep: The prepared run.
        writer: The run's writer.
        parts: Every fold's saved part, by fold key.
        engine: The engine's name, for the summary.
        defer: Called with ``(PlotContext, scores, history, summary)`` instead of drawing the
            plots here (see :class:`Finisher`).
        helper: A :class:`Finisher` that writes ``history.csv`` and draws the learning curves
            while this process writes the rest; returns once both are done.
    """
    spec, ev = prep.spec, prep.spec.evaluation
    ordered = [parts[f.key] for f in prep.folds]
    scores = pd.DataFrame([p["scores"] for p in ordered])
    history = pd.concat([p["history"] for p in ordered], ignore_index=True)
    preds = [p["predictions"] for p in ordered if p["predictions"] is not None]
    predictions = pd.concat(preds, ignore_index=True) if preds else None
    repeats = concrete_repeats(ev) if ev.mode in ("repeated_kfold", "repeated_split") else 1
    ctx = PlotContext.of(prep)
    if predictions is not None:
        writer.write_table(report.PREDICTIONS, predictions)
    if helper is not None and defer is None:
        helper.submit(draw_history, writer.path, ctx, history)
    else:
        helper = None
        writer.write_table(report.HISTORY, history)
    writer.write_table(report.SCORES, scores)
    n_train = float(np.mean(scores["n_train"] + scores["n_val"]))
    n_test = float(np.mean(scores["n_test"]))
    summary: dict[str, Any] = {
        "name": spec.name,
        "command": "cv",
        "mode": ev.mode,
        "task": prep.task,
        "engine": engine,
        "confidence": ev.confidence,
        "folds": ev.folds if ev.mode != "repeated_split" else 1,
        "repeats": repeats,
        "n_models": len(scores),
        "n_rows": len(prep.data.y),
        "n_train": n_train,
        "n_test": n_test,
        "splits_digest": splits_digest(prep.folds),
        "main_metric": prep.main_metric,
        "positive_class": positive_class(prep),
        "metrics": {},
        "train_metrics": {},
        "baseline": {"model": baseline_name(prep.task), "metrics": {}},
        "epochs": {
            "mean": float(scores["epochs"].mean()),
            "min": int(scores["epochs"].min()),
            "max": int(scores["epochs"].max()),
        },
        "seconds_per_model": float(scores["seconds"].mean()),
    }
    for m in prep.metrics:
        summary["metrics"][m] = stats.summarize_metric(
            scores, m, repeats=repeats, n_train=n_train, n_test=n_test, confidence=ev.confidence, mode=ev.mode
        )
        summary["metrics"][m]["higher_is_better"] = HIGHER_IS_BETTER[m]
        summary["baseline"]["metrics"][m] = stats.summarize_metric(
            scores[["repeat", "fold"]].assign(**{m: scores[f"baseline_{m}"]}),
            m,
            repeats=repeats,
            n_train=n_train,
            n_test=n_test,
            confidence=ev.confidence,
            mode=ev.mode,
        )
        summary["train_metrics"][m] = stats.describe(scores[f"train_{m}"].to_numpy(), ev.confidence)
    summary["headline"] = headline(summary["metrics"][prep.main_metric], prep.main_metric)
    add_divergence_warning(prep, summary, history, scores, predictions)
    writer.write_summary(summary, summary_markdown(summary))
    if defer is not None:
        defer(ctx, scores, history, summary)
    elif helper is not None:
        score_plots(ctx, writer, scores, summary)
        helper.wait()
        write_html_report(writer)
    else:
        cv_plots(ctx, writer, scores, history, summary)
    return summary
