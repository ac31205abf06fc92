"""Orchestration of ``dlrun train`` and ``dlrun cv``: data → folds → engine → scores → files.

Training returns data; :mod:`dlrun.report` writes it. Each finished fold is saved at
once as a part file, so a killed run loses at most the folds in flight and
``--resume`` continues where it stopped.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun import report, stats
from dlrun.datasets import Dataset, load_dataset
from dlrun.engines.base import FitJob, FitResult
from dlrun.errors import InputError, Interrupted, RunError, SpecError
from dlrun.models import default_eval_metrics
from dlrun.preprocessing import Preprocessor
from dlrun.progress import NullReporter, Reporter
from dlrun.progress import fmt_value as _fmt
from dlrun.scoring import HIGHER_IS_BETTER, baseline_name, baseline_scores, check_metrics, score
from dlrun.spec import CV_MODES, TRAIN_MODES, Spec, resolved_dict
from dlrun.splits import Fold, make_folds, splits_digest


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
    folds = make_folds(spec.evaluation, len(data.y), labels, task, spec.seed)
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
def choose_engine(
    prep: Prepared, reporter: Reporter, n_models: int, keep_model: bool = False, previous: str | None = None
) -> Any:
    """The engine ``runtime.engine`` asks for; ``auto`` picks stacked whenever it can.

    Args:
        prep: The prepared run.
        reporter: Where the fallback line goes.
        n_models: How many models are to be trained.
        keep_model: The caller needs the Keras model (``dlrun train``): sequential.
        previous: The engine that trained the folds already saved (resume); ``auto`` keeps it,
            because the two engines draw different (equally valid) random streams and a resumed
            run must end with exactly the results of an uninterrupted one.
    """
    from dlrun.engines.sequential import SequentialEngine

    want: str = prep.spec.runtime.engine
    if want == "auto" and previous in ("stacked", "sequential"):
        want = previous
    if want in ("auto", "stacked") and not keep_model:
        from dlrun.engines.stacked import StackedEngine, unsupported_reason

        reason = unsupported_reason(prep.spec, prep.task)
        if reason is None:
            return StackedEngine(prep.spec, prep.task, prep.input_shape, prep.n_outputs)
        if reason is not None:
            if want == "stacked":
                raise SpecError([("runtime.engine", f"the stacked engine cannot run this spec: {reason}")])
            reporter.note(f"engine: sequential ({reason})")
    return SequentialEngine(prep.spec, prep.task, prep.input_shape, prep.n_outputs, keep_model=keep_model)


# ----------------------------------------------------------------------------- stop signals
class _StopSignals:
    """Turn SIGTERM into KeyboardInterrupt while a run trains, so state is saved and marked."""

    def __enter__(self) -> _StopSignals:
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
    from dlrun.runtime import versions

    return {**versions(), "device": device, "seed": spec.seed, "command": argv or sys.argv, "time": report.now_iso()}


def _begin(spec: Spec, writer: report.RunWriter, command: str, total: int, argv: list[str] | None) -> dict[str, Any]:
    from dlrun.runtime import setup

    device = setup(spec.runtime)
    writer.write_config(resolved_dict(spec))
    writer.write_env(_env(spec, device, argv))
    old = writer.read_state() or {}
    state = {
        "name": spec.name,
        "command": command,
        "mode": spec.evaluation.mode,
        "status": "running",
        "started": old.get("started", report.now_iso()),
        "resumed": bool(old),
        "total_models": total,
        "finished_models": 0,
        "epochs": spec.training.epochs,
        "device": device["device"],
    }
    writer.write_state(state)
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
    writer.write_state(state)
    writer.append_progress({"event": state["status"], "error": state["error"]})


# ----------------------------------------------------------------------------- cv
def run_cv(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    prep: Prepared | None = None,
) -> RunOutcome:
    """Cross-validate: train every fold (skipping folds already saved), then summarise.

    Args:
        spec: A spec whose ``evaluation.mode`` is kfold, repeated_kfold or repeated_split.
        run_dir: The run directory; folds already saved there are not trained again.
        reporter: Progress sink.
        argv: The command line, for ``env.json``.
        prep: A :func:`prepare` result to reuse.
    """
    reporter = reporter or NullReporter()
    if spec.evaluation.mode not in CV_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(CV_MODES)} for `dlrun cv`, got '{spec.evaluation.mode}'; "
            "use `dlrun train` for split, validation_split and none"
        )
    prep = prep or prepare(spec, reporter)
    writer = report.RunWriter(run_dir)
    writer.write_table(report.FOLDS, folds_table(prep.folds))
    previous = (writer.read_state() or {}).get("engine")
    state = _begin(spec, writer, "cv", len(prep.folds), argv)
    parts = writer.read_parts()
    pending = [f for f in prep.folds if f.key not in parts]
    engine_name = "none"
    try:
        with _StopSignals():
            if pending:
                engine = choose_engine(prep, reporter, len(pending), previous=previous if parts else None)
                engine_name = engine.name
                state["engine"] = engine_name
                reporter.start(spec.name, len(prep.folds), spec.training.epochs, done_models=len(parts))
                state["finished_models"] = len(parts)
                writer.write_state(state)
                last_state = time.monotonic()
                for fold, part in _train_folds(prep, engine, pending, reporter):
                    writer.write_part(fold.repeat, fold.fold, part)
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
                reporter.finish()
            if engine_name == "none":
                engine_name = str(state.get("engine") or next(iter(parts.values()))["scores"].get("engine", "none"))
            summary = assemble_cv(prep, writer, parts, engine_name)
    except (KeyboardInterrupt, Interrupted) as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise Interrupted(
            f"interrupted after {len(parts)}/{len(prep.folds)} folds; resume with: dlrun cv --resume --out {run_dir}"
        ) from None
    except BaseException as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=len(parts))
    writer.write_state(state)
    writer.append_progress({"event": "finished"})
    return RunOutcome(run_dir, summary, engine_name)


def _main_scores(prep: Prepared, part: dict[str, Any]) -> dict[str, float]:
    return {m: part["scores"].get(m, float("nan")) for m in prep.metrics}


def _train_folds(
    prep: Prepared, engine: Any, folds: list[Fold], reporter: Reporter
) -> Iterator[tuple[Fold, dict[str, Any]]]:
    """Build jobs, train them with ``engine`` and score each as it finishes."""
    pres: dict[tuple[int, int], Preprocessor] = {}
    by_key = {f.key: f for f in folds}
    if engine.name == "sequential":
        for fold in folds:
            job, pre = make_job(prep, fold)
            for result in engine.fit([job], reporter.epoch):
                yield fold, score_fold(prep, fold, pre, result)
        return
    jobs = []
    for fold in folds:
        job, pre = make_job(prep, fold)
        jobs.append(job)
        pres[fold.key] = pre
    for result in engine.fit(jobs, reporter.epoch):
        check_finite(result)
        key = (result.repeat, result.fold)
        yield by_key[key], score_fold(prep, by_key[key], pres.pop(key), result)


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
    prep: Prepared, writer: report.RunWriter, parts: dict[tuple[int, int], dict[str, Any]], engine: str
) -> dict[str, Any]:
    """Write scores, history, predictions, summary and plots from every fold's part."""
    spec, ev = prep.spec, prep.spec.evaluation
    ordered = [parts[f.key] for f in prep.folds]
    scores = pd.DataFrame([p["scores"] for p in ordered])
    history = pd.concat([p["history"] for p in ordered], ignore_index=True)
    preds = [p["predictions"] for p in ordered if p["predictions"] is not None]
    writer.write_table(report.SCORES, scores)
    writer.write_table(report.HISTORY, history)
    if preds:
        writer.write_table(report.PREDICTIONS, pd.concat(preds, ignore_index=True))
    repeats = ev.repeats if ev.mode in ("repeated_kfold", "repeated_split") else 1
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
    main = summary["metrics"][prep.main_metric]
    summary["headline"] = {"metric": prep.main_metric, "estimate": main["headline"], "text": main["headline_text"]}
    writer.write_summary(summary, summary_markdown(summary))
    _cv_plots(prep, writer, scores, history, summary)
    return summary


