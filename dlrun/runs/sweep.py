"""Sweeps: every combination of a grid of overrides, each run with the spec's own mode.

Expansion and validation happen before anything trains; each point runs in a
sub-folder named by its overrides; ``sweep.csv`` and plots summarise them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.data.sources import load_dataset
from dlrun.engines import choose_engine, share_groups
from dlrun.errors import DlrunError, InputError, Interrupted, RunError, SpecError
from dlrun.evaluation.learning import learning_mark
from dlrun.evaluation.summary import headline_block
from dlrun.execution.executors import Executor, make_executor
from dlrun.protocol.jobs import prepare
from dlrun.protocol.splits import concrete_repeats
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.cv import run_cv
from dlrun.runs.finish import Finisher
from dlrun.runs.grid import SweepPoint, expand, folder_value, grid_as_search, parse_grid, short_key
from dlrun.runs.multirun import JobNotes, SpecDone, SpecJob, data_key, run_spec_jobs, runs_here
from dlrun.runs.packing import Programs, TrialWork, finish_failed, train_trials
from dlrun.spec.schema import Spec
from dlrun.store import io as report
from dlrun.store.layout import HISTORY, SUMMARY_JSON, SWEEP_CSV, SWEEP_STATE
from dlrun.store.lock import holding_lock
from dlrun.store.runs_folder import RunsFolder, records_failure
from dlrun.store.signals import stop_requested

__all__ = ["SWEEP_CSV", "SweepPoint", "expand", "grid_as_search", "parse_grid", "point_status", "run_sweep"]


def point_status(path: Path) -> str:
    """``finished``, ``running``, ``failed``, ``interrupted`` or ``pending`` from the point's state."""
    return RunsFolder.run_status(path) or "pending"  # a truncated state: continued like an unfinished run


@holding_lock("sweep_dir")
@records_failure("sweep_dir", "sweep", SWEEP_STATE)
def run_sweep(
    base: Spec,
    points: list[SweepPoint],
    sweep_dir: Path,
    executor: str | Executor | None = None,
    *,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
    reporter: Reporter | None = None,
    argv: list[str] | None = None,
) -> pd.DataFrame:
    """Run every point not yet finished on ``executor``, then write ``sweep.csv`` and the plots.

    Finished points are skipped; a point started before continues in its folder.

    Args:
        base: The base spec.
        points: From :func:`expand`.
        sweep_dir: The sweep folder; each point runs in ``sweep_dir/<point.folder>``.
        executor: ``local``, ``ray`` or an :class:`~dlrun.execution.executors.Executor` (default: the base
            spec's ``runtime.executor``).
        fail_fast: Stop at the first failing point.
        note: Where one-line remarks go.
        reporter: Progress of points that train in this process.
        argv: The command line, for each point's ``env.json``.

    Returns:
        The sweep table in grid order (also written as ``sweep.csv``).

    Raises:
        Interrupted: Ctrl-C or SIGTERM (points still out are cancelled and marked).
    """
    runner = make_executor(executor, base.runtime)
    reporter = reporter or NullReporter()
    writer = report.RunWriter(sweep_dir)
    listing = [{"folder": p.folder, "overrides": p.overrides} for p in points]
    folder = RunsFolder(sweep_dir, "sweep")
    folder.check_spec(base, note)  # before anything trains: a sweep resumed with another spec is refused
    folder.clear_temporaries()
    folder.read_status(SWEEP_STATE, note)  # a damaged one is named and moved aside: its points are the record
    folder.write_status(SWEEP_STATE, {"name": base.name, "points": listing, "status": "running"})
    rows: dict[int, dict[str, Any]] = {}
    todo: list[SpecJob] = []
    for i, point in enumerate(points):
        path = sweep_dir / point.folder
        if point_status(path) == "finished":
            note(f"[{i + 1}/{len(points)}] {point.folder}: finished earlier, skipped")
            rows[i] = {**point.overrides, "folder": point.folder, **_row_from_dir(path)}
        else:
            todo.append(SpecJob(i, point.spec, path, point.folder))
    packing: dict[str, Any] = {}
    interrupted = False
    if todo and runs_here(runner):  # points sharing a program train together, in this process
        try:
            todo = _train_together(todo, points, rows, packing, note, reporter, argv, fail_fast)
        except Interrupted:
            interrupted, todo = True, []

    def jobs() -> Iterator[SpecJob]:
        yield from todo

    notes = JobNotes(
        note,
        f"submitting {len(todo)} point(s)",
        lambda job: f"[{job.index + 1}/{len(points)}] {job.label}",
        lambda job: f"[{job.index + 1}/{len(points)}] {points[job.index].folder}: finished",
    )

    def on_done(job: SpecJob, done: SpecDone) -> None:
        point = points[job.index]
        row: dict[str, Any] = {**point.overrides, "folder": point.folder}
        if done.status == "finished":
            rows[job.index] = {**row, **_row_from_dir(job.path), "duration_s": round(done.seconds, 2)}
        else:
            rows[job.index] = {**row, "status": done.status, "error": done.error}
            note(f"{point.folder}: {done.status}: {done.error}")
        reporter.step(_n_finished(rows), len(points), "points", _best_text(rows))

    try:
        if todo:
            run_spec_jobs(runner, jobs(), on_done, argv=argv, fail_fast=fail_fast, reporter=reporter, notes=notes)
    except Interrupted:
        interrupted = True
    ordered = [rows[i] for i in sorted(rows)]
    table = pd.DataFrame(ordered)
    writer.write_table(SWEEP_CSV, table)
    _sweep_plots(writer, table, points, sweep_dir)
    finished = len(ordered) == len(points) and all(r.get("status") == "finished" for r in ordered)
    interrupted = interrupted or stop_requested()  # a signal while the table and plots were written
    status = "interrupted" if interrupted else ("finished" if finished else "failed")
    folder.write_status(SWEEP_STATE, {"name": base.name, "points": listing, "status": status, "packing": packing})
    if interrupted:
        raise folder.interrupted(argv)
    return table


