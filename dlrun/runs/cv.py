"""``dlrun cv``: train every fold (skipping folds already saved), score, summarise, write.

Training returns data; :mod:`dlrun.store.io` writes it. Each finished chunk of folds is saved at
once as a part file, so a killed run loses at most the folds in flight and ``--resume``
continues where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlrun.data.preprocessing import Preprocessor
from dlrun.engines.base import Engine, FitJob, FitResult
from dlrun.errors import DlrunError, InputError, Interrupted, RunError, SpecError
from dlrun.evaluation import stats
from dlrun.evaluation.scoring import HIGHER_IS_BETTER, baseline_name
from dlrun.protocol.jobs import Prepared, check_finite, folds_table, make_job, prepare, score_fold
from dlrun.protocol.splits import Fold, concrete_repeats, splits_digest
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs import lifecycle
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
from dlrun.runs.record import (
    RunOutcome,
    StopSignals,
    begin_run,
    check_command,
    check_resumable,
    guard_startup,
    interrupted_message,
    mark_failed,
    public_state,
    record_fingerprint,
    starting_state,
    stopping_relay,
)
from dlrun.runs.summarize import add_divergence_warning, headline, positive_class, summary_markdown
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import io as report

if TYPE_CHECKING:
    from dlrun.execution.executors import Executor

#: A ``dlrun cv`` run of this many model-epochs or more draws its learning curves in a helper
#: process. Below it, starting one costs more than it saves: Sonar 30×10×300 (90,000) spends about
#: 2 s on its plots and tables at the end; a 10-fold 300-epoch run (3,000) about 1 s.
PLOT_HELPER_MIN_EPOCHS = 20_000


# ----------------------------------------------------------------------------- engines
def choose_engine_name(
    prep: Prepared, reporter: Reporter, *, keep_model: bool = False, previous: str | None = None
) -> str:
    """The engine ``runtime.engine`` asks for; ``auto`` takes the first of
    :data:`~dlrun.engines.base.AUTO_ORDER` that supports the spec (nothing is built).

    Args:
        prep: The prepared run.
        reporter: Where the fallback line goes.
        keep_model: The caller needs the Keras model (``dlrun train``): sequential.
        previous: The engine that trained the folds already saved (resume); ``auto`` keeps it,
            because engines draw different (equally valid) random streams and a resumed
            run must end with exactly the results of an uninterrupted one.

    Raises:
        SpecError: The engine asked for by name cannot train this spec.
    """
    from dlrun.engines.base import AUTO_ORDER, engine_names, unsupported_reason

    want: str = prep.spec.runtime.engine
    if want == "auto" and previous in engine_names():
        want = previous
    if keep_model:
        return "sequential"
    if want != "auto":
        reason = unsupported_reason(want, prep.spec, prep.task)
        if reason is not None:
            raise SpecError([("runtime.engine", f"the {want} engine cannot run this spec: {reason}")])
        return want
    why: list[str] = []
    for name in AUTO_ORDER:
        reason = unsupported_reason(name, prep.spec, prep.task)
        if reason is None:
            if why:
                reporter.note(f"engine: {name} ({'; '.join(why)})")
            return name
        why.append(reason)
    raise SpecError([("runtime.engine", f"no engine can run this spec: {'; '.join(why)}")])


def choose_engine(
    prep: Prepared, reporter: Reporter, n_models: int = 0, keep_model: bool = False, previous: str | None = None
) -> Engine:
    """Build the engine :func:`choose_engine_name` picks (``n_models`` is kept for callers; unused)."""
    from dlrun.engines.base import make_engine

    name = choose_engine_name(prep, reporter, keep_model=keep_model, previous=previous)
    options = {"keep_model": True} if keep_model else {}
    return make_engine(name, prep.spec, prep.task, prep.input_shape, prep.n_outputs, **options)


@dataclass
class FitChunk:
    """Train a chunk of folds: the job of a cv run on an :class:`~dlrun.execution.executors.Executor`.

    Called with a list of :class:`FitJob`, it yields each fold's :class:`FitResult` (without the
    Keras model: models do not travel, weights do). On Ray it is pickled without the engine and
    the progress callback, and builds the engine in the worker on first use.

    Attributes:
        spec: The validated spec.
        task: The resolved task.
        input_shape: One preprocessed sample's shape.
        n_outputs: The model's output width.
        engine_name: The engine the driver chose.
        on_epoch: Progress callback (this process only).
        engine: The engine, when the driver built it already (this process only).
    """

    spec: Spec
    task: str
    input_shape: tuple[int, ...]
    n_outputs: int
    engine_name: str
    on_epoch: Any = None
    engine: Engine | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "on_epoch": None, "engine": None}

    def __call__(self, jobs: list[FitJob]) -> Iterator[FitResult]:
        if self.engine is None:  # in a worker: set it up as the driver set up itself
            from dlrun.engines.base import make_engine
            from dlrun.engines.runtime import quiet_tensorflow, setup

            quiet_tensorflow()
            setup(self.spec.runtime)
            self.engine = make_engine(self.engine_name, self.spec, self.task, self.input_shape, self.n_outputs)
        for result in self.engine.fit(jobs, self.on_epoch):
            result.model = None
            yield result


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
) -> RunOutcome:
    """Cross-validate: train every fold (skipping folds already saved), then summarise.

    The folds train on ``executor``: in this process (the engine streams each fold back as it
    finishes), or as Ray tasks (a chunk of folds per task). Either way this process preprocesses
    the folds, scores each fold as it comes back, saves it as a part, and writes every file.

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
    from dlrun.execution.executors import Resources, make_executor

    reporter = reporter or NullReporter()
    check_command(spec, "cv")
    if spec.evaluation.repeats == "auto":
        return run_cv_auto(spec, run_dir, reporter, argv=argv, executor=executor)
    check_resumable(spec, run_dir)  # before any file: another config is refused, never mixed in
    runner = make_executor(executor, spec.runtime)
    slots = runner.slots(Resources.of(spec.runtime))  # before any file: a job no node can run is refused
    writer = report.RunWriter(run_dir)
    with guard_startup(writer, starting_state(spec, writer, "cv", argv), argv, "cv"):
        prep = prep or prepare(spec, reporter)
        record_fingerprint(prep, run_dir)
    helper = None
    if plot_helper and finisher is None and len(prep.folds) * spec.training.epochs >= PLOT_HELPER_MIN_EPOCHS:
        helper = Finisher(workers=1)
        helper.submit(helper_warm)
    try:
        return _run_cv(spec, run_dir, reporter, argv, prep, runner, slots, writer, finisher, helper)
    finally:
        if helper is not None:
            helper.close(cancel=True)


