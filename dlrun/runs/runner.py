"""Orchestration of ``dlrun train`` and ``dlrun cv``: data → folds → engine → scores → files.

Training returns data; :mod:`dlrun.store.io` writes it. Each finished fold is saved at
once as a part file, so a killed run loses at most the folds in flight and
``--resume`` continues where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.data.preprocessing import Preprocessor
from dlrun.data.sources import Dataset, load_dataset
from dlrun.engines.base import Engine, FitJob, FitResult
from dlrun.engines.keras_build import default_eval_metrics
from dlrun.errors import DlrunError, InputError, Interrupted, RunError, SpecError
from dlrun.evaluation import stats
from dlrun.evaluation.scoring import HIGHER_IS_BETTER, baseline_name, baseline_scores, check_metrics, score
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.splits import Fold, concrete_repeats, make_folds, splits_digest
from dlrun.reporting import NullReporter, Reporter
from dlrun.reporting import fmt_value as _fmt
from dlrun.runs import lifecycle
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import io as report

if TYPE_CHECKING:
    from dlrun.execution.executors import Executor

#: A ``dlrun cv`` run of this many model-epochs or more draws its learning curves in a helper
#: process. Below it, starting one costs more than it saves: Sonar 30×10×300 (90,000) spends about
#: 2 s on its plots and tables at the end; a 10-fold 300-epoch run (3,000) about 1 s.
PLOT_HELPER_MIN_EPOCHS = 20_000


# ----------------------------------------------------------------------------- preparation
@dataclass
class Prepared:
    """A loaded dataset with its task, classes, folds and metrics.

    Attributes:
        spec: The validated spec.
        data: The dataset (original values).
        task: The resolved task.
        classes: Sorted original class labels (from all rows: every fold's model gets the same outputs).
        folds: Every fold of the run.
        metrics: Held-out metrics (scikit-learn names).
    """

    spec: Spec
    data: Dataset
    task: str
    classes: np.ndarray | None
    folds: list[Fold]
    metrics: list[str]
    input_shape: tuple[int, ...] = ()
    n_outputs: int = 1

    @property
    def main_metric(self) -> str:
        """The metric the headline and comparisons use: the first of ``metrics``."""
        return self.metrics[0]


def prepare(spec: Spec, reporter: Reporter | None = None, data: Dataset | None = None) -> Prepared:
    """Load the data (unless given), resolve the task and make the folds (no TensorFlow needed)."""
    reporter = reporter or NullReporter()
    data = data if data is not None else load_dataset(spec.data, seed=spec.seed)
    task = data.task
    if data.task_inferred:
        reporter.note(f"task: {task} (inferred from the target; set data.task to override)")
    classes = None
    labels = None
    if task in ("binary", "multiclass"):
        labels = data.y.iloc[:, 0].to_numpy()
        classes = np.unique(labels)
    metrics = spec.evaluation.metrics or default_eval_metrics(task)
    check_metrics(metrics, task)
    from dlrun.data.sources import check_usable

    loss = spec.compile.loss_entry
    check_usable(data, impute=spec.preprocessing.impute, loss=loss[0] if loss else None, task=task)
    try:
        if getattr(spec.evaluation, "test_rows", "split") == "source" and data.test_rows is not None:
            from dlrun.protocol.splits import source_test_fold

            folds = [source_test_fold(spec.evaluation, len(data.y), data.test_rows, labels, task, spec.seed)]
        else:
            folds = make_folds(spec.evaluation, len(data.y), labels, task, spec.seed)
    except ValueError as exc:  # scikit-learn's splitters: too few rows for the classes or folds asked
        ev = spec.evaluation
        field = "evaluation.folds" if ev.mode in ("kfold", "repeated_kfold") else "evaluation.test_size"
        value = ev.folds if field == "evaluation.folds" else ev.test_size
        raise SpecError(
            [
                (
                    field,
                    f"{value} does not fit {len(data.y)} rows: {' '.join(str(exc).split())}; change it, or set "
                    "evaluation.stratify: false",
                )
            ]
        ) from None
    prep = Prepared(spec, data, task, classes, folds, list(metrics))
    probe = Preprocessor(spec.preprocessing, task).fit(
        _take(data.X, folds[0].train[:50]), data.y.iloc[folds[0].train[:50]], classes=classes
    )
    prep.input_shape = tuple(probe.input_shape)
    prep.n_outputs = int(probe.n_outputs)
    return prep


def _take(x: Any, idx: np.ndarray) -> Any:
    return x.iloc[idx] if isinstance(x, pd.DataFrame) else x[idx]


def _class_weight(spec: Spec, y_codes: np.ndarray, classes: np.ndarray | None) -> dict[int, float] | None:
    cw = spec.training.class_weight
    if cw is None or classes is None:
        return None
    if cw == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y_codes)
        w = compute_class_weight("balanced", classes=present, y=y_codes)
        return {int(c): float(v) for c, v in zip(present, w)}
    out: dict[int, float] = {}
    names = [str(c) for c in classes]
    for key, val in cw.items():
        if str(key) in names:
            out[names.index(str(key))] = float(val)
        elif isinstance(key, int) and 0 <= key < len(classes):
            out[key] = float(val)
        else:
            raise InputError(
                f"training.class_weight keys must be class labels ({', '.join(names)}) or codes 0..{len(classes) - 1}, "
                f"got {key!r}"
            )
    return out


def _codes(y: pd.DataFrame, classes: np.ndarray | None) -> np.ndarray:
    if classes is None:
        return np.zeros(len(y), dtype=int)
    return np.searchsorted(classes, y.iloc[:, 0].to_numpy())


def make_job(prep: Prepared, fold: Fold) -> tuple[FitJob, Preprocessor]:
    """Preprocess one fold (fit on its training rows only) into a :class:`FitJob`."""
    spec, data = prep.spec, prep.data
    x_tr, y_tr = _take(data.X, fold.train), data.y.iloc[fold.train]
    pre = Preprocessor(spec.preprocessing, prep.task).fit(x_tr, y_tr, classes=prep.classes)
    job = FitJob(
        repeat=fold.repeat,
        fold=fold.fold,
        seed=fold.seed,
        x_train=pre.transform_x(x_tr),
        y_train=pre.transform_y(y_tr),
        class_weight=_class_weight(spec, _codes(y_tr, prep.classes), prep.classes),
    )
    val_rows = fold.val if len(fold.val) else (fold.test if spec.evaluation.mode == "validation_split" else fold.val)
    if len(val_rows):
        job.x_val = pre.transform_x(_take(data.X, val_rows))
        job.y_val = pre.transform_y(data.y.iloc[val_rows])
    if len(fold.test):
        job.x_test = pre.transform_x(_take(data.X, fold.test))
        job.y_test = pre.transform_y(data.y.iloc[fold.test])
    return job, pre


def _truth(y: pd.DataFrame) -> np.ndarray:
    arr = y.to_numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr


def score_fold(prep: Prepared, fold: Fold, pre: Preprocessor, result: FitResult) -> dict[str, Any]:
    """Turn one trained fold into its part: scores, baseline, history and predictions."""
    data, metrics = prep.data, prep.metrics
    row: dict[str, Any] = {
        "repeat": fold.repeat,
        "fold": fold.fold,
        "seed": fold.seed,
        "n_train": len(fold.train),
        "n_val": len(fold.val),
        "n_test": len(fold.test),
        "epochs": result.epochs_run,
        "seconds": round(result.seconds, 4),
        "engine": result.engine,
    }
    pred_df = None
    if result.test_pred is not None and len(fold.test):
        y_te = data.y.iloc[fold.test]
        pred, proba = pre.decode(result.test_pred)
        row.update(score(prep.task, _truth(y_te), pred, proba, metrics, prep.classes))
        base = baseline_scores(prep.task, data.y.iloc[fold.train], y_te, metrics, prep.classes)
        row.update({f"baseline_{k}": v for k, v in base.items()})
        pred_df = predictions_frame(prep, fold.test, y_te, pred, proba, lead={"repeat": fold.repeat, "fold": fold.fold})
    tr_pred, tr_proba = pre.decode(result.train_pred)
    train_scores = score(prep.task, _truth(data.y.iloc[fold.train]), tr_pred, tr_proba, metrics, prep.classes)
    row.update({f"train_{k}": v for k, v in train_scores.items()})
    n_hist = len(next(iter(result.history.values()), []))
    first = result.epochs_run - n_hist + 1
    # one constructor call: DataFrame.insert cost more than the scoring for hundreds of folds
    hist = pd.DataFrame(
        {
            "repeat": np.full(n_hist, fold.repeat),
            "fold": np.full(n_hist, fold.fold),
            "epoch": np.arange(first, first + n_hist),
            **result.history,
        }
    )
    return {"repeat": fold.repeat, "fold": fold.fold, "scores": row, "history": hist, "predictions": pred_df}


def predictions_frame(
    prep: Prepared,
    rows: np.ndarray,
    y_true: pd.DataFrame,
    pred: np.ndarray,
    proba: np.ndarray | None,
    lead: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Held-out rows with true and predicted values (labels in their original form).

    ``lead`` columns (e.g. repeat and fold), constant over the rows, come first.
    """
    cols: dict[str, Any] = {k: np.full(len(rows), v) for k, v in (lead or {}).items()}
    cols["row"] = rows
    names = prep.data.target_names
    pred2 = pred.reshape(len(rows), -1)
    for j, name in enumerate(names):
        cols[f"true_{name}" if len(names) > 1 else "true"] = y_true.iloc[:, j].to_numpy()
        cols[f"pred_{name}" if len(names) > 1 else "pred"] = pred2[:, j]
    if proba is not None and prep.classes is not None:
        for j, c in enumerate(prep.classes):
            cols[f"proba_{c}"] = proba[:, j]
    return pd.DataFrame(cols)


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


# ----------------------------------------------------------------------------- stop signals
class _StopSignals:
    """Turn SIGTERM into KeyboardInterrupt while a run trains, so state is saved and marked.

    A no-op where :func:`dlrun.runs.lifecycle.install_signal_handlers` is in effect (the CLI): there
    both signals set a flag that the run checks at safe points, for the whole command.
    """

    def __enter__(self) -> _StopSignals:
        self.old = None
        if lifecycle.handlers_installed():
            return self
        self.old = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread
            self.old = None
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


StopSignals = _StopSignals
"""The public name of the stop-signal guard (sweeps and batches hold it around their jobs)."""


# ----------------------------------------------------------------------------- run bookkeeping
@dataclass
class RunOutcome:
    """What a finished run produced (also written to its directory).

    Attributes:
        path: The run directory.
        summary: The content of ``summary.json``.
        engine: The engine that trained.
    """

    path: Path
    summary: dict[str, Any]
    engine: str
    notes: list[str] = field(default_factory=list)


def _env(spec: Spec, device: dict[str, Any], argv: list[str] | None) -> dict[str, Any]:
    from dlrun.engines.runtime import versions

    return {**versions(), "device": device, "seed": spec.seed, "command": argv or sys.argv, "time": report.now_iso()}


def _starting(spec: Spec, writer: report.RunWriter, command: str, argv: list[str] | None) -> dict[str, Any]:
    """Mark the run ``running`` (phase ``starting``) before anything slow, so that a run killed or
    stopped during start-up is visible to ``status`` and ``clean``. Keeps the first start time.
    Returns the new state, with the previous one under the key ``"previous"`` (not written)."""
    old = writer.read_state()
    state = {
        "name": spec.name,
        "command": command,
        "mode": spec.evaluation.mode,
        "status": "running",
        "phase": "starting",
        "started": (old or {}).get("started") or report.now_iso(),
        "resumed": old is not None,
        "total_models": int((old or {}).get("total_models", 0) or 0),
        "finished_models": 0,
        "epochs": spec.training.epochs,
        "resume_command": lifecycle.resume_command(argv, writer.path, command),
    }
    if old and old.get("engine"):
        state["engine"] = old["engine"]  # which engine trained the saved folds: resume keeps it
    writer.write_state(state)
    return {**state, "previous": old or {}}


def _public(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "previous"}


def _begin(
    spec: Spec,
    writer: report.RunWriter,
    command: str,
    total: int,
    argv: list[str] | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Set up the device, write config.yaml and env.json, mark the run ``running`` with ``total`` models.

    Args:
        state: The state :func:`_starting` returned, updated in place; None reads the folder's own.
    """
    from dlrun.engines.runtime import setup

    device = setup(spec.runtime)
    if lifecycle.stop_requested():  # setup imports the backend: seconds in which a signal may arrive
        st = state if state is not None else (writer.read_state() or {})
        _fail(writer, st, Interrupted("stopped"))
        raise Interrupted(interrupted_message(st, writer.path, argv, command))
    writer.write_config(resolved_dict(spec))
    writer.write_env(_env(spec, device, argv))
    if state is None:
        old = writer.read_state() or {}
        state = {
            "name": spec.name,
            "command": command,
            "mode": spec.evaluation.mode,
            "started": old.get("started", report.now_iso()),
            "resumed": bool(old.get("resumed")) if old.get("phase") == "starting" else bool(old),
            "epochs": spec.training.epochs,
            "resume_command": lifecycle.resume_command(argv, writer.path, command),
        }
    state.update(status="running", phase="training", total_models=total, finished_models=0, device=device["device"])
    writer.write_state(_public(state))
    writer.append_progress({"event": "start", "command": command, "total_models": total})
    return state


def _fail(writer: report.RunWriter, state: dict[str, Any], exc: BaseException) -> None:
    interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
    state["status"] = "interrupted" if interrupted else "failed"
    if interrupted:
        state["error"] = "stopped by a signal"
    elif isinstance(exc, SpecError):
        state["error"] = "; ".join(f"{p}: {m}" for p, m in exc.problems)
    else:
        state["error"] = " ".join(str(exc).split()) or type(exc).__name__
    state["ended"] = report.now_iso()
    writer.write_state(_public(state))
    writer.append_progress({"event": state["status"], "error": state["error"]})


def interrupted_message(state: dict[str, Any], run_dir: Path, argv: list[str] | None, command: str) -> str:
    """``interrupted after 3/10 folds; resume with: dlrun cv cfg.yaml --out DIR --resume``."""
    done, total = state.get("finished_models", 0), state.get("total_models", 0)
    where = f" after {done}/{total} folds" if command == "cv" and total else ""
    resume = state.get("resume_command") or lifecycle.resume_command(argv, run_dir, command)
    return f"interrupted ({lifecycle.stop_signal_name()}){where}; resume with: {resume}"


def check_command(spec: Spec, command: str) -> None:
    """Refuse a spec whose evaluation mode belongs to the other command (before any folder is made).

    Raises:
        InputError: ``train`` on a cv mode or ``cv`` on a train mode.
    """
    if command == "cv" and spec.evaluation.mode not in CV_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(CV_MODES)} for `dlrun cv`, got '{spec.evaluation.mode}'; "
            "use `dlrun train` for split, validation_split and none"
        )
    if command == "train" and spec.evaluation.mode not in TRAIN_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(TRAIN_MODES)} for `dlrun train`, got '{spec.evaluation.mode}'; "
            "use `dlrun cv` for kfold, repeated_kfold and repeated_split"
        )


def _check_resumable(spec: Spec, run_dir: Path) -> None:
    """Before anything is loaded or written: no pickles, and the same spec as the run recorded."""
    report.refuse_legacy_pickles(run_dir)
    lifecycle.check_fingerprint(run_dir, lifecycle.make_fingerprint(resolved_dict(spec), None, None), spec_only=True)


def _record_fingerprint(prep: Prepared, run_dir: Path) -> None:
    """Compare the full fingerprint (spec, data, splits) with the folder's, or record it for a new run."""
    fp = lifecycle.make_fingerprint(
        resolved_dict(prep.spec),
        lifecycle.data_checksum(prep.data.X, prep.data.y),
        splits_digest(prep.folds),
    )
    if not (Path(run_dir) / report.FINGERPRINT).exists():
        lifecycle.check_fingerprint(run_dir, fp)  # a folder from before fingerprints: its config.yaml
        lifecycle.write_fingerprint(run_dir, fp)
    else:
        lifecycle.check_fingerprint(run_dir, fp)


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
    _check_resumable(spec, run_dir)  # before any file: another config is refused, never mixed in
    runner = make_executor(executor, spec.runtime)
    slots = runner.slots(Resources.of(spec.runtime))  # before any file: a job no node can run is refused
    writer = report.RunWriter(run_dir)
    with _guard_startup(writer, _starting(spec, writer, "cv", argv), argv, "cv"):
        prep = prep or prepare(spec, reporter)
        _record_fingerprint(prep, run_dir)
    helper = None
    if plot_helper and finisher is None and len(prep.folds) * spec.training.epochs >= PLOT_HELPER_MIN_EPOCHS:
        helper = Finisher(workers=1)
        helper.submit(_helper_warm)
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
    state = _begin(driver_spec, writer, "cv", len(prep.folds), argv)
    if driver_spec is not spec:
        writer.write_config(resolved_dict(spec))
    state["executor"] = runner.name
    parts = writer.read_parts(on_corrupt=reporter.note)
    pending = [f for f in prep.folds if f.key not in parts]
    engine_name = "none"
    try:
        with _StopSignals():
            if pending:
                engine_name = choose_engine_name(prep, reporter, previous=previous if parts else None)
                fit = FitChunk(spec, prep.task, prep.input_shape, prep.n_outputs, engine_name)
                if runner.in_process:
                    fit.engine = choose_engine(prep, NullReporter(), previous=engine_name)
                    fit.on_epoch = _stopping_relay(reporter, writer)
                state["engine"] = engine_name
                reporter.start(spec.name, len(prep.folds), spec.training.epochs, done_models=len(parts))
                state["finished_models"] = len(parts)
                writer.write_state(_public(state))
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
        _fail(writer, state, exc)
        raise Interrupted(interrupted_message(state, run_dir, argv, "cv")) from None
    except BaseException as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=len(parts))
    if finisher is not None and drawing:
        finisher.submit(finish_cv_folder, run_dir, *drawing[0], state)
    else:
        writer.write_state(state)
        writer.append_progress({"event": "finished"})
    return RunOutcome(run_dir, summary, engine_name)


def finish_cv_folder(
    run_dir: Path,
    ctx: PlotContext,
    scores: pd.DataFrame,
    history: pd.DataFrame,
    summary: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """The last step of a cv run handed to a :class:`Finisher`: plots, ``report.html``, then ``finished``."""
    writer = report.RunWriter(run_dir)
    try:
        _cv_plots(ctx, writer, scores, history, summary)
    except BaseException as exc:
        _fail(writer, state, exc)
        raise
    writer.write_state(state)
    writer.append_progress({"event": "finished"})


def _helper_warm() -> None:
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
        from dlrun.engines.runtime import usable_cores

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
                lifecycle.check_stop()
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


def _stopping_relay(reporter: Reporter, writer: report.RunWriter | None = None) -> Any:
    """The engines' per-epoch callback: progress, then a safe point for stop signals.

    With ``writer``, an ``epoch`` event goes to ``progress.jsonl`` at most once a second, so
    ``dlrun status`` can show the epoch and an ETA while a chunk of models trains.
    """
    last = [0.0]

    def on_epoch(event: Any) -> None:
        reporter.epoch(event)
        now = time.monotonic()
        if writer is not None and (now - last[0] >= 1.0 or event.epoch == event.epochs):
            last[0] = now
            writer.append_progress(
                {"event": "epoch", "epoch": event.epoch, "epochs": event.epochs, "models": len(event.keys)}
            )
        lifecycle.check_stop()

    return on_epoch


@contextlib.contextmanager
def _guard_startup(writer: report.RunWriter, state: dict[str, Any], argv: list[str] | None, command: str) -> Any:
    """Start-up (data, folds, fingerprint): a failure or stop signal here marks the run too."""
    try:
        yield state
        lifecycle.check_stop()
    except lifecycle.FingerprintMismatch:
        if state.get("previous"):  # the folder is another run's: leave its record as it was
            writer.write_state(state["previous"])
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        _fail(writer, state, exc)
        raise Interrupted(interrupted_message(state, writer.path, argv, command)) from None
    except BaseException as exc:
        _fail(writer, state, exc)
        raise


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


def divergence_warning(spec: Spec, history: pd.DataFrame) -> str | None:
    """A warning when the training loss exploded but stayed finite (a NaN loss fails the run instead).

    The loss of some model grew more than 100-fold over its first epoch's value (and above 10):
    the scores are then no better than chance, and the usual cause is the learning rate.

    Args:
        spec: The run's spec (for the learning rate it names).
        history: Long format with ``repeat``, ``fold``, ``epoch`` and ``loss`` columns.
    """
    if "loss" not in history or history.empty:
        return None
    bad, worst = 0, 0.0
    first_seen = 0.0
    for _, h in history.groupby(["repeat", "fold"], sort=False):
        loss = h["loss"].to_numpy(dtype=float)
        loss = loss[np.isfinite(loss)]
        if len(loss) < 2:
            continue
        top = float(loss.max())
        if top > 10 and top > 100 * max(float(loss[0]), 1e-12):
            bad += 1
            if top > worst:
                worst, first_seen = top, float(loss[0])
    if not bad:
        return None
    name, args = spec.compile.optimizer_entry
    lr = args.get("learning_rate", "the default")
    models = f"{bad} of {history.groupby(['repeat', 'fold']).ngroups} models" if "fold" in history else "the model"
    return (
        f"the training loss exploded in {models} (from {first_seen:.3g} to {worst:.3g}) with {name} learning_rate "
        f"{lr}: the scores are unreliable; lower compile.optimizer's learning_rate or add clipnorm"
    )


def _add_divergence_warning(prep: Prepared, summary: dict[str, Any], history: pd.DataFrame) -> None:
    warning = divergence_warning(prep.spec, history)
    if warning:
        summary.setdefault("warnings", []).append(warning)
        if isinstance(summary.get("headline"), dict):
            summary["headline"]["text"] = f"{summary['headline']['text']} (WARNING: the loss exploded; see warnings)"


def check_finite(result: FitResult) -> None:
    """A model whose loss diverged fails the run with the sequential engine's message, never silently."""
    losses = np.asarray(result.history.get("loss", []), dtype=float)
    bad = np.flatnonzero(~np.isfinite(losses))
    outputs_bad = result.test_pred is not None and not np.isfinite(result.test_pred).all()
    if len(bad) or outputs_bad:
        epoch = int(bad[0]) + 1 + (result.epochs_run - len(losses)) if len(bad) else result.epochs_run
        raise RunError(
            f"the loss became NaN at epoch {epoch} of repeat {result.repeat} fold {result.fold}; "
            "lower compile.optimizer's learning_rate, scale the features (preprocessing.scaling), "
            "or add clipvalue to the optimizer"
        )


def folds_table(folds: list[Fold]) -> pd.DataFrame:
    """``folds.csv``: repeat, fold, seed, sizes and the test rows of every fold."""
    return pd.DataFrame(
        {
            "repeat": [f.repeat for f in folds],
            "fold": [f.fold for f in folds],
            "seed": [f.seed for f in folds],
            "n_train": [len(f.train) for f in folds],
            "n_val": [len(f.val) for f in folds],
            "n_test": [len(f.test) for f in folds],
            "test_index": [f.test_index_text() for f in folds],
        }
    )


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
        helper.submit(draw_history, writer.path, ctx, history, len(scores), repeats)
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
        "positive_class": _positive(prep),
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
    _add_divergence_warning(prep, summary, history)
    writer.write_summary(summary, summary_markdown(summary))
    if defer is not None:
        defer(ctx, scores, history, summary)
    elif helper is not None:
        _score_plots(ctx, writer, scores, summary, confusion=False)
        helper.wait()
        _write_html_report(writer)
    else:
        _cv_plots(ctx, writer, scores, history, summary)
    return summary


def headline(block: dict[str, Any], metric: str) -> dict[str, Any]:
    """The summary's ``headline``: the main metric's most defensible estimate, its interval and what it is.

    Args:
        block: The main metric's :func:`dlrun.evaluation.stats.summarize_metric` dict.
        metric: The main metric's name.

    Returns:
        ``metric``, ``estimate`` (the block key), ``text``, ``mean``, ``ci_low``, ``ci_high``,
        ``halfwidth`` (the larger distance from the mean to an end: the interval can be
        asymmetric on a bounded scale), ``se``, ``confidence``, ``interval`` (what the interval
        is) and ``informative`` (False below 3 degrees of freedom).
    """
    d = headline_block(block)
    lo, hi = stats.interval_of(d)
    mean = d.get("mean")
    half = max(mean - lo, hi - mean) if mean is not None and lo is not None and hi is not None else None
    return {
        "metric": metric,
        "estimate": block["headline"],
        "text": block["headline_text"],
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
        "halfwidth": half,
        "se": d.get("se"),
        "confidence": d.get("confidence"),
        "interval": d.get("label"),
        "informative": bool(d.get("informative")),
    }


def _positive(prep: Prepared) -> Any:
    if prep.task == "binary" and prep.classes is not None and len(prep.classes) > 1:
        return prep.classes[1].item() if hasattr(prep.classes[1], "item") else prep.classes[1]
    return None


def summary_markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: a readable table of every metric's statistics and the baseline.

    Each row names what its interval is (a calibrated confidence interval, the naive fold
    interval that ignores fold dependence, or the precision of the CV estimate), and the
    std and se columns say what they are the spread of.
    """
    conf = int(round(summary.get("confidence", 0.95) * 100))
    lines = [f"# {summary['name']} — {summary['mode']}", ""]
    if "headline" in summary:
        lines += [f"**{summary['headline']['text']}**", ""]
        adaptive = summary.get("adaptive")
        if adaptive:
            lines += [f"Repeats: {adaptive['text']}", ""]
    if summary["command"] == "cv":
        short = {
            "confidence_interval": f"{conf}% confidence interval",
            "naive_fold_interval": "naive, ignores fold dependence",
            "split_precision": "precision of the CV estimate",
            "seed_interval": f"{conf}% interval over seeds (one split)",
        }
        lines += [
            f"{summary['n_models']} models ({summary['repeats']} repeat(s) × {summary['folds']} fold(s)), "
            f"engine {summary['engine']}, task {summary['task']}.",
            "",
            "| metric | block | interval is | n | mean | std | se | low | high | min | max |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if not d:
                    continue
                lo, hi = stats.interval_of(d)
                what = short.get(str(d.get("kind")), est)
                if d.get("kind") and not d.get("informative", True) and lo is not None:
                    what += " (not informative: < 3 df)"
                lines.append(
                    f"| {m} | {est} | {what} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d.get('std'))} | "
                    f"{_fmt(d.get('se'))} | {_fmt(lo)} | {_fmt(hi)} | {_fmt(d.get('min'))} | {_fmt(d.get('max'))} |"
                )
        lines += [
            "",
            "- **std** is the sample standard deviation (ddof=1) of the block's values: the fold scores "
            "(corrected, folds) or the per-repeat means (repeats).",
            "- **se** of the *corrected* block is the corrected standard error √correction·std (its method "
            "line gives the factor), larger than std/√J because the folds share training rows and repeats "
            "re-test the same rows; in the other blocks se = std/√n.",
            "- Only the *corrected* block (k-fold modes) is a confidence interval for the score a model trained "
            "this way gets on new data; its coverage is checked by `benchmarks/calibration.py`. The *folds* "
            "interval treats folds as independent and is too narrow; the *repeats* interval is the precision of "
            "the cross-validation estimate for this dataset (how much it moves with another split).",
            "- Intervals of bounded metrics are built on a scale that keeps them inside the metric's range "
            "(the logit scale for scores in [0, 1], the log scale for errors; R² is capped at 1).",
        ]
        lines += ["", f"No-skill baseline: {summary['baseline']['model']} on the same folds.", ""]
        lines += [f"| metric | mean | {conf}% CI low | {conf}% CI high |", "|---|---|---|---|"]
        for m, block in summary["baseline"]["metrics"].items():
            d = headline_block(block)
            lo, hi = stats.interval_of(d)
            lines.append(f"| {m} | {_fmt(d['mean'])} | {_fmt(lo)} | {_fmt(hi)} |")
        lines += ["", "Methods:", ""]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if d:
                    label = f" — {d['label']}" if d.get("label") else ""
                    lines.append(f"- {m} ({est}{label}): {d['method']}")
    else:
        lines += ["| metric | held-out | training | baseline |", "|---|---|---|---|"]
        for m, v in summary["metrics"].items():
            lines.append(
                f"| {m} | {_fmt(v)} | {_fmt(summary['train_metrics'].get(m))} | "
                f"{_fmt(summary['baseline']['metrics'].get(m))} |"
            )
        lines += ["", f"Held-out rows: {summary.get('n_test')}; baseline: {summary['baseline']['model']}."]
    return "\n".join(lines) + "\n"


def _history_metrics(history: pd.DataFrame) -> list[str]:
    skip = {"repeat", "fold", "epoch"}
    return [c for c in history.columns if c not in skip and not c.startswith(("val_", "test_"))]


def _label_logs(prep: Prepared, reporter: Reporter) -> Reporter:
    """Mark logged per-epoch values as being on the transformed target, where they are."""
    from dlrun.reporting import label_transformed_target

    return label_transformed_target(
        reporter, prep.spec.preprocessing.target.transform, prep.data.target_names, prep.task
    )


def _curve_units(prep: Prepared) -> str:
    """What Keras' per-epoch loss and metrics are measured in when the target is transformed."""
    from dlrun.reporting import transformed_target_note

    return transformed_target_note(prep.spec.preprocessing.target.transform, prep.data.target_names, prep.task)


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
            prep.spec.name, _curve_units(prep), prep.main_metric, prep.spec.evaluation.confidence, prep.task, classes
        )


def _confusion_plot(ctx: PlotContext, writer: report.RunWriter, preds: pd.DataFrame, note: str) -> None:
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


def _write_html_report(writer: report.RunWriter) -> None:
    """``report.html`` beside the run's files (one self-contained page)."""
    from dlrun.report import html as html_report

    html_report.write_report([writer.path], writer.path / html_report.REPORT_HTML)


def _cv_plots(
    ctx: PlotContext, writer: report.RunWriter, scores: pd.DataFrame, history: pd.DataFrame, summary: dict[str, Any]
) -> None:
    _curve_plots(ctx, writer, history)
    _score_plots(ctx, writer, scores, summary)
    _write_html_report(writer)


def _curve_plots(ctx: PlotContext, writer: report.RunWriter, history: pd.DataFrame) -> None:
    """One learning-curve figure per metric in ``history`` (every model's per-epoch values)."""
    from dlrun.report import plots

    name, units = ctx.name, ctx.units
    for m in _history_metrics(history):
        writer.plot(
            f"learning_curve_{m}", lambda ax, m=m: plots.learning_curve(ax, history, m, run_name=name, units=units)
        )


def draw_history(run_dir: Path, ctx: PlotContext, history: pd.DataFrame, n_models: int, repeats: int) -> None:
    """A cv run's ``history.csv``, learning curves and confusion matrix, in a plot helper (see :func:`run_cv`).

    ``predictions.csv`` must be written before this starts.
    """
    writer = report.RunWriter(run_dir)
    writer.write_table(report.HISTORY, history)
    _curve_plots(ctx, writer, history)
    _pooled_confusion(ctx, writer, n_models, repeats)


def _score_plots(
    ctx: PlotContext,
    writer: report.RunWriter,
    scores: pd.DataFrame,
    summary: dict[str, Any],
    *,
    confusion: bool = True,
) -> None:
    """The plots of the fold scores (distribution, Q-Q, running mean) and, unless not asked, the confusion matrix."""
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
    if confusion:
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
        _confusion_plot(ctx, writer, preds, note)


# ----------------------------------------------------------------------------- train
def run_train(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    smoothing: float = 0.0,
    data: Dataset | None = None,
) -> RunOutcome:
    """Train one model (modes split, validation_split, none) and write every output."""
    reporter = reporter or NullReporter()
    check_command(spec, "train")
    check_smoothing(smoothing)
    writer = report.RunWriter(run_dir)
    _check_resumable(spec, run_dir)  # a finished run resumed with another config is refused too
    old = writer.read_state() or {}
    if old.get("status") == "finished" and writer.file(report.SUMMARY_JSON).exists():
        reporter.note(f"{run_dir}: finished earlier; nothing to resume")
        return RunOutcome(run_dir, report.read_json(writer.file(report.SUMMARY_JSON)), str(old.get("engine", "")))
    with _guard_startup(writer, _starting(spec, writer, "train", argv), argv, "train"):
        prep = prepare(spec, reporter, data=data)
        _record_fingerprint(prep, run_dir)
    reporter = _label_logs(prep, reporter)
    state = _begin(spec, writer, "train", 1, argv)
    fold = prep.folds[0]
    try:
        with _StopSignals():
            from dlrun.engines.sequential import SequentialEngine
            from dlrun.store.checkpoint import TrainCheckpoint

            job, pre = make_job(prep, fold)
            ckpt = TrainCheckpoint(writer, spec.training.checkpoint_every, note=reporter.note)
            ckpt.restore_into(job)
            engine = SequentialEngine(
                spec, prep.task, prep.input_shape, prep.n_outputs, keep_model=True, extra_callbacks=[ckpt.callback()]
            )
            state["engine"] = engine.name
            reporter.start(spec.name, 1, spec.training.epochs)
            t0 = time.perf_counter()

            def on_epoch(event: Any) -> None:
                reporter.epoch(event)
                writer.append_progress({"event": "epoch", "epoch": event.epoch, "logs": event.logs})
                lifecycle.check_stop()

            result = engine.fit_one(job, on_epoch)
            result.history = ckpt.full_history(result.history)
            result.seconds = time.perf_counter() - t0
            reporter.model_done(fold.key, {}, result.seconds)
            reporter.finish()
            lifecycle.check_stop()
            state["phase"] = "writing"
            summary = _write_train(prep, writer, fold, pre, result, smoothing)
            lifecycle.check_stop()
            ckpt.clear()
    except (KeyboardInterrupt, Interrupted) as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise Interrupted(interrupted_message(state, run_dir, argv, "train")) from None
    except BaseException as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=1)
    writer.write_state(state)
    writer.append_progress({"event": "finished"})
    return RunOutcome(run_dir, summary, "sequential")


