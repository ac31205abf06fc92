"""Batches: several configs in turn, going on after a failure, with a closing table."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dlrun.errors import DlrunError, InputError, Interrupted
from dlrun.evaluation.summary import Summary
from dlrun.execution.executors import Executor, make_executor
from dlrun.reporting import Reporter
from dlrun.runs.multirun import JobNotes, SpecDone, SpecJob, run_spec_jobs
from dlrun.spec.schema import load_spec
from dlrun.store import io as report
from dlrun.store.layout import BATCH_CSV, SUMMARY_JSON
from dlrun.store.lock import holding_lock
from dlrun.store.run_folder import RunFolder
from dlrun.store.runs_folder import RunsFolder
from dlrun.store.signals import stop_requested


def expand_configs(patterns: list[str]) -> list[Path]:
    """Config files from paths and globs, in the order given (each glob sorted), without repeats.

    Raises:
        InputError: A pattern matches no file.
    """
    out: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat)) if any(c in pat for c in "*?[") else ([pat] if Path(pat).exists() else [])
        if not hits:
            raise InputError(f"CONFIGS must name existing YAML files or globs that match some, got '{pat}'")
        for h in hits:
            p = Path(h)
            if p not in out:
                out.append(p)
    return out


@dataclass
class BatchItem:
    """One config's outcome in a batch."""

    config: Path
    folder: Path
    status: str = "pending"
    error: str = ""
    seconds: float = 0.0
    headline: str = ""


def plan_items(configs: list[Path], batch_dir: Path) -> list[BatchItem]:
    """One item per config, in ``batch_dir/<stem>`` (``<parent>_<stem>`` where two stems clash)."""
    items = [BatchItem(c, batch_dir / c.stem) for c in configs]
    stems = [i.folder.name for i in items]
    for i in items:
        if stems.count(i.folder.name) > 1:
            i.folder = batch_dir / f"{i.config.parent.name}_{i.config.stem}"
    return items


def previous_status(item: BatchItem, n: int, total: int, resume: bool, note: Callable[[str], None]) -> str | None:
    """The status a config's folder already records; a finished one is marked skipped under ``resume``.

    A folder whose run failed before it trained anything holds no result and is started afresh
    (see :func:`dlrun.store.io.failed_before_training`).

    Raises:
        InputError: The folder holds a run and ``resume`` was not asked for.
    """
    error = report.reclaim_failed_run(item.folder)
    if error is not None:  # no result to keep: the (fixed) config starts afresh there
        note(f"[{n + 1}/{total}] {report.afresh_note(item.config, error)}")
        return None
    status = RunsFolder.run_status(item.folder)  # a truncated state.json: an unfinished run
    if status == "finished" and resume:
        item.status = "finished"
        item.headline, item.seconds = earlier_result(item.folder)
        note(f"[{n + 1}/{total}] {item.config}: finished earlier, skipped")
    elif status is not None and not resume:
        raise InputError(f"{item.folder} already holds a run; add --resume to continue the batch, or use another --out")
    return None if status is None else str(status)


def check_resumed(items: list[BatchItem], overrides: list[str] | None, note: Callable[[str], None]) -> None:
    """Before anything runs: every config whose folder holds a run (finished ones included, which
    are skipped) must be the spec that run recorded, or the batch would mix two configs' results.

    Raises:
        FingerprintMismatch: A config (or ``--set``) changed since its run (exit 2, naming the fields).
    """
    for item in items:
        if not item.folder.is_dir() or report.failed_before_training(item.folder) is not None:
            continue  # nothing there, or nothing kept: a failed start is started afresh with the fixed config
        try:
            spec = load_spec(item.config, list(overrides or []))
        except DlrunError:
            continue  # it fails on its own, with its own message, when its turn comes
        RunFolder(item.folder).check_spec(spec, note, "Use the configs and --set options the batch was started with")


def earlier_result(folder: Path) -> tuple[str, float]:
    """``(headline, seconds)`` of a run that finished in an earlier batch, from its own files."""
    import datetime as dt

    headline, seconds = "finished earlier", 0.0
    try:
        summary = report.read_json(folder / SUMMARY_JSON)
        headline = Summary(summary).headline or headline
    except (OSError, InputError, KeyError, TypeError, ValueError):
        pass
    try:
        state = RunsFolder.run_state(folder)
        ended, started = dt.datetime.fromisoformat(state["ended"]), dt.datetime.fromisoformat(state["started"])
        seconds = (ended - started).total_seconds()
    except (OSError, InputError, KeyError, TypeError, ValueError):
        pass
    return headline, max(0.0, seconds)