def _positive(prep: Prepared) -> Any:
    if prep.task == "binary" and prep.classes is not None and len(prep.classes) > 1:
        return prep.classes[1].item() if hasattr(prep.classes[1], "item") else prep.classes[1]
    return None


def summary_markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: a readable table of every metric's statistics and the baseline."""
    conf = int(round(summary.get("confidence", 0.95) * 100))
    lines = [f"# {summary['name']} — {summary['mode']}", ""]
    if "headline" in summary:
        lines += [f"**{summary['headline']['text']}**", ""]
    if summary["command"] == "cv":
        lines += [
            f"{summary['n_models']} models ({summary['repeats']} repeat(s) × {summary['folds']} fold(s)), "
            f"engine {summary['engine']}, task {summary['task']}.",
            "",
            f"| metric | estimate | n | mean | std | se | {conf}% CI low | {conf}% CI high | min | max |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if not d:
                    continue
                lines.append(
                    f"| {m} | {est} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d.get('std'))} | {_fmt(d.get('se'))} | "
                    f"{_fmt(d.get('ci_low'))} | {_fmt(d.get('ci_high'))} | "
                    f"{_fmt(d.get('min'))} | {_fmt(d.get('max'))} |"
                )
        lines += ["", f"No-skill baseline: {summary['baseline']['model']} on the same folds.", ""]
        lines += [f"| metric | mean | {conf}% CI low | {conf}% CI high |", "|---|---|---|---|"]
        for m, block in summary["baseline"]["metrics"].items():
            d = block[block["headline"]] or block["folds"]
            lines.append(f"| {m} | {_fmt(d['mean'])} | {_fmt(d.get('ci_low'))} | {_fmt(d.get('ci_high'))} |")
        lines += ["", "Methods:", ""]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if d:
                    lines.append(f"- {m} ({est}): {d['method']}")
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
    return [c for c in history.columns if c not in skip and not c.startswith("val_")]


def _cv_plots(
    prep: Prepared, writer: report.RunWriter, scores: pd.DataFrame, history: pd.DataFrame, summary: dict[str, Any]
) -> None:
    from dlrun import plots

    for m in _history_metrics(history):
        writer.plot(f"learning_curve_{m}", lambda ax, m=m: plots.learning_curve(ax, history, m))
    main = prep.main_metric
    values = scores[main].to_numpy(dtype=float)
    block = summary["metrics"][main]
    writer.plot(
        f"scores_{main}",
        lambda ax: plots.score_distribution(ax, values, block[block["headline"]] or block["folds"], main),
    )
    writer.plot(f"qq_{main}", lambda ax: plots.qq_plot(ax, values, main))
    if summary["repeats"] > 1:
        per_repeat = scores.groupby("repeat")[main].mean().to_numpy()
        running = stats.running_stats(per_repeat)
        writer.plot(f"repeats_{main}", lambda ax: plots.running_mean(ax, running, main))


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
    if spec.evaluation.mode not in TRAIN_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(TRAIN_MODES)} for `dlrun train`, got '{spec.evaluation.mode}'; "
            "use `dlrun cv` for kfold, repeated_kfold and repeated_split"
        )
    writer = report.RunWriter(run_dir)
    old = writer.read_state() or {}
    if old.get("status") == "finished" and writer.file(report.SUMMARY_JSON).exists():
        reporter.note(f"{run_dir}: finished earlier; nothing to resume")
        return RunOutcome(run_dir, report.read_json(writer.file(report.SUMMARY_JSON)), str(old.get("engine", "")))
    prep = prepare(spec, reporter, data=data)
    state = _begin(spec, writer, "train", 1, argv)
    fold = prep.folds[0]
    try:
        with _StopSignals():
            from dlrun.checkpoint import TrainCheckpoint
            from dlrun.engines.sequential import SequentialEngine

            job, pre = make_job(prep, fold)
            ckpt = TrainCheckpoint(writer, spec.training.checkpoint_every)
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

            result = engine.fit_one(job, on_epoch)
            result.history = ckpt.full_history(result.history)
            result.seconds = time.perf_counter() - t0
            reporter.model_done(fold.key, {}, result.seconds)
            reporter.finish()
            summary = _write_train(prep, writer, fold, pre, result, smoothing)
            ckpt.clear()
    except (KeyboardInterrupt, Interrupted) as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise Interrupted(f"interrupted; resume with: dlrun train --resume --out {run_dir}") from None
    except BaseException as exc:
        reporter.finish()
        _fail(writer, state, exc)
        raise
    state.update(status="finished", ended=report.now_iso(), finished_models=1)
    writer.write_state(state)
    writer.append_progress({"event": "finished"})
    return RunOutcome(run_dir, summary, "sequential")