def check_smoothing(smoothing: float) -> None:
    """``--smoothing`` must be in [0, 1): checked before anything trains.

    Raises:
        InputError: Out of range.
    """
    if not 0.0 <= float(smoothing) < 1.0:
        raise InputError(f"--smoothing must be in [0, 1) (e.g. 0.6), got {smoothing}")


def _write_train(
    prep: Prepared, writer: report.RunWriter, fold: Fold, pre: Preprocessor, result: FitResult, smoothing: float
) -> dict[str, Any]:
    from dlrun.report import plots

    spec = prep.spec
    part = score_fold(prep, fold, pre, result)
    row = part["scores"]
    history = part["history"].drop(columns=["repeat", "fold"])
    writer.write_table(report.HISTORY, history)
    if part["predictions"] is not None:
        writer.write_table(report.PREDICTIONS, part["predictions"].drop(columns=["repeat", "fold"]))
    from dlrun.data.preprocessing import preprocessor_to_json

    model_sha256 = writer.write_model(result.model)
    writer.write_preprocessor(
        {
            "preprocessor": preprocessor_to_json(pre),
            "task": prep.task,
            "data": _data_meta(prep),
            "model_sha256": model_sha256,
        }
    )
    summary: dict[str, Any] = {
        "name": spec.name,
        "command": "train",
        "mode": spec.evaluation.mode,
        "task": prep.task,
        "engine": "sequential",
        "n_rows": len(prep.data.y),
        "n_train": len(fold.train),
        "n_val": len(fold.val),
        "n_test": len(fold.test),
        "main_metric": prep.main_metric,
        "positive_class": _positive(prep),
        "epochs": result.epochs_run,
        "seconds": round(result.seconds, 3),
        "metrics": {m: row.get(m) for m in prep.metrics} if len(fold.test) else {},
        "train_metrics": {m: row.get(f"train_{m}") for m in prep.metrics},
        "baseline": {
            "model": baseline_name(prep.task),
            "metrics": {m: row.get(f"baseline_{m}") for m in prep.metrics} if len(fold.test) else {},
        },
        "final_logs": {k: v[-1] for k, v in result.history.items() if v},
    }
    if len(fold.test):
        held = (
            "validation rows (the last fraction, as Keras' validation_split)"
            if spec.evaluation.mode == "validation_split"
            else "held-out test rows"
        )
        summary["headline"] = {
            "metric": prep.main_metric,
            "estimate": "single",
            "text": f"{prep.main_metric} {row.get(prep.main_metric):.4f} on {len(fold.test)} {held} "
            f"(no-skill baseline {row.get('baseline_' + prep.main_metric):.4f}); "
            "one run: no interval — use `dlrun cv` for one",
        }
    _add_divergence_warning(prep, summary, history.assign(repeat=0, fold=0))
    writer.write_summary(summary, summary_markdown(summary))
    name, units = spec.name, _curve_units(prep)
    for m in _history_metrics(history.assign(repeat=0, fold=0)):
        h = history.assign(repeat=0, fold=0)
        writer.plot(
            f"learning_curve_{m}",
            lambda ax, m=m, h=h: plots.learning_curve(ax, h, m, run_name=name, smoothing=smoothing, units=units),
        )
    preds = part["predictions"]
    if preds is not None:
        if prep.task in ("binary", "multiclass") and prep.classes is not None:
            _confusion_plot(PlotContext.of(prep), writer, preds, f"Predictions on the {len(fold.test)} held-out rows.")
        else:
            names = prep.data.target_names
            cols = [(f"true_{n}", f"pred_{n}", n) for n in names] if len(names) > 1 else [("true", "pred", names[0])]

            def draw(axes: Any) -> None:
                for ax, (t, p, n) in zip(axes if len(cols) > 1 else [axes], cols):
                    plots.predicted_vs_true(ax, preds[t].to_numpy(), preds[p].to_numpy(), n, run_name=name)

            writer.plot("predicted_vs_true", draw, ncols=len(cols))
    _write_html_report(writer)
    return summary


def _data_meta(prep: Prepared) -> dict[str, Any]:
    return {
        "feature_names": prep.data.feature_names,
        "target_names": prep.data.target_names,
        "raw_columns": prep.data.raw_columns,
        "classes": None if prep.classes is None else list(prep.classes),
    }


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
