"""Training many specs' folds at once: specs that share one program train in one engine call.

A search's batch of trials and a sweep's grid points are specs on the same data and folds. The
engine protocol groups them (``share_groups``: specs that differ only in per-model scalars, a
learning rate or a dropout rate, say); a group trains with ``fit_many`` in one call, any other
spec in a call of its own. Every call is one :class:`~dlrun.protocol.fitting.FitTask` for the
executor; this process preprocesses, scores and saves each fold in its spec's run folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.engines import choose_engine, make_engine, share_groups
from dlrun.errors import DlrunError
from dlrun.execution.executors import Resources, make_executor
from dlrun.protocol.fitting import FitTask, FitWorker, score_result, size_stubs
from dlrun.protocol.jobs import Prepared, make_job
from dlrun.protocol.splits import Fold
from dlrun.reporting import Reporter
from dlrun.spec.schema import Spec
from dlrun.store import io as report
from dlrun.store.layout import PARTS
from dlrun.store.run_folder import RunFolder


@dataclass
class TrialWork:
    """One spec (a search's trial, a sweep's point) on its way through training.

    Attributes:
        number: Its number (Optuna's trial number, the point's index).
        values: ``{spec path: value}`` as applied to the spec.
        spec: The validated spec.
        prep: Its prepared data and folds (identical folds for every spec of a search or sweep).
        path: Its run folder.
        trial: The Optuna trial, for a search.
    """

    number: int
    values: dict[str, Any]
    spec: Spec
    prep: Prepared
    path: Path
    trial: Any = None


@dataclass
class Programs:
    """How training was packed: one entry per program (engine call or chunk), its model count."""

    models: list[int] = field(default_factory=list)

    def add(self, n_models: int, n_programs: int = 1) -> None:
        """Record ``n_programs`` programs sharing ``n_models`` models evenly."""
        if n_models <= 0:
            return
        per = math.ceil(n_models / n_programs)
        for start in range(0, n_models, per):
            self.models.append(min(per, n_models - start))

    def as_dict(self) -> dict[str, Any]:
        """``programs``, ``models`` and ``models_per_program`` (mean, min, max)."""
        m = self.models
        return {
            "programs": len(m),
            "models": int(sum(m)),
            "models_per_program": {
                "mean": float(sum(m) / len(m)) if m else 0.0,
                "min": int(min(m)) if m else 0,
                "max": int(max(m)) if m else 0,
            },
        }


def parts_of(path: Path, on_corrupt: Callable[[str], None] | None = None) -> dict[tuple[int, int], dict[str, Any]]:
    """The folds a run folder has saved (none when it has no parts); a damaged part file is moved
    aside and named to ``on_corrupt``, and its folds train again."""
    return RunFolder(path).read_parts(on_corrupt=on_corrupt) if (path / PARTS).exists() else {}


def n_programs(w: TrialWork, engine_name: str, folds: list[Fold]) -> int:
    """How many programs one engine call on ``folds`` runs: the engine's chunks of them."""
    try:
        engine = make_engine(engine_name, w.spec, w.prep.task, w.prep.input_shape, w.prep.n_outputs)
        per = int(engine.models_per_chunk(size_stubs(folds, test=False)))
    except Exception:  # an engine without a memory estimate: one program per call
        return 1
    return math.ceil(len(folds) / max(1, per))


def finish_failed(w: TrialWork, error: str) -> None:
    """Mark a spec's run folder ``failed`` with ``error`` (its saved folds stay)."""
    folder = RunFolder(w.path)
    state = folder.read_state() or {"name": w.spec.name, "command": "cv"}
    state.update(status="failed", error=error, ended=report.now_iso())
    folder.write_state(state)


def train_trials(
    works: list[TrialWork],
    folds: list[Fold],
    reporter: Reporter,
    programs: Programs,
    argv: list[str] | None = None,
) -> dict[int, str]:
    """Train ``folds`` of every spec in ``works``, saving each finished fold as a part in its folder.

    Specs the engine protocol puts in one ``share_groups`` group train as one program, with all
    their folds in one engine call, when their engine shares programs (one spec alone goes through
    ``fit_many`` too: its compiled programs are then reused by every later spec of the same shape);
    any other spec is one call of its own engine over its folds. Calls run on the spec's executor
    (``runtime.executor``): here, one after another, or as Ray tasks side by side.

    Returns:
        ``{number: error}`` for specs that failed (a diverged loss, a dead worker); the others
        have every fold of ``folds`` saved.
    """
    if not works:
        return {}
    groups = [[works[i] for i in g] for g in share_groups([w.spec for w in works])]
    tasks: list[FitTask] = []
    pres: dict[tuple[int, tuple[int, int]], Any] = {}
    by_key_fold = {f.key: f for f in folds}
    errors: dict[int, str] = {}
    for group in groups:
        choice = choose_engine(group[0].spec, group[0].prep.task)
        shared = choice.shares_programs
        for members in [group] if shared else [[w] for w in group]:
            done = [parts_of(w.path, reporter.note) for w in members]
            pending = [f for f in folds if any(f.key not in d for d in done)]
            if not pending:
                continue
            first = members[0]
            try:
                engine = choice.name if shared else choose_engine(first.spec, first.prep.task).name
                fit_jobs = []
                for f in pending:
                    job, pre = make_job(first.prep, f)
                    fit_jobs.append(job)
                    for w in members:  # one preprocessing for the group: the specs share it
                        pres[(w.number, f.key)] = pre
            except DlrunError as exc:
                errors.update({w.number: " ".join(str(exc).split()) for w in members})
                continue
            tasks.append(FitTask([w.spec for w in members], fit_jobs, engine, shared, [w.number for w in members]))
            programs.add(len(pending) * len(members), 1 if shared else n_programs(first, engine, pending))
    by_number = {w.number: w for w in works}
    runtime = works[0].spec.runtime
    executor = make_executor(None, runtime)
    slots = executor.slots(Resources.of(runtime))
    first = works[0]
    worker = FitWorker(first.prep.task, first.prep.input_shape, first.prep.n_outputs, executor.sink(reporter.epoch))
    saved = {w.number: set(parts_of(w.path)) for w in works}
    for outcome in executor.map(worker, tasks, window=2 * slots):
        task: FitTask = outcome.job
        if not outcome.ok or outcome.value is None:
            errors.update({n: outcome.reason for n in task.tags if n not in errors})
            continue
        i, result = outcome.value
        number = task.tags[i]
        w = by_number[number]
        key = (result.repeat, result.fold)
        if number in errors or key in saved[number]:
            continue
        try:
            part = score_result(w.prep, by_key_fold[key], pres.pop((number, key)), result)
        except DlrunError as exc:
            errors[number] = " ".join(str(exc).split())
            continue
        RunFolder(w.path).write_parts([part])
        saved[number].add(key)
    return errors