# Sweeps training this many points together draw their plots in helper processes (Finisher).
HELPER_MIN_POINTS = 6


def _train_together(
    todo: list[SpecJob],
    points: list[SweepPoint],
    rows: dict[int, dict[str, Any]],
    packing: dict[str, Any],
    note: Callable[[str], None],
    reporter: Reporter | None,
    argv: list[str] | None,
    fail_fast: bool = False,
) -> list[SpecJob]:
    """Train the cross-validated points that differ only in per-model scalars as one stacked program.

    Points whose specs the engines' ``share_groups`` puts together (a learning-rate or
    momentum grid, say; points that change shapes form groups of their own) train with all their
    folds in one engine call, then each point's folder is written as ``dlrun cv`` writes it.
    ``packing`` receives the number of engine calls and models per call.

    Returns:
        The jobs left for the executor: points alone in their group, train modes, ``repeats:
        auto``, or points a previous run started with another engine.
    """
    reporter = reporter or NullReporter()

    def eligible(job: SpecJob) -> bool:
        return job.spec.is_cv and job.spec.evaluation.repeats != "auto"

    def shares(w: TrialWork, path: Path) -> bool:
        # a point a previous run started keeps that run's engine (resume ends with its exact results)
        previous = RunsFolder.run_state(path).get("engine")
        return choose_engine(w.spec, w.prep.task, previous=previous).shares_programs

    candidates = [j for j in todo if eligible(j)]
    programs = Programs()
    together: set[int] = set()
    written: list[tuple[SpecJob, dict[str, Any], int]] = []
    datasets: dict[str, Any] = {}
    stop = False
    # a sweep of many points draws their plots in helper processes (see Finisher)
    helpers = Finisher() if len(candidates) >= HELPER_MIN_POINTS else None
    with helpers if helpers is not None else contextlib.nullcontext(None) as fin:
        for group in share_groups([j.spec for j in candidates]):
            if len(group) < 2:
                continue
            jobs = [candidates[i] for i in group]
            first = jobs[0].spec
            try:
                key = data_key(first)  # groups on the same data load it once, as run_spec_jobs does
                if key not in datasets:
                    datasets[key] = load_dataset(first.data, seed=first.seed)
                data = datasets[key]
                works = [
                    TrialWork(
                        j.index, points[j.index].overrides, j.spec, prepare(j.spec, NullReporter(), data=data), j.path
                    )
                    for j in jobs
                ]
                kept = [i for i, (j, w) in enumerate(zip(jobs, works)) if shares(w, j.path)]
                jobs, works = [jobs[i] for i in kept], [works[i] for i in kept]
                if len(jobs) < 2:
                    continue
                first = jobs[0].spec
            except DlrunError:  # each point then fails on its own, with its own message, as a run alone does
                continue
            labels = ", ".join(points[j.index].folder for j in jobs)
            note(f"[{jobs[0].index + 1}/{len(points)}] {len(jobs)} points trained together: {labels}")
            folds = works[0].prep.folds
            reporter.start(f"{first.name} ({len(jobs)} points)", len(jobs) * len(folds), first.training.epochs)
            try:
                errors = train_trials(works, folds, reporter, programs, argv)
            finally:
                reporter.finish()
            for job, w in zip(jobs, works):
                together.add(job.index)
                row: dict[str, Any] = {**points[job.index].overrides, "folder": points[job.index].folder}
                error = errors.get(w.number)
                if error is None:
                    try:
                        run_cv(job.spec, job.path, NullReporter(), argv=argv, prep=w.prep, finisher=fin)
                    except (InputError, RunError, SpecError) as exc:
                        error = " ".join(str(exc).split())
                if error is not None:
                    finish_failed(w, error)
                    rows[job.index] = {**row, "status": "failed", "error": error}
                    note(f"{points[job.index].folder}: failed: {error}")
                    if fail_fast:
                        stop = True
                        break
                    continue
                written.append((job, row, len(jobs)))
            if stop:
                break
    for job, row, size in written:
        # no wall time of its own: the points of a group trained at once (train_s is each one's share)
        rows[job.index] = {**row, **_row_from_dir(job.path), "duration_s": None, "trained_together": size}
        note(f"[{job.index + 1}/{len(points)}] {points[job.index].folder}: finished")
        reporter.step(_n_finished(rows), len(points), "points", _best_text(rows))
    left = [j for j in todo if j.index not in together]
    alone = sum(_n_models(j.spec) for j in left)
    packing.update(programs.as_dict())
    packing.update(
        points_together=len(together),
        points_alone=len(left),
        models=int(packing["models"]) + alone,
        text=(
            f"{len(together)} of {len(todo)} point(s) trained together: {packing['programs']} engine call(s) "
            f"for {packing['models']} models; {len(left)} point(s) trained alone ({alone} models)"
        ),
    )
    if together and not programs.models:
        packing["text"] = f"{len(together)} point(s) written from their saved folds: nothing left to train"
    if together:
        note(packing["text"])
    return [] if stop else left  # fail_fast: the points not run stay pending