@holding_lock("batch_dir")
def run_batch(
    configs: list[Path],
    batch_dir: Path,
    overrides: list[str] | None = None,
    executor: str | Executor | None = None,
    *,
    resume: bool = False,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
    reporter: Reporter | None = None,
    argv: list[str] | None = None,
) -> list[BatchItem]:
    """Run each config into ``batch_dir/<config stem>`` on ``executor``; record failures and go on.

    Each config is read and validated (with ``overrides``) just before it is handed to the
    executor; one that does not validate is a failed item.

    Args:
        configs: Config files.
        batch_dir: Where each config's run directory goes.
        overrides: ``key.path=value`` strings applied to every config (as ``--set``).
        executor: ``local``, ``ray`` or an :class:`~dlrun.execution.executors.Executor` (default: each
            config's own ``runtime.executor``, the first config's deciding).
        resume: Skip configs whose run finished; continue unfinished ones.
        fail_fast: Stop at the first failure.
        note: Where one-line remarks go.
        reporter: Progress of configs that train in this process.
        argv: The command line, for each run's ``env.json``.

    Raises:
        InputError: A config's folder already holds a run and ``resume`` is off.
        Interrupted: Ctrl-C or SIGTERM (configs still out are cancelled and marked).
    """
    items = plan_items(configs, batch_dir)
    RunsFolder(batch_dir, "batch").clear_temporaries()
    if resume:  # before any result is reused: another spec is refused, never mixed in
        check_resumed(items, overrides, note)
    todo: list[int] = []
    for n, item in enumerate(items):
        previous_status(item, n, len(items), resume, note)
        if item.status != "finished":
            todo.append(n)
    batch_dir.mkdir(parents=True, exist_ok=True)
    _write(batch_dir, items)
    if not todo:
        return items
    runner: Executor | None = None

    def jobs() -> Iterator[SpecJob]:
        for n in todo:
            item = items[n]
            try:
                spec = load_spec(item.config, list(overrides or []))
            except DlrunError as exc:
                # every problem, on one line: "2 problems in bad.yaml: a: ...; b: ..."
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                item.status, item.error = "failed", " ".join(lines[:1]) + " " + "; ".join(lines[1:]) if lines else ""
                item.error = item.error.strip() or type(exc).__name__
                note(f"{item.config}: failed: {item.error}")
                _write(batch_dir, items)
                if fail_fast:
                    return
                continue
            yield SpecJob(n, spec, item.folder, str(item.config))

    def on_done(job: SpecJob, done: SpecDone) -> None:
        item = items[job.index]
        item.status, item.error, item.seconds = done.status, done.error, done.seconds
        if done.status == "finished":
            item.headline = Summary(done.summary).headline
        else:
            note(f"{item.config}: {done.status}: {done.error}")
        _write(batch_dir, items)
        if reporter is not None:
            reporter.step(sum(it.status == "finished" for it in items), len(items), "configs")

    # the executor is the one named, else the first valid config's runtime.executor
    pending = jobs()
    first = next(pending, None)
    if first is None:
        _write(batch_dir, items)
        return items
    runner = make_executor(executor, first.spec.runtime)
    notes = JobNotes(
        note,
        f"submitting up to {len(todo)} config(s)",
        lambda job: f"[{job.index + 1}/{len(items)}] {job.label} -> {job.path}",
        lambda job: f"[{job.index + 1}/{len(items)}] {items[job.index].config}: finished",
    )

    def all_jobs() -> Iterator[SpecJob]:
        yield first
        yield from pending

    try:
        run_spec_jobs(runner, all_jobs(), on_done, argv=argv, fail_fast=fail_fast, reporter=reporter, notes=notes)
    except Interrupted:
        _write(batch_dir, items)
        raise RunsFolder(batch_dir, "batch").interrupted(argv) from None
    _write(batch_dir, items)
    if stop_requested():  # between configs or while batch.csv was written
        raise RunsFolder(batch_dir, "batch").interrupted(argv)
    return items


def _write(batch_dir: Path, items: list[BatchItem]) -> None:
    df = pd.DataFrame(
        [
            {
                "config": str(i.config),
                "status": i.status,
                "seconds": round(i.seconds, 2),
                "headline": i.headline,
                "error": i.error,
                "path": str(i.folder),
            }
            for i in items
        ]
    )
    report.write_csv(batch_dir / BATCH_CSV, df)