def _write_train(
    prep: Prepared, writer: report.RunWriter, fold: Fold, pre: Preprocessor, result: FitResult, smoothing: float
) -> dict[str, Any]:
    from dlrun import plots

    spec = prep.spec
    part = score_fold(prep, fold, pre, result)
    row = part["scores"]
    history = part["history"].drop(columns=["repeat", "fold"])
    writer.write_table(report.HISTORY, history)
    if part["predictions"] is not None:
        writer.write_table(report.PREDICTIONS, part["predictions"].drop(columns=["repeat", "fold"]))
    model_path = writer.file(report.MODEL)
    with report.atomic_path(model_path.with_suffix(".tmp.keras")) as tmp:
        # Keras insists on the .keras suffix, so save beside and rename
        result.model.save(tmp.with_suffix(".keras"))
        tmp.with_suffix(".keras").replace(tmp)
    model_path.with_suffix(".tmp.keras").replace(model_path)
    report.write_pickle(
        writer.file(report.PREPROCESSOR), {"preprocessor": pre, "task": prep.task, "data": _data_meta(prep)}
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
    writer.write_summary(summary, summary_markdown(summary))
    for m in _history_metrics(history.assign(repeat=0, fold=0)):
        h = history.assign(repeat=0, fold=0)
        writer.plot(f"learning_curve_{m}", lambda ax, m=m, h=h: plots.learning_curve(ax, h, m, smoothing=smoothing))
    preds = part["predictions"]
    if preds is not None:
        if prep.task in ("binary", "multiclass") and prep.classes is not None:
            from sklearn.metrics import confusion_matrix

            cm = confusion_matrix(preds["true"], preds["pred"], labels=prep.classes)
            writer.plot("confusion_matrix", lambda ax: plots.confusion_matrix(ax, cm, [str(c) for c in prep.classes]))
        else:
            names = prep.data.target_names
            cols = [(f"true_{n}", f"pred_{n}", n) for n in names] if len(names) > 1 else [("true", "pred", names[0])]

            def draw(axes: Any) -> None:
                for ax, (t, p, n) in zip(axes if len(cols) > 1 else [axes], cols):
                    plots.predicted_vs_true(ax, preds[t].to_numpy(), preds[p].to_numpy(), n)

            writer.plot("predicted_vs_true", draw, ncols=len(cols))
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
) -> RunOutcome:
    """Run a spec with the command its mode belongs to (``train`` or ``cv``), in ``run_dir``.

    A run directory that already holds saved folds or a checkpoint is continued.
    """
    from dlrun.locking import RunLock

    with RunLock(run_dir):
        if spec.is_cv:
            if spec.runtime.executor == "ray":
                from dlrun.distributed import run_cv_ray

                return run_cv_ray(spec, run_dir, reporter, argv=argv)
            return run_cv(spec, run_dir, reporter, argv=argv)
        return run_train(spec, run_dir, reporter, argv=argv, smoothing=smoothing)