def _n_models(spec: Spec) -> int:
    """Models one point trains: one per fold and repeat (cross-validation) or one."""
    ev = spec.evaluation
    if not spec.is_cv or ev.repeats == "auto":
        return 1
    if ev.mode == "repeated_split":
        return concrete_repeats(ev)
    return int(ev.folds) * (concrete_repeats(ev) if ev.mode == "repeated_kfold" else 1)


def _n_finished(rows: dict[int, dict[str, Any]]) -> int:
    return sum(r.get("status") == "finished" for r in rows.values())


def _best_text(rows: dict[int, dict[str, Any]]) -> str:
    """``lr_0.01, accuracy 0.8610``: the finished point with the best main metric, for progress lines."""
    done = [r for r in rows.values() if r.get("status") == "finished" and r.get("main_metric")]
    if not done:
        return ""
    m = str(done[0]["main_metric"])
    scored = [r for r in done if isinstance(r.get(f"{m}_mean"), (int, float))]
    if not scored:
        return ""
    pick = max if done[0].get(f"{m}_higher_is_better", True) else min
    best = pick(scored, key=lambda r: float(r[f"{m}_mean"]))
    return f"{best['folder']}, {m} {float(best[f'{m}_mean']):.4f}"


def _row_from_dir(path: Path) -> dict[str, Any]:
    """Each metric's mean and interval (or single value) from a point's ``summary.json``."""
    row: dict[str, Any] = {"status": point_status(path)}
    state = RunsFolder.run_state(path)
    summary_path = path / SUMMARY_JSON
    if summary_path.exists():
        summary = report.read_json(summary_path)
        row["main_metric"] = summary.get("main_metric")
        for m, block in summary.get("metrics", {}).items():
            if isinstance(block, dict):
                d = headline_block(block)
                row[f"{m}_mean"] = d.get("mean")
                row[f"{m}_ci_low"] = d.get("ci_low")
                row[f"{m}_ci_high"] = d.get("ci_high")
                row[f"{m}_n"] = d.get("n")
                row[f"{m}_higher_is_better"] = block.get("higher_is_better")
            else:
                row[f"{m}_mean"] = block
            base = (summary.get("baseline") or {}).get("metrics", {}).get(m)
            row[f"{m}_baseline"] = headline_block(base).get("mean") if isinstance(base, dict) else base
        row["train_s"] = _train_seconds(path, summary)
        row["warning"] = learning_mark(summary)
    if state.get("started") and state.get("ended"):
        started = dt.datetime.fromisoformat(state["started"])
        ended = dt.datetime.fromisoformat(state["ended"])
        row["duration_s"] = round((ended - started).total_seconds(), 2)
    row["path"] = str(path)
    return row


