"""``dlrun search``: the optimize loop (ask a batch, train it raced, tell), in the spirit of Optuna's ``_optimize``.

Optuna proposes values through its ask-and-tell interface; each trial is the config's own
cross-validation with the trial's values, in its own run folder (``trials/trial_0007``, the same
files as a ``dlrun cv`` run). The study lives in ``optuna.journal`` in the search folder, an
append-only Optuna journal (``JournalFileBackend``): every ask, report and tell is one appended,
flushed record under a file lock, so a killed search loses nothing it had told, and ``--resume``
continues with the next trial. A trial that was asked but not told when the process died is
marked failed in the study and asked again with the same values, keeping its finished folds.

Trials are asked in batches (``search.batch``) and their folds trained by :func:`train_trials`:
trials that differ only in per-model hyperparameters (the engines' ``share_groups``)
train with all their folds in one engine call (``fit_many``; a dropout rate, a learning rate
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
import time
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.sources import Dataset
from dlrun.engines.runtime import setup
from dlrun.errors import InputError, Interrupted, SpecError
from dlrun.evaluation.scoring import HIGHER_IS_BETTER
from dlrun.protocol.jobs import prepare
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.finish import Finisher
from dlrun.runs.packing import Programs, TrialWork, finish_failed, parts_of, train_trials
from dlrun.runs.search.dashboard import best_so_far, set_study_attrs, set_trial_attrs
from dlrun.runs.search.outputs import SearchOutcome, values_text, write_outputs, write_trials_table
from dlrun.runs.search.racing import race, stages_of
from dlrun.runs.search.study import (
    carry_parts,
    default_batch_size,
    finish_trial,
    fold_scores,
    open_search_folder,
    open_study,
    prepare_trial,
    recover,
    refinish,
    search_settings,
    tell,
    trial_dir,
    values_of,
)
from dlrun.spec.search_space import base_raw, choice_label
from dlrun.store import io as report
from dlrun.store.layout import SEARCH_STATE
from dlrun.store.runs_folder import RunsFolder

# Searches of this many trials draw their trials' plots in helper processes (Finisher): starting
# a helper costs about 1.6 s of CPU, a trial's plots about 0.7 s.
HELPER_MIN_TRIALS = 10


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
    full, base, settings, params = search_settings(raw, source)
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
    open_search_folder(search_dir, base, raw.get("search", {}), params, prep0, reporter)
    study = open_study(search_dir, settings, params, seed, direction)
    set_study_attrs(study, search_dir, base.name, metric, argv)
    distributions = {p.path: p.distribution() for p in params}
    raw_base = base_raw(raw)
    folds = prep0.folds
    n_train = float(np.mean([len(f.train) + len(f.val) for f in folds]))
    n_test = float(np.mean([len(f.test) for f in folds]))
    conf = base.evaluation.confidence
    stages = stages_of(folds, settings)
    programs = Programs()
    folder = RunsFolder(search_dir, "search", source)
    previous = folder.read_status(SEARCH_STATE)
    for m in previous.get("programs_models", []):
        programs.models.append(int(m))
    models_trained = int(previous.get("models_trained", 0))

    recover(study, search_dir, metric, reporter, argv)
    if settings.batch is None:
        setup(base.runtime)  # the backend, before the engine's memory estimate imports Keras
    default_batch = settings.batch or default_batch_size(base, prep0, n_trials)
    t_start = time.perf_counter()

    def ended() -> list[Any]:
        return [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        ]

    def save_state(status: str) -> None:
        folder.write_status(
            SEARCH_STATE,
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
        refinish(study, search_dir, params, raw_base, base.name, source, prep0, stages, argv, reporter)
        own = Finisher() if finisher is None and n_trials >= HELPER_MIN_TRIALS else None
        with own if own is not None else contextlib.nullcontext(finisher) as fin:
            while len(ended()) < n_trials:
                k = min(default_batch, n_trials - len(ended()))
                works: list[TrialWork] = []
                for _ in range(k):
                    trial = study.ask(distributions)
                    values = values_of(trial, params)
                    trial.set_user_attr("values", {p: choice_label(v) for p, v in values.items()})
                    path = trial_dir(search_dir, trial.number)
                    retry_of = trial.user_attrs.get("retry_of")
                    if retry_of is not None:
                        carry_parts(trial_dir(search_dir, int(retry_of)), path)
                    try:
                        spec_t, prep_t = prepare_trial(raw_base, values, base.name, trial.number, source, prep0)
                    except (SpecError, InputError) as exc:
                        trial.set_user_attr("error", " ".join(str(exc).split()))
                        tell(study, trial, state=TrialState.FAIL)
                        reporter.note(f"trial {trial.number}: invalid values: {' '.join(str(exc).split())}")
                        continue
                    works.append(TrialWork(trial.number, values, spec_t, prep_t, path, trial))
                reporter.note(
                    f"trials {', '.join(str(w.number) for w in works)} ({len(ended()) + len(works)}/{n_trials}): "
                    + "; ".join(values_text(w.values) for w in works)
                )
                live = list(works)
                stopped: dict[int, str] = {}
                for s in range(len(stages)):
                    if not live:
                        break
                    before = {w.number: len(parts_of(w.path)) for w in live}
                    upto = [f for st in stages[: s + 1] for f in st]
                    errors = train_trials(live, upto, reporter, programs, argv)
                    models_trained += sum(len(parts_of(w.path)) - before[w.number] for w in live)
                    for w in list(live):
                        if w.number in errors:
                            w.trial.set_user_attr("error", errors[w.number])
                            finish_failed(w, errors[w.number])
                            tell(study, w.trial, state=TrialState.FAIL)
                            reporter.note(f"trial {w.number}: failed: {errors[w.number]}")
                            live.remove(w)
                    if s < len(stages) - 1 and live:
                        for w in live:
                            sc = list(fold_scores(w.path, metric).values())
                            w.trial.report(float(np.nanmean(sc)), step=s)
                        for w, why in race(study, live, search_dir, metric, higher, n_train, n_test, conf, s, stages):
                            stopped[w.number] = why
                            live.remove(w)
                            done_folds = [f for st in stages[: s + 1] for f in st]
                            # recorded first: a search killed before the tell below knows this trial was stopped
                            w.trial.set_user_attr("stopped", why)
                            w.trial.set_user_attr("folds_run", len(done_folds))
                            set_trial_attrs(w.trial, w.path, finish_trial(w, done_folds, argv, fin))
                            tell(study, w.trial, state=TrialState.PRUNED)
                            reporter.note(f"trial {w.number}: stopped: {why}")
                for w in live:
                    summary = finish_trial(w, folds, argv, fin)
                    value = summary["metrics"][metric][summary["metrics"][metric]["headline"]]["mean"]
                    w.trial.set_user_attr("folds_run", len(folds))
                    set_trial_attrs(w.trial, w.path, summary)
                    tell(study, w.trial, value)
                    reporter.note(f"trial {w.number}: {summary['headline']['text']}")
                save_state("running")
                write_trials_table(study, search_dir, metric, params)
                reporter.step(len(ended()), n_trials, "trials", best_so_far(study, metric))
            if fin is not None:
                fin.wait()  # every trial folder complete before the search's own outputs
    except (KeyboardInterrupt, Interrupted):
        save_state("interrupted")
        write_trials_table(study, search_dir, metric, params)
        raise folder.interrupted(argv) from None
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: the state says what the exit code says
            save_state("failed")
        raise
    with folder.ending(SEARCH_STATE, argv):  # finished only once every output is written
        outcome = write_outputs(
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
    return outcome
