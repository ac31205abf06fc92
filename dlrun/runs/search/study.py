"""The study of a search: Optuna's journal in the search folder, its recovery after a crash, and telling.

The study lives in ``optuna.journal``, an append-only Optuna journal (``JournalFileBackend``): every
ask, report and tell is one appended, flushed record under a file lock, so a killed search loses
nothing it had told. A trial asked but not told when the process died is marked failed and asked
again with the same values, keeping its finished folds (:func:`recover`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.engines import choose_engine, make_engine
from dlrun.errors import InputError
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.fitting import size_stubs
from dlrun.protocol.jobs import Prepared, prepare
from dlrun.protocol.splits import Fold
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.cv import run_cv
from dlrun.runs.finish import Finisher
from dlrun.runs.packing import TrialWork, parts_of
from dlrun.spec.schema import SearchSpec, Spec, validate
from dlrun.spec.search_space import Param, base_raw, parse_space, set_value
from dlrun.store import io as report
from dlrun.store.layout import JOURNAL, PART_GLOB, SEARCH_STATE, TRIALS_DIR
from dlrun.store.runs_folder import RunsFolder

STUDY = "dlrun"


def search_settings(raw: dict[str, Any], source: str | None) -> tuple[Spec, Spec, SearchSpec, list[Param]]:
    full = validate(raw, source=source)
    if full.search is None:
        raise InputError("a search needs a search section in the spec (dotted.path: {type: float, low: .., high: ..})")
    base = validate(base_raw(raw), source=source)
    return full, base, full.search, parse_space(full.search.space)


def make_sampler(settings: SearchSpec, params: list[Param], seed: int) -> Any:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler({p.path: p.grid() for p in params}, seed=seed)
    # constant_liar: trials asked together in a batch are kept apart
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)


def open_study(search_dir: Path, settings: SearchSpec, params: list[Param], seed: int, direction: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    repair_journal(search_dir / JOURNAL)
    storage = JournalStorage(JournalFileBackend(str(search_dir / JOURNAL)))
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        sampler=make_sampler(settings, params, seed),
        direction="maximize" if direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    n = len(study.get_trials(deepcopy=False))
    if n:
        # a resumed search must not replay the random draws of its first session: a seed of its own
        study.sampler = make_sampler(settings, params, int(np.random.SeedSequence([seed, n]).generate_state(1)[0]))
    return study


def repair_journal(path: Path) -> None:
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


def trial_dir(search_dir: Path, number: int) -> Path:
    return search_dir / TRIALS_DIR / f"trial_{number:04d}"


def fold_scores(path: Path, metric: str) -> dict[tuple[int, int], float]:
    """``{(repeat, fold): score}`` of a trial: its saved folds, or its ``scores.csv`` once assembled."""
    parts = parts_of(path)
    if not parts and (path / report.SCORES).exists():
        df = pd.read_csv(path / report.SCORES)
        return {(int(r), int(f)): float(v) for r, f, v in zip(df["repeat"], df["fold"], df[metric])}
    return {k: float(p["scores"].get(metric, float("nan"))) for k, p in parts.items()}


def tell(study: Any, trial: Any, value: float | None = None, state: Any = None) -> None:
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


def trial_spec(raw_base: dict[str, Any], values: dict[str, Any], name: str, source: str | None) -> tuple[dict, Spec]:
    raw = raw_base
    for path, v in values.items():
        raw = set_value(raw, path, v)
    raw = {**raw, "name": name}
    return raw, validate(raw, source=source)


def open_search_folder(
    search_dir: Path, base: Spec, space: dict[str, Any], params: list[Param], prep: Prepared, reporter: Reporter
) -> RunsFolder:
    """Make or reclaim a search folder (the caller holds its lock): the same spec as it recorded,
    the same search, no temporary file a killed process left anywhere under it, and a
    ``search.json`` rebuilt from the journal when it is damaged.

    Raises:
        FingerprintMismatch: The search was started with another spec (naming the changed fields).
        InputError: It holds a search with another search section.
    """
    folder = RunsFolder(search_dir, "search")
    search_dir.mkdir(parents=True, exist_ok=True)
    folder.check_spec(base, reporter.note)
    folder.clear_temporaries()
    had = (search_dir / SEARCH_STATE).exists()
    old = folder.read_status(SEARCH_STATE, reporter.note)
    if had and not old:  # damaged, moved aside: the journal holds the whole study
        folder.write_status(SEARCH_STATE, rebuilt_status(search_dir, base, space, params))
    else:
        check_same_search(old, space, search_dir, prep)
    return folder


def rebuilt_status(search_dir: Path, base: Spec, space: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """``search.json`` from ``optuna.journal``: the journal's trials must have searched this space.

    Raises:
        InputError: The journal's trials searched other parameters.
    """
    trials: list[Any] = []
    if (search_dir / JOURNAL).exists():
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        repair_journal(search_dir / JOURNAL)
        storage = JournalStorage(JournalFileBackend(str(search_dir / JOURNAL)))
        with contextlib.suppress(KeyError):
            trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
    wanted = {p.path: p.distribution() for p in params}
    for t in trials:
        if any(name not in wanted or d != wanted[name] for name, d in t.distributions.items()):
            raise InputError(
                f"{search_dir} holds a search with another search section (its journal); resume it with the same "
                "config (the parameters and direction must match) or choose another --out"
            )
    return {
        "name": base.name,
        "status": "interrupted",
        "space": space,
        "programs_models": [],
        "models_trained": int(sum(int(t.user_attrs.get("folds_run", 0) or 0) for t in trials)),
        "rebuilt_from": JOURNAL,
        "updated": report.now_iso(),
    }


def check_same_search(old: dict[str, Any], space: dict[str, Any], search_dir: Path, prep: Prepared) -> None:
    """A journal continued with another search space or other folds would mix two searches."""
    if not old:
        return
    free = ("trials", "batch", "racing", "racing_stages", "sampler", "seed", "top")  # how, not what, is searched
    old_space = {k: v for k, v in (old.get("space") or {}).items() if k not in free}
    new_space = {k: v for k, v in space.items() if k not in free}
    if json.dumps(old_space, sort_keys=True, default=str) != json.dumps(new_space, sort_keys=True, default=str):
        raise InputError(
            f"{search_dir} holds a search with another search section; resume it with the same config "
            "(the parameters and direction must match; trials, sampler, batch and racing may change) "
            "or choose another --out"
        )


def carry_parts(old: Path, new: Path) -> None:
    """The finished folds of an interrupted trial, for its re-run with the same values (only the
    sealed part files: one :func:`recover` found damaged was moved aside and stays there)."""
    src = old / report.PARTS
    if src.exists() and not (new / report.PARTS).exists():
        (new / report.PARTS).mkdir(parents=True)
        for p in sorted(src.glob(PART_GLOB)):
            shutil.copy2(p, new / report.PARTS / p.name)


def recover(study: Any, search_dir: Path, metric: str, reporter: Reporter, argv: list[str] | None = None) -> None:
    """Trials asked but never told (the process died): tell what finished, re-ask the rest."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("stopped"):
            tell(study, t.number, state=TrialState.PRUNED)
            continue
        path = trial_dir(search_dir, t.number)
        state = RunsFolder.run_state(path)
        summary_path = path / report.SUMMARY_JSON
        if state.get("status") == "finished" and summary_path.exists() and not t.user_attrs.get("stopped"):
            summary = report.read_json(summary_path)
            block = summary["metrics"][metric]
            tell(study, t.number, headline_block(block)["mean"])
            reporter.note(f"trial {t.number}: finished before the interruption; recorded")
            continue
        # a failed trial without an "error" attribute is an interrupted one (it does not count as ended)
        parts_of(path, reporter.note)  # a damaged part is moved aside and named here, never carried over
        tell(study, t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        RunsFolder(search_dir, "search").mark_abandoned(
            path, "interrupted; re-run as a new trial with its saved folds", argv
        )
        reporter.note(f"trial {t.number}: interrupted; asked again with the same values, its finished folds kept")


def values_of(trial: Any, params: list[Param]) -> dict[str, Any]:
    """``{spec path: value}`` of an Optuna trial, as applied to the spec."""
    return {p.path: p.value_of(trial.params[p.path]) for p in params}


def prepare_trial(
    raw_base: dict[str, Any], values: dict[str, Any], name: str, number: int, source: str | None, prep0: Prepared
) -> tuple[Spec, Prepared]:
    """Trial ``number``'s spec (the base with ``values``) and its prepared data, on the search's rows.

    Raises:
        SpecError, InputError: The values make the spec invalid.
    """
    _, spec = trial_spec(raw_base, values, f"{name}-trial-{number}", source)
    return spec, prepare(spec, NullReporter(), data=prep0.data)


def finish_trial(
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


def refinish(
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
        path = trial_dir(search_dir, t.number)
        state = RunsFolder.run_state(path)
        if state.get("status") == "finished" or not (path / report.PARTS).exists():
            continue
        parts_of(path, reporter.note)  # a damaged part is named here (it trains again)
        values = values_of(t, params)
        spec_t, prep_t = prepare_trial(raw_base, values, name, t.number, source, prep0)
        done = flat[: int(t.user_attrs.get("folds_run", len(flat)))]
        finish_trial(TrialWork(t.number, values, spec_t, prep_t, path, t), done, argv)
        reporter.note(f"trial {t.number}: its folder was not finished; written again from its saved folds")


def default_batch_size(base: Spec, prep: Prepared, n_trials: int) -> int:
    """As many trials as fit the memory budget with all their folds, at most 8.

    One when the engine cannot train several trials in one program: batching would then only
    make the sampler less adaptive (it proposes a batch before hearing back from any of it).
    """
    try:
        choice = choose_engine(base, prep.task)
        if not choice.shares_programs:
            return 1
        engine = make_engine(choice.name, base, prep.task, prep.input_shape, prep.n_outputs)
        per = engine.models_per_chunk(size_stubs(prep.folds, test=False))
    except Exception:  # the estimate is a convenience; any failure means one trial at a time
        return 1
    return int(max(1, min(8, n_trials, per // max(1, len(prep.folds)))))