def _run_cv(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter,
    argv: list[str] | None,
    prep: Prepared,
    runner: Executor,
    slots: int,
    writer: report.RunWriter,
    finisher: Finisher | None,
    helper: Finisher | None,
) -> RunOutcome:
    """:func:`run_cv` once its folds are prepared."""
    writer.write_table(report.FOLDS, folds_table(prep.folds))
    # Jobs elsewhere train on their own devices: a GPU asked for is theirs, not this process's.
    driver_spec = spec
    if not runner.in_process and spec.runtime.device == "gpu":
        driver_spec = spec.model_copy(update={"runtime": spec.runtime.model_copy(update={"device": "auto"})})
    previous = (writer.read_state() or {}).get("engine")
    state = begin_run(driver_spec, writer, "cv", len(prep.folds), argv)
    if driver_spec is not spec:
        writer.write_config(resolved_dict(spec))
    state["executor"] = runner.name
    parts = writer.read_parts(on_corrupt=reporter.note)
    pending = [f for f in prep.folds if f.key not in parts]
    engine_name = "none"
    try:
        with StopSignals():
            if pending:
                engine_name = choose_engine_name(prep, reporter, previous=previous if parts else None)
                fit = FitChunk(spec, prep.task, prep.input_shape, prep.n_outputs, engine_name)
                if runner.in_process:
                    fit.engine = choose_engine(prep, NullReporter(), previous=engine_name)
                    fit.on_epoch = stopping_relay(reporter, writer)
                state["engine"] = engine_name
                reporter.start(spec.name, len(prep.folds), spec.training.epochs, done_models=len(parts))
                state["finished_models"] = len(parts)
                writer.write_state(public_state(state))
                last_state = time.monotonic()
                failed: list[tuple[Fold, str]] = []
                batched = fit.engine is not None and bool(getattr(fit.engine, "batched", True))
                plan = chunk_plan(fit.engine, prep, list(prep.folds)) if runner.in_process and batched else None
                commit = ChunkCommitter(writer, plan, pending)
                for fold, part, error in _train_folds(prep, runner, slots, fit, pending, reporter, plan=plan):
                    if part is None:
                        failed.append((fold, error))
                        event = {"event": "fold_failed", "repeat": fold.repeat, "fold": fold.fold, "error": error}
                        writer.append_progress(event)
                        continue
                    commit.add(fold, part)  # a chunk's folds are saved together, in one file
                    parts[fold.key] = part
                    state["finished_models"] = len(parts)
                    # state.json is a progress display; the parts are the record, so rewrite it at most 2/s
                    if time.monotonic() - last_state > 0.5 or len(parts) == len(prep.folds):
                        writer.write_state(state)
                        last_state = time.monotonic()
                    writer.append_progress(
                        {"event": "fold", "repeat": fold.repeat, "fold": fold.fold, "scores": _main_scores(prep, part)}
                    )
                    reporter.model_done(fold.key, _main_scores(prep, part), float(part["scores"]["seconds"]))
                    lifecycle.check_stop()
                reporter.finish()
                if failed:
                    names = ", ".join(f"repeat {f.repeat} fold {f.fold}" for f, _ in failed)
                    raise RunError(
                        f"{len(failed)} of {len(prep.folds)} fold(s) failed{runner.where} ({names}): {failed[0][1]}; "
                        f"the other folds are saved: resume with: dlrun cv --resume --out {run_dir}"
                    )
            if engine_name == "none":
                engine_name = str(state.get("engine") or next(iter(parts.values()))["scores"].get("engine", "none"))
            state["phase"] = "writing"
            drawing: list[tuple[Any, ...]] = []
            summary = assemble_cv(
                prep,
                writer,
                parts,
                engine_name,
                defer=(lambda *a: drawing.append(a)) if finisher else None,
                helper=helper,
            )
            lifecycle.check_stop()
    except (KeyboardInterrupt, Interrupted) as exc:
        reporter.finish()
        state["finished_models"] = len(parts)
        mark_failed(writer, state, exc)
        raise Interrupted(interrupted_message(state, run_dir, argv, "cv")) from None
    except BaseException as exc:
        reporter.finish()
        mark_failed(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=len(parts))
    if finisher is not None and drawing:
        finisher.submit(finish_cv_folder, run_dir, *drawing[0], state)
    else:
        writer.write_state(state)
        writer.append_progress({"event": "finished"})
    return RunOutcome(run_dir, summary, engine_name)


