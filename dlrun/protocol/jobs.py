"""Prepare a run: data → task → folds → one :class:`~dlrun.engines.base.FitJob` per fold, and back.

:func:`prepare` loads the data, resolves the task and makes the folds (no Keras needed);
:func:`make_job` fits a fold's preprocessing on its training rows only and builds its job;
:func:`score_fold` turns the engine's result into the fold's saved part (scores, history, predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dlrun.data.preprocessing import Preprocessor
from dlrun.data.sources import Dataset, check_usable, load_dataset
from dlrun.engines.base import FitJob, FitResult
from dlrun.engines.keras_build import default_eval_metrics
from dlrun.errors import InputError, RunError, SpecError
from dlrun.evaluation.scoring import baseline_scores, check_metrics, score
from dlrun.protocol.splits import Fold, make_folds, source_test_fold
from dlrun.reporting import NullReporter, Reporter, label_transformed_target, transformed_target_note
from dlrun.spec.schema import Spec


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
    loss = spec.compile.loss_entry
    check_usable(data, impute=spec.preprocessing.impute, loss=loss[0] if loss else None, task=task)
    try:
        if spec.evaluation.test_rows == "source" and data.test_rows is not None:
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


def label_logs(prep: Prepared, reporter: Reporter) -> Reporter:
    """Mark logged per-epoch values as being on the transformed target, where they are."""
    return label_transformed_target(
        reporter, prep.spec.preprocessing.target.transform, prep.data.target_names, prep.task
    )


def curve_units(prep: Prepared) -> str:
    """What Keras' per-epoch loss and metrics are measured in when the target is transformed."""
    return transformed_target_note(prep.spec.preprocessing.target.transform, prep.data.target_names, prep.task)
