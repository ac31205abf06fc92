"""``dlrun search``: hyperparameter search scored by honest cross-validation, resumable, raced, nested.

Optuna proposes values through its ask-and-tell interface; each trial is the config's own
cross-validation with the trial's values, in its own run folder (``trials/trial_0007``, the same
files as a ``dlrun cv`` run). The study lives in ``optuna.journal`` in the search folder, an
append-only Optuna journal (``JournalFileBackend``): every ask, report and tell is one appended,
flushed record under a file lock, so a killed search loses nothing it had told, and ``--resume``
continues with the next trial. A trial that was asked but not told when the process died is
marked failed in the study and asked again with the same values, keeping its finished folds.

Trials are asked in batches (``search.batch``) and their folds trained by :func:`train_trials`:
trials that differ only in per-model hyperparameters (the stacked engine's ``shared_groups``)
train with all their folds in one engine call (``fit_shared``; a dropout rate, a learning rate
or a regularization factor is such a hyperparameter, a layer's width is not), any other trial
in one engine call of its own. The stacked engine of a shape is kept for the whole search, so
later batches reuse its compiled programs. These jobs run on the spec's executor (here, or as Ray tasks). Racing
(``search.racing``) trains the folds in stages and stops a trial whose score so far is worse
than the current best's, on the same folds, by the Nadeau–Bengio corrected paired interval.

Nested cross-validation (``evaluation.outer``) runs the whole search inside each outer training
part, refits the chosen config on that part and scores it on the outer test part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.data.sources import Dataset
from dlrun.errors import DlrunError, InputError, Interrupted, RunError, SpecError
from dlrun.evaluation import stats
from dlrun.evaluation.scoring import HIGHER_IS_BETTER
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.jobs import Prepared, prepare
from dlrun.protocol.splits import Fold, make_folds
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.cv import choose_engine, run_cv
from dlrun.runs.finish import Finisher
from dlrun.spec.schema import EvaluationSpec, SearchSpec, Spec, validate
from dlrun.spec.search_space import Param, base_raw, choice_label, parse_space, set_value
from dlrun.store import io as report

# File names are decided in dlrun.store.layout.
from dlrun.store.layout import (
    BEST_CONFIG,
    JOURNAL,
    NESTED_CSV,
    NESTED_JSON,
    NESTED_MD,
    SEARCH_MD,
    SEARCH_STATE,
    TOP_CSV,
    TRIALS_CSV,
    TRIALS_DIR,
)

STUDY = "dlrun"
# Searches of this many trials draw their trials' plots in helper processes (Finisher): starting
# a helper costs about 1.6 s of CPU, a trial's plots about 0.7 s.
HELPER_MIN_TRIALS = 10


# ----------------------------------------------------------------------------- trials and programs
@dataclass
class TrialWork:
    """One asked trial on its way through training.

    Attributes:
        number: Optuna's trial number.
        values: ``{spec path: value}`` as applied to the spec.
        spec: The trial's validated spec.
        prep: Its prepared data and folds (the search's folds: identical for every trial).
        path: Its run folder.
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
                "mean": float(np.mean(m)) if m else 0.0,
                "min": int(min(m)) if m else 0,
                "max": int(max(m)) if m else 0,
            },
        }


# Spec fields the stacked engine can vary per model inside one program (issue 11): optimizer
# scalars and regularization factors. Trials that differ only there share a shape.
_PER_MODEL_OPTIMIZER = (
    "learning_rate",
    "momentum",
    "beta_1",
    "beta_2",
    "weight_decay",
    "rho",
    "epsilon",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "initial_accumulator_value",
)


def shape_key(spec: Spec) -> str:
    """A text equal for two specs exactly when they differ at most in per-model hyperparameters."""
    d = spec.model_dump(mode="json")
    d.pop("name", None)
    opt = d.get("compile", {}).get("optimizer")
    if isinstance(opt, dict):
        for args in opt.values():
            for k in _PER_MODEL_OPTIMIZER:
                if isinstance(args, dict) and isinstance(args.get(k), (int, float)):
                    args[k] = "*"
    for layer in d.get("model", {}).get("layers", []):
        for args in layer.values():
            for k, v in list(args.items()) if isinstance(args, dict) else []:
                if k.endswith("regularizer") and isinstance(v, dict):
                    for reg_args in v.values():
                        for rk in list(reg_args or {}):
                            reg_args[rk] = "*"
    return json.dumps(d, sort_keys=True)


def _shared_api() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """The stacked engine's ``(shared_groups, fit_shared)`` (issue 11), or None where it has none.

    ``shared_groups(specs)`` groups specs that differ only in per-model scalars (optimizer
    scalars, regularization factors); ``fit_shared(specs, jobs, task, input_shape, n_outputs,
    on_epoch)`` trains every job under every spec of one group in one engine call and yields
    ``(spec index, FitResult)``.
    """
    try:
        from dlrun.engines import stacked
    except ImportError:
        return None
    groups, fit = getattr(stacked, "shared_groups", None), getattr(stacked, "fit_shared", None)
    return (groups, fit) if callable(groups) and callable(fit) else None


def _multi_spec_trainer() -> Callable[..., Any] | None:
    """``fit_shared`` when the engine has it (see :func:`_shared_api`)."""
    api = _shared_api()
    return api[1] if api else None