def _train_seconds(path: Path, summary: dict[str, Any]) -> float | None:
    """Training time the engine measured: without imports, data loading and compilation start-up.

    The first point of a sweep pays the framework's import alone, so its wall time
    (``duration_s``) is not comparable with the others'; this is.
    """
    if summary.get("command") == "train":
        sec = summary.get("seconds")
        return None if sec is None else round(float(sec), 2)
    scores = path / report.SCORES
    if scores.exists():
        try:
            sec = pd.read_csv(scores, usecols=["seconds"])["seconds"].sum()
        except (ValueError, KeyError):
            return None
        return round(float(sec), 2)
    return None


def _sweep_plots(writer: report.RunWriter, table: pd.DataFrame, points: list[SweepPoint], sweep_dir: Path) -> None:
    from dlrun.report import plots

    name = sweep_dir.parent.name if sweep_dir.name[:1].isdigit() else sweep_dir.name
    try:
        name = str(report.read_json(sweep_dir / SWEEP_STATE).get("name") or name)
    except (OSError, ValueError):
        pass
    if table.empty or "main_metric" not in table or table["main_metric"].dropna().empty:
        _sweep_report(sweep_dir)
        return
    metric = str(table["main_metric"].dropna().iloc[0])
    keys = list(points[0].overrides) if points else []
    done = table[table["status"] == "finished"]
    if done.empty:
        _sweep_report(sweep_dir)
        return
    hib_col = f"{metric}_higher_is_better"
    higher = bool(done[hib_col].dropna().iloc[0]) if hib_col in done and done[hib_col].notna().any() else None
    for key in keys:
        short = short_key(key, keys)
        others = [k for k in keys if k != key]
        stat = (f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high", f"{metric}_baseline")
        cols = [c for c in stat if c in done.columns]
        sub = done[[*keys, *cols]].copy()
        writer.plot(
            f"sweep_{folder_value(short)}_{metric}",
            lambda ax, sub=sub, key=key, others=others: plots.sweep_metric(
                ax, sub, key, metric, others=others, run_name=name, higher_is_better=higher
            ),
            size=(7.6, 4.2),
        )
    curves: dict[str, pd.DataFrame] = {}
    for _, r in done.iterrows():
        hist = Path(str(r["path"])) / HISTORY
        if hist.exists():
            h = pd.read_csv(hist)
            if "repeat" not in h:
                h = h.assign(repeat=0, fold=0)
            curves[",".join(f"{short_key(k, keys)}={r[k]}" for k in keys)] = h
    if curves:
        first = next(iter(curves.values()))
        for m in dict.fromkeys(["loss", *[c for c in first.columns if c in (metric, "accuracy", "mae")]]):
            if m in first.columns:
                writer.plot(
                    f"curves_{m}",
                    lambda ax, m=m: plots.sweep_curves(ax, curves, m, run_name=name),
                    size=(7.6, 4.2),
                )
    _sweep_report(sweep_dir)


def _sweep_report(sweep_dir: Path) -> None:
    """``report.html`` of the sweep: its table, plots and a link to each point's own page."""
    from dlrun.report import html as html_report

    html_report.write_report([sweep_dir], sweep_dir / html_report.REPORT_HTML)