def chunk_plan(engine: Any, prep: Prepared, folds: list[Fold]) -> list[list[Fold]]:
    """How ``engine`` groups ALL the run's folds into chunks trained together, in fold order.

    The plan depends on the whole run, not on what is left, so a resumed run trains each
    remaining chunk as an uninterrupted run did (the stacked engine's results agree only to
    about 1e-8 across different groupings). An engine without ``models_per_chunk``: one chunk.
    """
    sizer = getattr(engine, "models_per_chunk", None)
    if sizer is None:
        return [list(folds)]
    from dlrun.engines.base import FitJob

    # the sizing reads only the row counts of each fold (train, validation, test)
    stubs = [
        FitJob(
            repeat=f.repeat,
            fold=f.fold,
            seed=f.seed,
            x_train=np.empty((len(f.train), 0), np.float32),
            y_train=np.empty((len(f.train),), np.float32),
            x_val=np.empty((len(f.val), 0), np.float32) if len(f.val) else None,
            x_test=np.empty((len(f.test), 0), np.float32) if len(f.test) else None,
        )
        for f in folds
    ]
    try:
        per = max(1, int(sizer(stubs)))
    except Exception:  # an engine that needs real arrays to size itself: one call, chunked as it likes
        return [list(folds)]
    n_chunks = -(-len(folds) // per)
    size = -(-len(folds) // n_chunks)  # even chunks, as the stacked engine makes them
    return [folds[i : i + size] for i in range(0, len(folds), size)]


class ChunkCommitter:
    """Saves the parts of one chunk of folds together, in one sealed file, once all are scored.

    A run killed between two folds of a chunk then keeps none of them, and the resumed run
    trains that chunk whole, exactly as the uninterrupted run did.

    Args:
        writer: The run's writer.
        plan: Chunks (:func:`chunk_plan`), or None: each fold is saved on its own.
        pending: The folds this process trains.
    """

    def __init__(self, writer: report.RunWriter, plan: list[list[Fold]] | None, pending: list[Fold]) -> None:
        self.writer = writer
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
            self.writer.write_parts([part])
            return
        got = self.staged.setdefault(i, {})
        got[fold.key] = part
        if len(got) == len(self.members[i]):
            self.writer.write_parts([got[k] for k in self.members[i]])
            del self.staged[i]


def extend_repeats(spec: Spec, run_dir: Path, reporter: Reporter | None = None) -> Prepared:
    """Let a cv folder grow to ``spec``'s (larger) number of repeats, keeping its saved folds.

    The first R repeats' splits and seeds do not depend on how many repeats follow, so a run of
    R repeats is the start of a run of R + c. The folder's fingerprint is re-recorded for the
    longer run after checking that nothing else changed and that its saved folds are exactly
    the first folds of the longer run.

    Returns:
        The prepared longer run (pass it to :func:`run_cv`).

    Raises:
        InputError: Something other than the number of repeats changed, or the saved folds are not a prefix.
    """
    from dlrun.runs import lifecycle

    prep = prepare(spec, reporter)
    fp_path = Path(run_dir) / report.FINGERPRINT
    if not fp_path.exists():
        return prep
    old = report.read_json(fp_path)
    new = lifecycle.make_fingerprint(
        resolved_dict(spec), lifecycle.data_checksum(prep.data.X, prep.data.y), splits_digest(prep.folds)
    )
    grown = ("evaluation.repeats", "evaluation.mode", "the splits")
    changes = [c for c in lifecycle.fingerprint_diff(old, new) if not c.startswith(grown)]
    if changes:
        raise InputError(
            f"{run_dir} can only grow by more repeats, but its spec differs in: {'; '.join(changes[:6])}; "
            "start a new run with another --out"
        )
    saved = Path(run_dir) / report.FOLDS
    n_old = len(pd.read_csv(saved, usecols=["repeat"])) if saved.exists() else 0
    if old.get("splits") and n_old and splits_digest(prep.folds[:n_old]) != old["splits"]:
        raise InputError(
            f"{run_dir}: its saved folds are not the first folds of a run with {concrete_repeats(spec.evaluation)} "
            "repeats, so repeats cannot be added to it; start a new run with another --out"
        )
    lifecycle.write_fingerprint(run_dir, new)
    return prep


def with_repeats(spec: Spec, repeats: int) -> Spec:
    """``spec`` with ``repeats`` concrete repeats (k-fold modes become ``repeated_kfold``)."""
    ev = spec.evaluation
    mode = "repeated_split" if ev.mode == "repeated_split" else "repeated_kfold"
    return spec.model_copy(update={"evaluation": ev.model_copy(update={"mode": mode, "repeats": int(repeats)})})


def halfwidth_floor(summary: dict[str, Any]) -> float | None:
    """The narrowest headline half-width more repeats could reach, or None when there is no floor.

    Repeats re-test the same rows, so averaging them removes only the split-to-split part of the
    corrected variance (:func:`dlrun.evaluation.stats.nadeau_bengio`): its se cannot go below
    ``se_floor``, the se of infinitely many repeats (for summaries written before ``se_floor``
    existed, the Nadeau–Bengio ``√(n_test/n_train)·s``), a half-width of about ``z·se_floor``
    mapped through the metric's scale at the current mean.
    """
    block = summary["metrics"][summary["main_metric"]]
    d = block.get("corrected")
    if block["headline"] != "corrected" or not d or d.get("std") is None:
        return None
    if d.get("se_floor") is not None:
        se_inf = float(d["se_floor"])
    else:
        se_inf = (float(d["n_test"]) / float(d["n_train"])) ** 0.5 * float(d["std"])
    lo, hi, _ = stats.bounded_interval(
        float(d["mean"]), se_inf, 10**6, float(d["confidence"]), stats.metric_scale(summary["main_metric"])
    )
    return max(float(d["mean"]) - lo, hi - float(d["mean"]))


def run_cv_auto(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    executor: Any = None,
) -> RunOutcome:
    """``evaluation.repeats: auto``: add repeats in chunks until the headline is narrow enough.

    Each chunk of :data:`dlrun.protocol.splits.AUTO_CHUNK` repeats is one :func:`run_cv` call on the same
    folder: the folds already saved are kept (the splits of the first R repeats do not depend
    on how many follow), only the new chunk is trained, at once by the engine. It stops when the
    headline interval's half-width is at most ``evaluation.target_halfwidth``, when
    ``evaluation.max_repeats`` is reached, or as soon as the target is below the half-width no
    number of repeats can reach (:func:`halfwidth_floor`). The summary's ``adaptive`` block and
    the headline text say how many repeats ran and why it stopped.
    """
    from dlrun.protocol.splits import AUTO_CHUNK

    ev = spec.evaluation
    target = float(ev.target_halfwidth or 0.0)
    most = int(ev.max_repeats)
    r = min(AUTO_CHUNK, most)
    trail: list[dict[str, Any]] = []
    while True:
        concrete = with_repeats(spec, r)
        prep = extend_repeats(concrete, run_dir, reporter) if trail else None
        outcome = run_cv(concrete, run_dir, reporter, argv=argv, executor=executor, prep=prep)
        summary = outcome.summary
        half = summary["headline"].get("halfwidth")
        trail.append({"repeats": r, "halfwidth": half})
        floor = halfwidth_floor(summary)
        d = stats.decimals_for(half)
        if half is not None and half <= target:
            why = f"the headline half-width {half:.{d}f} is at most the target {target:g}"
            reached = "target"
            break
        if r >= most:
            shown = stats.format_number(half, d)
            why = f"evaluation.max_repeats = {most} was reached with half-width {shown} > target {target:g}"
            reached = "max_repeats"
            break
        if floor is not None and floor > target:
            why = (
                f"the target {target:g} cannot be reached: repeats re-test the same rows, so they remove only the "
                f"split-to-split part of the corrected variance and the half-width stays above about {floor:.{d}f} "
                f"(now {half:.{d}f}); more data would narrow it, more repeats cannot"
            )
            reached = "unreachable"
            break
        r = min(most, r + AUTO_CHUNK)
    adaptive = {
        "repeats_run": r,
        "target_halfwidth": target,
        "max_repeats": most,
        "chunk": AUTO_CHUNK,
        "halfwidth": half,
        "floor": floor,
        "stopped": reached,
        "trail": trail,
        "text": f"{r} repeat{'s' if r != 1 else ''} run (evaluation.repeats: auto, chunks of {AUTO_CHUNK}); "
        f"stopped because {why}",
    }
    summary["adaptive"] = adaptive
    summary["headline"]["text"] += f"; {adaptive['text']}"
    summary["headline"]["adaptive"] = adaptive["text"]
    writer = report.RunWriter(run_dir)
    writer.write_summary(summary, summary_markdown(summary))
    return RunOutcome(outcome.path, summary, outcome.engine, [*outcome.notes, adaptive["text"]])


def _main_scores(prep: Prepared, part: dict[str, Any]) -> dict[str, float]:
    return {m: part["scores"].get(m, float("nan")) for m in prep.metrics}


def _train_folds(
    prep: Prepared,
    runner: Executor,
    slots: int,
    fit: FitChunk,
    folds: list[Fold],
    reporter: Reporter,
    plan: list[list[Fold]] | None = None,
) -> Iterator[tuple[Fold, dict[str, Any] | None, str]]:
    """Train ``folds`` on ``runner`` in chunks; yield ``(fold, part, "")`` as each is scored, or
    ``(fold, None, reason)`` for each fold of a job that failed.

    In this process a batched engine gets every fold at once (it chunks by memory and streams
    results) and a one-at-a-time engine one fold per job (each fold is preprocessed just before
    it trains); elsewhere the folds are spread over the slots, at most two jobs per slot out at
    once, so preprocessed arrays do not pile up.
    """
    from dlrun.execution.executors import chunk_size

    batched = bool(getattr(fit.engine, "batched", True)) if fit.engine is not None else True
    if runner.in_process:
        size = len(folds) if batched else 1
    else:
        size = chunk_size(len(folds), slots, prep.spec.runtime.max_models_per_chunk)
    chunks = [folds[i : i + size] for i in range(0, len(folds), size)]
    if plan is not None:  # the whole run's chunks (see chunk_plan), so a resume groups folds alike
        pending = {f.key for f in folds}
        chunks = [c for c in ([f for f in chunk if f.key in pending] for chunk in plan) if c]
    if not runner.in_process:
        reporter.note(f"{runner.name}: {len(folds)} fold(s) in {len(chunks)} task(s) of up to {size}")
    pres: dict[tuple[int, int], Preprocessor] = {}
    by_key = {f.key: f for f in folds}

    def jobs() -> Iterator[list[FitJob]]:
        for chunk in chunks:
            batch = []
            for fold in chunk:
                job, pre = make_job(prep, fold)
                batch.append(job)
                pres[fold.key] = pre
            yield batch

    with contextlib.closing(runner.map(fit, jobs(), window=2 * slots)) as outcomes:
        for out in outcomes:
            if out.ok:
                result = out.value
                assert result is not None
                check_finite(result)
                key = (result.repeat, result.fold)
                yield by_key[key], score_fold(prep, by_key[key], pres.pop(key), result), ""
                continue
            if isinstance(out.error, DlrunError):  # deterministic (a NaN loss): it ends the run as it is
                raise out.error
            lost = [by_key[j.key] for j in out.job if j.key in pres]
            reporter.note(f"{runner.name}: folds {', '.join(str(f.key) for f in lost)} failed: {out.reason}")
            for fold in lost:
                pres.pop(fold.key, None)
                yield fold, None, out.reason


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
    repeats = concrete_repeats(ev) if ev.mode in ("repeated_kfold", "repeated_split") else 1
    ctx = PlotContext.of(prep)
    if preds:
        writer.write_table(report.PREDICTIONS, pd.concat(preds, ignore_index=True))
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
    add_divergence_warning(prep, summary, history)
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