def _parts_of(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    return report.RunWriter(path).read_parts() if (path / report.PARTS).exists() else {}


def train_trials(
    works: list[TrialWork],
    folds: list[Fold],
    reporter: Reporter,
    programs: Programs,
    argv: list[str] | None = None,
) -> dict[int, str]:
    """Train ``folds`` of every trial in ``works``, saving each finished fold as a part in its folder.

    Trials are grouped by the stacked engine's ``shared_groups`` (else by :func:`shape_key`):
    a group of trials differing only in per-model hyperparameters is one job trained by
    ``fit_shared`` in one engine call; any other trial is one job of its own engine over its
    folds. Jobs run on the spec's executor (``runtime.executor``): here, one after another, or as
    Ray tasks side by side; this process preprocesses, scores and writes every fold.

    Returns:
        ``{trial number: error}`` for trials that failed (a diverged loss, a dead worker); the
        others have every fold of ``folds`` saved.
    """
    from dlrun.execution.executors import Resources, make_executor
    from dlrun.protocol.jobs import check_finite, make_job, score_fold

    if not works:
        return {}
    api = _shared_api()
    if api is not None:
        groups = [[works[i] for i in g] for g in api[0]([w.spec for w in works])]
    else:
        by_key: dict[str, list[TrialWork]] = {}
        for w in works:
            by_key.setdefault(shape_key(w.spec), []).append(w)
        groups = list(by_key.values())
    jobs: list[_TrialsJob] = []
    pres: dict[tuple[int, tuple[int, int]], Any] = {}
    by_key_fold = {f.key: f for f in folds}
    errors: dict[int, str] = {}
    for group in groups:
        # one trial alone goes through fit_shared too: its engine (and compiled programs) is
        # then reused by every later trial of the same shape
        shared = api is not None and _engine_of(group[0]) == "stacked"
        for members in [group] if shared else [[w] for w in group]:
            done = [_parts_of(w.path) for w in members]
            pending = [f for f in folds if any(f.key not in d for d in done)]
            if not pending:
                continue
            first = members[0]
            try:
                engine = "shared" if shared else _engine_of(first)
                fit_jobs = []
                for f in pending:
                    job, pre = make_job(first.prep, f)
                    fit_jobs.append(job)
                    for w in members:  # one preprocessing for the group: the trials share it
                        pres[(w.number, f.key)] = pre
            except DlrunError as exc:
                errors.update({w.number: " ".join(str(exc).split()) for w in members})
                continue
            jobs.append(_TrialsJob([w.spec for w in members], [w.number for w in members], fit_jobs, engine))
            programs.add(len(pending) * len(members), 1 if shared else _n_programs(first, engine, pending))
    by_number = {w.number: w for w in works}
    runtime = works[0].spec.runtime
    executor = make_executor(None, runtime)
    slots = executor.slots(Resources.of(runtime))
    first = works[0]
    fn = _TrialsFit(first.prep.task, first.prep.input_shape, first.prep.n_outputs)
    if executor.in_process:
        fn.on_epoch = reporter.epoch
    saved = {w.number: set(_parts_of(w.path)) for w in works}
    for outcome in executor.map(fn, jobs, window=2 * slots):
        done_job: _TrialsJob = outcome.job
        if not outcome.ok or outcome.value is None:
            errors.update({n: outcome.reason for n in done_job.numbers if n not in errors})
            continue
        i, result = outcome.value
        number = done_job.numbers[i]
        w = by_number[number]
        key = (result.repeat, result.fold)
        if number in errors or key in saved[number]:
            continue
        try:
            check_finite(result)
        except DlrunError as exc:
            errors[number] = " ".join(str(exc).split())
            continue
        part = score_fold(w.prep, by_key_fold[key], pres.pop((number, key)), result)
        report.RunWriter(w.path).write_part(key[0], key[1], part)
        saved[number].add(key)
    return errors


@dataclass
class _TrialsJob:
    """One executor job: the pending folds of one trial, or of a group of trials sharing a program.

    Attributes:
        specs: The trials' specs (one, or a ``shared_groups`` group).
        numbers: Their trial numbers, in the same order.
        jobs: The folds, preprocessed once (the group's trials share the preprocessing).
        engine: ``shared`` (``fit_shared``) or the engine that trains the single trial.
    """

    specs: list[Spec]
    numbers: list[int]
    jobs: list[Any]
    engine: str


@dataclass
class _TrialsFit:
    """Train a :class:`_TrialsJob` where the executor runs it; yields ``(index in job.specs, FitResult)``.

    Picklable for Ray without its progress callback; in a worker it sets the runtime up first.
    """

    task: str
    input_shape: tuple[int, ...]
    n_outputs: int
    on_epoch: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "on_epoch": None}

    def __call__(self, job: _TrialsJob) -> Iterator[tuple[int, Any]]:
        from dlrun.engines.runtime import quiet_tensorflow, setup

        quiet_tensorflow()
        setup(job.specs[0].runtime)  # once per process (a no-op here, where the driver did it)
        if job.engine == "shared":
            from dlrun.engines.stacked import fit_shared

            results: Iterator[tuple[int, Any]] = fit_shared(
                job.specs, job.jobs, self.task, self.input_shape, self.n_outputs, self.on_epoch
            )
        else:
            from dlrun.engines.base import make_engine

            engine = make_engine(job.engine, job.specs[0], self.task, self.input_shape, self.n_outputs)
            results = ((0, r) for r in engine.fit(job.jobs, self.on_epoch))
        for i, result in results:
            result.model = None  # models do not travel; the scores and predictions do
            yield i, result


def _engine_of(w: TrialWork) -> str:
    """The engine ``runtime.engine`` picks for a trial (``stacked`` whenever it can)."""
    from dlrun.runs.cv import choose_engine_name

    return choose_engine_name(w.prep, NullReporter())


def _n_programs(w: TrialWork, engine_name: str, folds: list[Fold]) -> int:
    """How many programs an engine call on ``folds`` runs: memory chunks (stacked) or one per fold."""
    if engine_name != "stacked":
        return len(folds)
    try:
        from dlrun.engines.base import make_engine

        engine = make_engine("stacked", w.spec, w.prep.task, w.prep.input_shape, w.prep.n_outputs)
        per = int(engine.models_per_chunk(_probe_jobs(w.prep, folds)))  # type: ignore[attr-defined]
    except Exception:  # an engine without a memory estimate: one program per call
        return 1
    return math.ceil(len(folds) / max(1, per))


def fit_folds(prep: Prepared, folds: list[Fold], reporter: Reporter) -> Iterator[tuple[tuple[int, int], dict, str]]:
    """Train ``folds`` of ``prep`` in this process; yield ``(key, part, engine name)`` as each is scored.

    Raises:
        RunError: A model's loss diverged.
    """
    from dlrun.protocol.jobs import check_finite, make_job, score_fold

    engine = choose_engine(prep, NullReporter(), len(folds))
    by_key = {f.key: f for f in folds}
    jobs, pres = [], {}
    for f in folds:
        job, pre = make_job(prep, f)
        jobs.append(job)
        pres[f.key] = pre
    for result in engine.fit(jobs, reporter.epoch):
        check_finite(result)
        key = (result.repeat, result.fold)
        yield key, score_fold(prep, by_key[key], pres.pop(key), result), str(engine.name)


def _probe_jobs(prep: Prepared, folds: list[Fold]) -> list[Any]:
    """Shape stand-ins for the engine's memory estimate (sizes only; no preprocessing)."""
    from dlrun.engines.base import FitJob

    feat = int(np.prod(prep.input_shape)) if prep.input_shape else 1
    return [
        FitJob(
            f.repeat,
            f.fold,
            f.seed,
            np.empty((len(f.train), feat), np.float32),
            np.empty(len(f.train)),
            x_val=np.empty((len(f.val), feat), np.float32) if len(f.val) else None,
        )
        for f in folds
    ]


# ----------------------------------------------------------------------------- the search
@dataclass
class SearchOutcome:
    """What a finished search produced (also written to its folder).

    Attributes:
        path: The search folder.
        table: ``trials.csv``.
        best: The best trial's row (None if no trial completed).
        best_raw: The best trial's spec, ready to run, as a raw mapping.
        summary: The summary part of ``search.json``.
    """

    path: Path
    table: pd.DataFrame
    best: dict[str, Any] | None
    best_raw: dict[str, Any] | None
    summary: dict[str, Any]


def _search_settings(raw: dict[str, Any], source: str | None) -> tuple[Spec, Spec, SearchSpec, list[Param]]:
    full = validate(raw, source=source)
    if full.search is None:
        raise InputError("a search needs a search section in the spec (dotted.path: {type: float, low: .., high: ..})")
    base = validate(base_raw(raw), source=source)
    return full, base, full.search, parse_space(full.search.space)


def _sampler(settings: SearchSpec, params: list[Param], seed: int) -> Any:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler({p.path: p.grid() for p in params}, seed=seed)
    # constant_liar: trials asked together in a batch are kept apart
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)


def _open_study(search_dir: Path, settings: SearchSpec, params: list[Param], seed: int, direction: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _repair_journal(search_dir / JOURNAL)
    storage = JournalStorage(JournalFileBackend(str(search_dir / JOURNAL)))
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        sampler=_sampler(settings, params, seed),
        direction="maximize" if direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    n = len(study.get_trials(deepcopy=False))
    if n:
        # a resumed search must not replay the random draws of its first session: a seed of its own
        study.sampler = _sampler(settings, params, int(np.random.SeedSequence([seed, n]).generate_state(1)[0]))
    return study


def _repair_journal(path: Path) -> None:
    """Undo what a process killed inside an append may leave (the caller holds the search's lock).

    Optuna skips a last line without its newline, but the next append would glue onto it and make
    the journal unreadable: cut the fragment. Its lock file, left by a killed holder, would make
    Optuna wait out its 30-second grace period: remove it.
    """
    Path(f"{path}.lock").unlink(missing_ok=True)
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def _trial_dir(search_dir: Path, number: int) -> Path:
    return search_dir / TRIALS_DIR / f"trial_{number:04d}"


def _fold_scores(path: Path, metric: str) -> dict[tuple[int, int], float]:
    """``{(repeat, fold): score}`` of a trial: its saved folds, or its ``scores.csv`` once assembled."""
    parts = _parts_of(path)
    if not parts and (path / report.SCORES).exists():
        df = pd.read_csv(path / report.SCORES)
        return {(int(r), int(f)): float(v) for r, f, v in zip(df["repeat"], df["fold"], df[metric])}
    return {k: float(p["scores"].get(metric, float("nan"))) for k, p in parts.items()}


def _tell(study: Any, trial: Any, value: float | None = None, state: Any = None) -> None:
    """``study.tell``; the grid sampler's "grid exhausted" stop, meant for ``optimize``, is ignored
    (the trial is recorded before it fires, and the loop here counts trials itself)."""
    try:
        if state is None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _trial_spec(raw_base: dict[str, Any], values: dict[str, Any], name: str, source: str | None) -> tuple[dict, Spec]:
    raw = raw_base
    for path, v in values.items():
        raw = set_value(raw, path, v)
    raw = {**raw, "name": name}
    return raw, validate(raw, source=source)


def _stages(folds: list[Fold], settings: SearchSpec) -> list[list[Fold]]:
    """The folds trained before each racing decision: one stage per repeat, or ``racing_stages`` chunks."""
    if not settings.racing:
        return [folds]
    repeats = sorted({f.repeat for f in folds})
    if len(repeats) > 1:
        return [[f for f in folds if f.repeat == r] for r in repeats]
    n = min(settings.racing_stages, len(folds) // 2)
    if n < 2:
        return [folds]
    return [list(chunk) for chunk in np.array_split(np.array(folds, dtype=object), n)]


def run_search(
    raw: dict[str, Any],
    search_dir: Path,
    reporter: Reporter | None = None,
    *,
    source: str | None = None,
    trials: int | None = None,
    sampler: str | None = None,
    batch: int | None = None,
    racing: bool | None = None,
    data: Dataset | None = None,
    argv: list[str] | None = None,
    finisher: Finisher | None = None,
) -> SearchOutcome:
    """Run (or continue) a search in ``search_dir`` until ``trials`` trials have ended.

    Args:
        raw: The raw spec with its ``search`` section (``--set`` overrides applied).
        search_dir: The search folder; an existing journal there is continued.
        reporter: Progress sink.
        source: The config file name, for error messages.
        trials: Overrides ``search.trials``.
        sampler: Overrides ``search.sampler``.
        batch: Overrides ``search.batch``.
        racing: Overrides ``search.racing``.
        data: Rows to search on instead of the spec's data (the outer training part of nested CV).
        argv: The command line, for ``env.json``.
        finisher: Draw the trials' plots with this :class:`~dlrun.runs.finish.Finisher` (kept open
            by the caller, e.g. for every inner search of a nested one). Default: one of its own
            for a search of :data:`HELPER_MIN_TRIALS` trials or more, else each trial's plots are
            drawn before the next batch.

    Returns:
        The trials table, the best trial and the summary.
    """
    from optuna.trial import TrialState

    reporter = reporter or NullReporter()
    overrides = {
        k: v
        for k, v in (("trials", trials), ("sampler", sampler), ("batch", batch), ("racing", racing))
        if v is not None
    }
    if overrides:
        raw = {**raw, "search": {**raw["search"], **overrides}}
    full, base, settings, params = _search_settings(raw, source)
    seed = settings.seed if settings.seed is not None else full.seed
    prep0 = prepare(base, reporter, data=data)
    metric = prep0.main_metric
    higher = HIGHER_IS_BETTER[metric]
    direction = settings.direction if settings.direction != "auto" else ("maximize" if higher else "minimize")
    if (direction == "maximize") != higher:
        reporter.note(
            f"search.direction {direction} although {metric} is better when {'higher' if higher else 'lower'}"
        )
    n_trials = settings.trials
    if settings.sampler == "grid":
        size = int(np.prod([len(p.grid()) for p in params]))
        if size < n_trials:
            reporter.note(f"the grid has {size} points: {size} trials instead of {n_trials}")
            n_trials = size
    search_dir.mkdir(parents=True, exist_ok=True)
    _check_same_search(search_dir, raw.get("search", {}), prep0)
    study = _open_study(search_dir, settings, params, seed, direction)
    distributions = {p.path: p.distribution() for p in params}
    raw_base = base_raw(raw)
    folds = prep0.folds
    n_train = float(np.mean([len(f.train) + len(f.val) for f in folds]))
    n_test = float(np.mean([len(f.test) for f in folds]))
    conf = base.evaluation.confidence
    stages = _stages(folds, settings)
    programs = Programs()
    previous = report.read_json(search_dir / SEARCH_STATE) if (search_dir / SEARCH_STATE).exists() else {}
    for m in previous.get("programs_models", []):
        programs.models.append(int(m))
    models_trained = int(previous.get("models_trained", 0))

    _recover(study, search_dir, metric, reporter)
    if settings.batch is None:
        from dlrun.engines.runtime import setup

        setup(base.runtime)  # the backend, before the engine's memory estimate imports Keras
    default_batch = settings.batch or _default_batch(base, prep0, n_trials)
    t_start = time.perf_counter()

    def ended() -> list[Any]:
        return [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        ]

    def save_state(status: str) -> None:
        report.write_json(
            search_dir / SEARCH_STATE,
            {
                "name": base.name,
                "status": status,
                "trials": n_trials,
                "sampler": settings.sampler,
                "batch": default_batch,
                "racing": settings.racing,
                "space": raw.get("search", {}),
                "programs_models": programs.models,
                "models_trained": models_trained,
                "updated": report.now_iso(),
            },
        )

    save_state("running")
    try:
        _refinish(study, search_dir, params, raw_base, base.name, source, prep0, stages, argv, reporter)
        own = Finisher() if finisher is None and n_trials >= HELPER_MIN_TRIALS else None
        with own if own is not None else contextlib.nullcontext(finisher) as fin:
            while len(ended()) < n_trials:
                k = min(default_batch, n_trials - len(ended()))
                works: list[TrialWork] = []
                for _ in range(k):
                    trial = study.ask(distributions)
                    values = _values_of(trial, params)
                    trial.set_user_attr("values", {p: choice_label(v) for p, v in values.items()})
                    path = _trial_dir(search_dir, trial.number)
                    retry_of = trial.user_attrs.get("retry_of")
                    if retry_of is not None:
                        _carry_parts(_trial_dir(search_dir, int(retry_of)), path)
                    try:
                        spec_t, prep_t = _prepare_trial(raw_base, values, base.name, trial.number, source, prep0)
                    except (SpecError, InputError) as exc:
                        trial.set_user_attr("error", " ".join(str(exc).split()))
                        _tell(study, trial, state=TrialState.FAIL)
                        reporter.note(f"trial {trial.number}: invalid values: {' '.join(str(exc).split())}")
                        continue
                    works.append(TrialWork(trial.number, values, spec_t, prep_t, path, trial))
                reporter.note(
                    f"trials {', '.join(str(w.number) for w in works)} ({len(ended()) + len(works)}/{n_trials}): "
                    + "; ".join(_values_text(w.values) for w in works)
                )
                live = list(works)
                stopped: dict[int, str] = {}
                for s in range(len(stages)):
                    if not live:
                        break
                    before = {w.number: len(_parts_of(w.path)) for w in live}
                    upto = [f for st in stages[: s + 1] for f in st]
                    errors = train_trials(live, upto, reporter, programs, argv)
                    models_trained += sum(len(_parts_of(w.path)) - before[w.number] for w in live)
                    for w in list(live):
                        if w.number in errors:
                            w.trial.set_user_attr("error", errors[w.number])
                            _finish_failed(w, errors[w.number])
                            _tell(study, w.trial, state=TrialState.FAIL)
                            reporter.note(f"trial {w.number}: failed: {errors[w.number]}")
                            live.remove(w)
                    if s < len(stages) - 1 and live:
                        for w in live:
                            sc = list(_fold_scores(w.path, metric).values())
                            w.trial.report(float(np.nanmean(sc)), step=s)
                        for w, why in _race(study, live, search_dir, metric, higher, n_train, n_test, conf, s, stages):
                            stopped[w.number] = why
                            live.remove(w)
                            done_folds = [f for st in stages[: s + 1] for f in st]
                            # recorded first: a search killed before the tell below knows this trial was stopped
                            w.trial.set_user_attr("stopped", why)
                            w.trial.set_user_attr("folds_run", len(done_folds))
                            _finish(w, done_folds, argv, fin)
                            _tell(study, w.trial, state=TrialState.PRUNED)
                            reporter.note(f"trial {w.number}: stopped: {why}")
                for w in live:
                    summary = _finish(w, folds, argv, fin)
                    value = summary["metrics"][metric][summary["metrics"][metric]["headline"]]["mean"]
                    w.trial.set_user_attr("folds_run", len(folds))
                    _tell(study, w.trial, value)
                    reporter.note(f"trial {w.number}: {summary['headline']['text']}")
                save_state("running")
                _write_trials_table(study, search_dir, metric, params)
            if fin is not None:
                fin.wait()  # every trial folder complete before the search's own outputs
    except (KeyboardInterrupt, Interrupted):
        save_state("interrupted")
        _write_trials_table(study, search_dir, metric, params)
        raise Interrupted(
            f"search interrupted; resume with: dlrun search {source or 'CONFIG'} --resume --out {search_dir}"
        ) from None
    save_state("finished")
    return _write_outputs(
        study,
        search_dir,
        raw,
        raw_base,
        base,
        params,
        metric,
        direction,
        n_train,
        n_test,
        conf,
        programs,
        models_trained,
        len(folds),
        time.perf_counter() - t_start,
        source,
        settings.top,
    )


def _values_text(values: dict[str, Any]) -> str:
    def short(k: str) -> str:
        return k.rsplit(".", 1)[-1] if not k.endswith("]") else k

    return ", ".join(f"{short(k)}={_fmt(v)}" for k, v in values.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(choice_label(v))


def _default_batch(base: Spec, prep: Prepared, n_trials: int) -> int:
    """As many trials as fit the memory budget with all their folds (stacked engine), at most 8.

    One when the engine cannot train several trials in one program: batching would then only
    make the sampler less adaptive (it proposes a batch before hearing back from any of it).
    """
    if _multi_spec_trainer() is None:
        return 1
    try:
        from dlrun.engines.stacked import StackedEngine, unsupported_reason

        if unsupported_reason(base, prep.task) is not None:
            return 1
        engine = StackedEngine(base, prep.task, prep.input_shape, prep.n_outputs)
        per = engine.models_per_chunk(_probe_jobs(prep, prep.folds))
    except Exception:  # the estimate is a convenience; any failure means one trial at a time
        return 1
    return int(max(1, min(8, n_trials, per // max(1, len(prep.folds)))))


def _check_same_search(search_dir: Path, space: dict[str, Any], prep: Prepared) -> None:
    """A journal continued with another search space or other folds would mix two searches."""
    path = search_dir / SEARCH_STATE
    if not path.exists():
        return
    old = report.read_json(path)
    free = ("trials", "batch", "racing", "racing_stages", "sampler", "seed", "top")  # how, not what, is searched
    old_space = {k: v for k, v in (old.get("space") or {}).items() if k not in free}
    new_space = {k: v for k, v in space.items() if k not in free}
    if json.dumps(old_space, sort_keys=True, default=str) != json.dumps(new_space, sort_keys=True, default=str):
        raise InputError(
            f"{search_dir} holds a search with another search section; resume it with the same config "
            "(the parameters and direction must match; trials, sampler, batch and racing may change) "
            "or choose another --out"
        )


def _carry_parts(old: Path, new: Path) -> None:
    """The finished folds of an interrupted trial, for its re-run with the same values."""
    src = old / report.PARTS
    if src.exists() and not (new / report.PARTS).exists():
        shutil.copytree(src, new / report.PARTS)


def _recover(study: Any, search_dir: Path, metric: str, reporter: Reporter) -> None:
    """Trials asked but never told (the process died): tell what finished, re-ask the rest."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("stopped"):
            _tell(study, t.number, state=TrialState.PRUNED)
            continue
        path = _trial_dir(search_dir, t.number)
        state = report.read_json(path / report.STATE) if (path / report.STATE).exists() else {}
        summary_path = path / report.SUMMARY_JSON
        if state.get("status") == "finished" and summary_path.exists() and not t.user_attrs.get("stopped"):
            summary = report.read_json(summary_path)
            block = summary["metrics"][metric]
            _tell(study, t.number, headline_block(block)["mean"])
            reporter.note(f"trial {t.number}: finished before the interruption; recorded")
            continue
        # a failed trial without an "error" attribute is an interrupted one (it does not count as ended)
        _tell(study, t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        reporter.note(f"trial {t.number}: interrupted; asked again with the same values, its finished folds kept")


def _finish(
    w: TrialWork, folds: list[Fold], argv: list[str] | None, finisher: Finisher | None = None
) -> dict[str, Any]:
    """Assemble a trial's folder from its saved folds (all of them, or those run before racing stopped it).

    With a ``finisher``, the folder's plots and report page are drawn in its helper process while
    the search trains its next trials; the summary (and the value told to the sampler) is written here.
    """
    spec, prep = w.spec, w.prep
    if len(folds) < len(prep.folds):
        prep = dataclasses.replace(prep, folds=list(folds))
        repeats = len({f.repeat for f in folds})
        if spec.evaluation.mode == "repeated_kfold":
            ev = spec.evaluation.model_copy(update={"repeats": repeats})
            if repeats == 1:
                ev = ev.model_copy(update={"mode": "kfold"})
            spec = spec.model_copy(update={"evaluation": ev})
            prep.spec = spec
    return run_cv(spec, w.path, NullReporter(), argv=argv, prep=prep, finisher=finisher).summary


def _values_of(trial: Any, params: list[Param]) -> dict[str, Any]:
    """``{spec path: value}`` of an Optuna trial, as applied to the spec."""
    return {p.path: p.value_of(trial.params[p.path]) for p in params}


def _prepare_trial(
    raw_base: dict[str, Any], values: dict[str, Any], name: str, number: int, source: str | None, prep0: Prepared
) -> tuple[Spec, Prepared]:
    """Trial ``number``'s spec (the base with ``values``) and its prepared data, on the search's rows.

    Raises:
        SpecError, InputError: The values make the spec invalid.
    """
    _, spec = _trial_spec(raw_base, values, f"{name}-trial-{number}", source)
    return spec, prepare(spec, NullReporter(), data=prep0.data)


def _refinish(
    study: Any,
    search_dir: Path,
    params: list[Param],
    raw_base: dict[str, Any],
    name: str,
    source: str | None,
    prep0: Prepared,
    stages: list[list[Fold]],
    argv: list[str] | None,
    reporter: Reporter,
) -> None:
    """Trials told to the sampler whose folders were not finished (the process died while their
    plots were drawn): write their files again from their saved folds, without training."""
    from optuna.trial import TrialState

    flat = [f for st in stages for f in st]
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        path = _trial_dir(search_dir, t.number)
        state = report.read_json(path / report.STATE) if (path / report.STATE).exists() else {}
        if state.get("status") == "finished" or not (path / report.PARTS).exists():
            continue
        values = _values_of(t, params)
        spec_t, prep_t = _prepare_trial(raw_base, values, name, t.number, source, prep0)
        done = flat[: int(t.user_attrs.get("folds_run", len(flat)))]
        _finish(TrialWork(t.number, values, spec_t, prep_t, path, t), done, argv)
        reporter.note(f"trial {t.number}: its folder was not finished; written again from its saved folds")


def _finish_failed(w: TrialWork, error: str) -> None:
    writer = report.RunWriter(w.path)
    state = writer.read_state() or {"name": w.spec.name, "command": "cv"}
    state.update(status="failed", error=error, ended=report.now_iso())
    writer.write_state(state)


def _race(
    study: Any,
    live: list[TrialWork],
    search_dir: Path,
    metric: str,
    higher: bool,
    n_train: float,
    n_test: float,
    conf: float,
    stage: int,
    stages: list[list[Fold]],
) -> list[tuple[TrialWork, str]]:
    """Live trials whose score so far is worse than the best's on the same folds by a corrected interval.

    The best is the trial (finished, or live in this batch) with the best mean over the folds run
    so far; each live trial is compared with it by the Nadeau–Bengio corrected paired t-interval
    of the per-fold differences.
    """
    from optuna.trial import TrialState

    keys = [f.key for st in stages[: stage + 1] for f in st]
    cands: dict[int, dict[tuple[int, int], float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cands[t.number] = _fold_scores(_trial_dir(search_dir, t.number), metric)
    for w in live:
        cands[w.number] = _fold_scores(w.path, metric)
    usable = {n: s for n, s in cands.items() if all(k in s for k in keys)}
    if len(usable) < 2:
        return []

    def mean(n: int) -> float:
        return float(np.nanmean([usable[n][k] for k in keys]))

    best = max(usable, key=mean) if higher else min(usable, key=mean)
    out = []
    for w in live:
        if w.number == best or w.number not in usable:
            continue
        a = [usable[w.number][k] for k in keys]
        b = [usable[best][k] for k in keys]
        try:
            test = stats.corrected_paired_ttest(a, b, n_train, n_test, conf)
        except DlrunError:
            continue
        lo, hi = test.get("ci_low"), test.get("ci_high")
        if lo is None or hi is None:
            continue
        worse = hi < 0 if higher else lo > 0
        if worse:
            out.append(
                (
                    w,
                    f"after {len(keys)} of {sum(len(s) for s in stages)} folds (stage {stage + 1}): {metric} "
                    f"{test['mean_diff']:+.4f} against trial {best} ({int(round(conf * 100))}% corrected "
                    f"interval {lo:+.4f} to {hi:+.4f})",
                )
            )
    return out


# ----------------------------------------------------------------------------- outputs
def _trial_rows(study: Any, search_dir: Path, metric: str, params: list[Param]) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        path = _trial_dir(search_dir, t.number)
        row: dict[str, Any] = {"trial": t.number}
        shown = t.user_attrs.get("values") or {p.path: t.params.get(p.path) for p in params}
        for p in params:
            row[p.path] = shown.get(p.path)
        status = {"COMPLETE": "finished", "PRUNED": "stopped", "FAIL": "failed", "RUNNING": "running"}.get(
            t.state.name, t.state.name.lower()
        )
        if t.state.name == "FAIL" and "error" not in t.user_attrs:
            status = "interrupted"
        row["status"] = status
        summary_path = path / report.SUMMARY_JSON
        if summary_path.exists() and status in ("finished", "stopped"):
            s = report.read_json(summary_path)
            block = s["metrics"][metric]
            d = headline_block(block)
            row.update(
                {
                    f"{metric}_mean": d.get("mean"),
                    f"{metric}_ci_low": d.get("ci_low"),
                    f"{metric}_ci_high": d.get("ci_high"),
                    "n_folds": d.get("n"),
                    "epochs_run": int(round(s["n_models"] * s["epochs"]["mean"])),
                }
            )
        else:
            row.update(
                {
                    f"{metric}_mean": None,
                    f"{metric}_ci_low": None,
                    f"{metric}_ci_high": None,
                    "n_folds": len(_parts_of(path)) or None,
                    "epochs_run": None,
                }
            )
        row["stopped"] = t.user_attrs.get("stopped", "")
        row["error"] = t.user_attrs.get("error", "")
        if t.user_attrs.get("retry_of") is not None:
            row["error"] = (
                row["error"] + " " if row["error"] else ""
            ) + f"re-run of interrupted trial {t.user_attrs['retry_of']}"
        row["seconds"] = (
            round((t.datetime_complete - t.datetime_start).total_seconds(), 2)
            if t.datetime_complete and t.datetime_start
            else None
        )
        row["path"] = str(path.relative_to(search_dir))
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("n_folds", "epochs_run"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def _write_trials_table(study: Any, search_dir: Path, metric: str, params: list[Param]) -> pd.DataFrame:
    table = _trial_rows(study, search_dir, metric, params)
    report.write_csv(search_dir / TRIALS_CSV, table)
    return table


def holm(pvalues: list[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the order given.

    Uses the statistics issue's implementation in :mod:`dlrun.evaluation.stats` or :mod:`dlrun.compare`
    when present.
    """
    from dlrun.evaluation import compare as cmp

    for mod in (stats, cmp):
        for name in ("holm_adjust", "holm"):
            fn = getattr(mod, name, None)
            if callable(fn):
                try:
                    return [float(x) for x in fn(pvalues)]
                except Exception:  # a different signature: fall back to the few lines below
                    break
    m = len(pvalues)
    order = np.argsort(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def compare_top(
    table: pd.DataFrame,
    search_dir: Path,
    metric: str,
    higher: bool,
    top: int,
    n_train: float,
    n_test: float,
    conf: float,
) -> pd.DataFrame:
    """The best ``top`` finished trials against the best, paired on identical folds, Holm-adjusted.

    Returns:
        One row per trial: mean, difference to the best with its Nadeau–Bengio corrected interval,
        raw and Holm-adjusted p, and ``tied_with_best`` (the adjusted p is at least 1 − confidence).
    """
    col = f"{metric}_mean"
    done = table[(table["status"] == "finished") & table[col].notna()].copy()
    if done.empty:
        return pd.DataFrame()
    done = done.sort_values(col, ascending=not higher).head(top)
    best_n = int(done.iloc[0]["trial"])
    best_scores = _fold_scores(_trial_dir(search_dir, best_n), metric)
    keys = sorted(best_scores)
    rows = [
        {
            "trial": best_n,
            "mean": float(done.iloc[0][col]),
            "diff": 0.0,
            "ci_low": None,
            "ci_high": None,
            "p": None,
            "p_holm": None,
            "tied_with_best": True,
        }
    ]
    tests = []
    for _, r in done.iloc[1:].iterrows():
        n = int(r["trial"])
        sc = _fold_scores(_trial_dir(search_dir, n), metric)
        try:
            t = stats.corrected_paired_ttest(
                [sc[k] for k in keys], [best_scores[k] for k in keys], n_train, n_test, conf
            )
        except (DlrunError, KeyError):
            continue
        tests.append((n, float(r[col]), t))
    adjusted = holm([float(t["p"]) if t.get("p") is not None else 1.0 for _, _, t in tests]) if tests else []
    tied = _tied_by_compare(search_dir, [int(n) for n in done["trial"]], metric)
    for (n, m, t), p_adj in zip(tests, adjusted):
        rows.append(
            {
                "trial": n,
                "mean": m,
                "diff": t["mean_diff"],
                "ci_low": t.get("ci_low"),
                "ci_high": t.get("ci_high"),
                "p": t.get("p"),
                "p_holm": p_adj,
                "tied_with_best": (n in tied) if tied is not None else bool(p_adj >= 1 - conf),
            }
        )
    return pd.DataFrame(rows)


def _tied_by_compare(search_dir: Path, numbers: list[int], metric: str) -> set[int] | None:
    """The trials :func:`dlrun.evaluation.compare.compare` (the statistics issue's many-run comparison) cannot
    tell apart from the best, or None where that comparison is unavailable."""
    if len(numbers) < 3:
        return None
    try:
        from dlrun.evaluation import compare as cmp

        labels = [f"trial {n}" for n in numbers]
        runs = [cmp.load_run(_trial_dir(search_dir, n)) for n in numbers]
        result = cmp.compare(runs, metric, labels=labels)
        same = getattr(result, "indistinguishable", None)
    except Exception:  # an older compare without labels or the set: the Holm test here decides
        return None
    if same is None:
        return None
    return {numbers[labels.index(lab)] for lab in same if lab in labels}


def _plots(study: Any, search_dir: Path, params: list[Param], metric: str) -> list[str]:
    """Optimisation history, each parameter against the score (log axes where log), importance."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    made: list[str] = []
    plot_dir = search_dir / report.PLOTS
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return made
    # Optuna's plots switch pyplot to its own style: keep that inside, away from every later plot
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        jobs: list[tuple[str, Callable[[], Any]]] = [
            ("optimization_history", lambda: ovm.plot_optimization_history(study, target_name=metric)),
        ]
        # plot_slice draws a log axis for a log distribution by itself
        for p in params:
            jobs.append(
                (f"param_{_safe(p.path)}", functools.partial(ovm.plot_slice, study, [p.path], target_name=metric))
            )
        if len(complete) >= 2 and len(params) >= 1:
            jobs.append(("param_importance", lambda: ovm.plot_param_importances(study, target_name=metric)))
        for name, draw in jobs:
            try:
                ax = draw()
                ax0 = ax.flat[0] if isinstance(ax, np.ndarray) else ax
                fig = ax0.figure
                fig.tight_layout()
                report.save_figure(fig, plot_dir / f"{name}.png")
                made.append(name)
            except Exception:  # a plot Optuna cannot draw (too few trials, no variation) is skipped
                pass
            finally:
                plt.close("all")
    return made


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.+\-]+", "_", text).strip("_")


def _importance(study: Any) -> dict[str, float]:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # e.g. every trial had the same values
        return {}


def _write_outputs(
    study: Any,
    search_dir: Path,
    raw: dict[str, Any],
    raw_base: dict[str, Any],
    base: Spec,
    params: list[Param],
    metric: str,
    direction: str,
    n_train: float,
    n_test: float,
    conf: float,
    programs: Programs,
    models_trained: int,
    n_folds: int,
    seconds: float,
    source: str | None,
    top_n: int,
) -> SearchOutcome:
    higher = direction == "maximize"
    table = _write_trials_table(study, search_dir, metric, params)
    col = f"{metric}_mean"
    done = table[(table["status"] == "finished") & table[col].notna()] if not table.empty else table
    best: dict[str, Any] | None = None
    best_raw: dict[str, Any] | None = None
    if not done.empty:
        row = {str(k): v for k, v in done.sort_values(col, ascending=not higher).iloc[0].to_dict().items()}
        best = row
        values = {p.path: p.value_of(choice_label_value(study, int(row["trial"]), p)) for p in params}
        best_raw, _ = _trial_spec(raw_base, values, f"{base.name}_best", source)
        header = (
            f"# best trial {int(row['trial'])} of the search in {search_dir} ({metric} "
            f"{_f(row[col])}, {int(round(conf * 100))}% CI {_f(row.get(f'{metric}_ci_low'))} to "
            f"{_f(row.get(f'{metric}_ci_high'))});\n# run it with: dlrun cv {search_dir / BEST_CONFIG}\n"
        )
        report.write_text(search_dir / BEST_CONFIG, header + yaml.safe_dump(best_raw, sort_keys=False))
    top = compare_top(table, search_dir, metric, higher, top_n, n_train, n_test, conf) if not done.empty else None
    top = top if top is not None else pd.DataFrame()
    if not top.empty:
        report.write_csv(search_dir / TOP_CSV, top)
    made = _plots(study, search_dir, params, metric)
    total_full = (
        int((table["status"].isin(["finished", "stopped", "failed"])).sum()) * n_folds if not table.empty else 0
    )
    summary: dict[str, Any] = {
        "name": base.name,
        "command": "search",
        "metric": metric,
        "direction": direction,
        "confidence": conf,
        "trials": {s: int((table["status"] == s).sum()) for s in ("finished", "stopped", "failed", "interrupted")}
        if not table.empty
        else {},
        "best": _clean(best),
        "tied_with_best": [int(n) for n in top.loc[top["tied_with_best"], "trial"]] if not top.empty else [],
        "tied_method": (
            f"each of the top {len(top)} trials against the best: Nadeau–Bengio corrected paired t-test on identical "
            f"folds, Holm-adjusted over {max(0, len(top) - 1)} comparisons; tied when adjusted p >= {1 - conf:.2f}"
        ),
        "importance": _importance(study),
        "packing": programs.as_dict(),
        "models_trained": models_trained,
        "models_without_racing": total_full,
        "racing_saved": (1 - models_trained / total_full) if total_full and models_trained else 0.0,
        "seconds": round(seconds, 2),
        "plots": made,
    }
    # search.json: the state and the summary in one file. Not summary.json: `dlrun compare SEARCH_DIR`
    # must see the trials as runs, not the search folder as one
    state_path = search_dir / SEARCH_STATE
    state = report.read_json(state_path) if state_path.exists() else {}
    report.write_json(state_path, {**state, **summary})
    report.write_text(search_dir / SEARCH_MD, search_markdown(summary, table, top))
    return SearchOutcome(search_dir, table, best, best_raw, summary)


def choice_label_value(study: Any, number: int, p: Param) -> Any:
    """The value Optuna stored for parameter ``p`` of trial ``number``."""
    return study.trials[number].params[p.path]


def _clean(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def search_markdown(summary: dict[str, Any], table: pd.DataFrame, top: pd.DataFrame) -> str:
    """``search.md``: the best trial, the set tied with it, packing and racing."""
    m = summary["metric"]
    lines = [f"# {summary['name']} — search ({summary['direction']} {m})", ""]
    best = summary.get("best")
    if best:
        lines += [
            f"**Best: trial {int(best['trial'])}, {m} {_f(best[f'{m}_mean'])} "
            f"({int(round(summary['confidence'] * 100))}% CI {_f(best.get(f'{m}_ci_low'))} to "
            f"{_f(best.get(f'{m}_ci_high'))}, "
            "corrected for correlated folds).** This score is optimistic: it is the best of many; "
            "`evaluation.outer` gives an honest estimate of the search procedure.",
            "",
            f"Cannot be told apart from the best: trials {', '.join(map(str, summary['tied_with_best']))} "
            f"({summary['tied_method']}).",
            "",
        ]
    t = summary["trials"]
    pk = summary["packing"]
    lines += [
        f"Trials: {t.get('finished', 0)} finished, {t.get('stopped', 0)} stopped by racing, "
        f"{t.get('failed', 0)} failed, {t.get('interrupted', 0)} interrupted (re-run).",
        f"Programs run: {pk['programs']} for {pk['models']} models "
        f"({pk['models_per_program']['mean']:.1f} models per program, min {pk['models_per_program']['min']}, "
        f"max {pk['models_per_program']['max']}).",
        f"Models trained: {summary['models_trained']} of {summary['models_without_racing']} without racing "
        f"({summary['racing_saved']:.0%} saved).",
        "",
    ]
    stopped = table[table["status"] == "stopped"] if not table.empty else table
    if not stopped.empty:
        lines += ["Stopped by racing:", ""]
        lines += [f"- trial {int(r['trial'])}: {r['stopped']}" for _, r in stopped.iterrows()]
        lines.append("")
    if summary.get("importance"):
        lines += ["| parameter | importance (Optuna fANOVA) |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in summary["importance"].items()]
        lines.append("")
    if not top.empty:
        lines += [
            "| trial | mean | diff to best | CI low | CI high | p | p (Holm) | tied |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, r in top.iterrows():
            lines.append(
                f"| {int(r['trial'])} | {r['mean']:.4f} | {r['diff']:+.4f} | {_f(r['ci_low'])} | {_f(r['ci_high'])} | "
                f"{_f(r['p'])} | {_f(r['p_holm'])} | {'yes' if r['tied_with_best'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def _f(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4f}"


# ----------------------------------------------------------------------------- nested cross-validation
def _subset(data: Dataset, rows: np.ndarray) -> Dataset:
    x = data.X.iloc[rows].reset_index(drop=True) if isinstance(data.X, pd.DataFrame) else data.X[rows]
    return dataclasses.replace(data, X=x, y=data.y.iloc[rows].reset_index(drop=True), task_inferred=False)


def run_nested(
    raw: dict[str, Any],
    out_dir: Path,
    reporter: Reporter | None = None,
    *,
    source: str | None = None,
    argv: list[str] | None = None,
    **search_kw: Any,
) -> dict[str, Any]:
    """Nested cross-validation of the search procedure (``evaluation.outer``).

    For each outer fold: the whole search on the outer training part (``outer/r0_f1/``), the
    chosen config refitted on that part and scored on the outer test part. The outer scores form
    a cross-validation run of their own (``outer/refit``) whose corrected (headline) interval is
    the honest estimate; the inner best scores are optimistic, and their gap is reported.

    Returns:
        The content of ``nested.json``.
    """
    reporter = reporter or NullReporter()
    full, base, settings, _ = _search_settings(raw, source)
    outer = full.evaluation.outer
    assert outer is not None
    prep_full = prepare(base, reporter)
    labels = prep_full.data.y.iloc[:, 0].to_numpy() if prep_full.classes is not None else None
    outer_ev = EvaluationSpec(
        mode="repeated_kfold" if outer.repeats > 1 else "kfold",
        folds=outer.folds,
        repeats=outer.repeats,
        stratify=base.evaluation.stratify,
        confidence=base.evaluation.confidence,
        metrics=base.evaluation.metrics,
        split_seed=base.evaluation.split_seed,
    )
    outer_folds = make_folds(outer_ev, len(prep_full.data.y), labels, prep_full.task, full.seed)
    metric = prep_full.main_metric
    refit_dir = out_dir / "outer" / "refit"
    writer = report.RunWriter(refit_dir)
    done = _parts_of(refit_dir)
    rows = []
    inner_raw = {k: v for k, v in raw.items()}
    n_inner = int(search_kw.get("trials") or settings.trials)
    helpers = Finisher() if n_inner >= HELPER_MIN_TRIALS else None  # one set for every inner search
    with helpers if helpers is not None else contextlib.nullcontext(None) as finisher:
        for of in outer_folds:
            tag = f"r{of.repeat}_f{of.fold}"
            reporter.note(f"outer fold {tag}: search on {len(of.train)} rows, test on {len(of.test)}")
            try:
                outcome = run_search(
                    inner_raw,
                    out_dir / "outer" / tag,
                    reporter,
                    source=source,
                    data=_subset(prep_full.data, of.train),
                    argv=argv,
                    finisher=finisher,
                    **search_kw,
                )
            except Interrupted:
                raise Interrupted(
                    f"nested search interrupted in outer fold {tag}; resume with: "
                    f"dlrun search {source or 'CONFIG'} --resume --out {out_dir}"
                ) from None
            if outcome.best_raw is None:
                raise RunError(f"outer fold {tag}: no trial of the inner search finished")
            best_spec = validate(outcome.best_raw, source=source)
            if of.key not in done:
                prep_b = prepare(best_spec, NullReporter(), data=prep_full.data)
                refit_fold = Fold(of.repeat, of.fold, of.seed, of.train, np.array([], dtype=int), of.test)
                prep_b = dataclasses.replace(prep_b, folds=[refit_fold])
                for key, part, _ in fit_folds(prep_b, [refit_fold], reporter):
                    part["scores"]["inner_trial"] = int(outcome.best["trial"]) if outcome.best else None
                    writer.write_part(key[0], key[1], part)
                done = _parts_of(refit_dir)
            best = outcome.best or {}
            rows.append(
                {
                    "repeat": of.repeat,
                    "fold": of.fold,
                    "inner_trial": best.get("trial"),
                    "inner_best": best.get(f"{metric}_mean"),
                    "outer_score": done[of.key]["scores"].get(metric),
                    **{f"value:{k}": v for k, v in best.items() if k in settings.space},
                }
            )
    spec_outer = base.model_copy(update={"evaluation": outer_ev, "name": f"{base.name}_outer"})
    prep_outer = dataclasses.replace(prep_full, spec=spec_outer, folds=outer_folds)
    outer_summary = run_cv(spec_outer, refit_dir, NullReporter(), argv=argv, prep=prep_outer).summary
    block = outer_summary["metrics"][metric]
    est = headline_block(block)
    table = pd.DataFrame(rows)
    report.write_csv(out_dir / NESTED_CSV, table)
    inner_mean = float(pd.to_numeric(table["inner_best"], errors="coerce").mean())
    nested = {
        "name": base.name,
        "command": "search",
        "nested": True,
        "metric": metric,
        "confidence": base.evaluation.confidence,
        "outer": {"folds": outer.folds, "repeats": outer.repeats, "estimate": est, "text": block["headline_text"]},
        "inner_best_mean": inner_mean,
        "gap": inner_mean - float(est["mean"]),
        "text": (
            f"honest estimate of the search procedure: {block['headline_text']}; the inner searches' best "
            f"scores average {inner_mean:.4f} (optimistic: each is the best of many trials on its own rows); "
            f"gap {inner_mean - float(est['mean']):+.4f}"
        ),
        "per_outer_fold": table.to_dict(orient="records"),
    }
    report.write_json(out_dir / NESTED_JSON, nested)
    report.write_text(out_dir / NESTED_MD, nested_markdown(nested))
    return nested


def nested_markdown(nested: dict[str, Any]) -> str:
    """``nested.md``: the outer estimate, the inner best and the gap, per outer fold."""
    m = nested["metric"]
    est = nested["outer"]["estimate"]
    lines = [
        f"# {nested['name']} — nested cross-validation of the search",
        "",
        f"**{nested['text']}**",
        "",
        "| | value |",
        "|---|---|",
        f"| outer estimate ({m}) | {est['mean']:.4f} [{_f(est.get('ci_low'))}, {_f(est.get('ci_high'))}] |",
        f"| inner best, mean over outer folds | {nested['inner_best_mean']:.4f} |",
        f"| gap (inner − outer) | {nested['gap']:+.4f} |",
        "",
        f"Method: {est.get('method', '')}",
        "",
        "| repeat | fold | chosen trial | inner best | outer score |",
        "|---|---|---|---|---|",
    ]
    for r in nested["per_outer_fold"]:
        lines.append(
            f"| {r['repeat']} | {r['fold']} | {r['inner_trial']} | {_f(r['inner_best'])} | {_f(r['outer_score'])} |"
        )
    return "\n".join(lines) + "\n"
