"""Held-out metrics with scikit-learn, in the target's original units, and no-skill baselines."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation.metrics import HIGHER_IS_BETTER
from dlrun.spec.schema import CLASSIFICATION_METRICS, REGRESSION_METRICS

__all__ = ["HIGHER_IS_BETTER", "baseline_name", "baseline_scores", "check_metrics", "score"]


def check_metrics(metrics: list[str], task: str) -> None:
    """Refuse a regression metric on a classification task and vice versa."""
    valid = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    for i, m in enumerate(metrics):
        if m not in valid:
            raise InputError(
                f"evaluation.metrics[{i}] must be one of {', '.join(valid)} for a {task} target, got '{m}'"
            )


def score(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    metrics: list[str],
    classes: np.ndarray | None,
) -> dict[str, float]:
    """Score predictions with scikit-learn.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: True values in original form, ``(n,)`` or ``(n, k)`` for k targets.
        y_pred: Predicted labels or values, same shape as ``y_true``.
        proba: Class probabilities ``(n, n_classes)`` (columns in ``classes`` order) or None.
        metrics: Metric names (see :data:`HIGHER_IS_BETTER`).
        classes: Sorted original class labels; ``classes[1]`` is the positive class of a binary task.

    Returns:
        ``{metric: value}``; a metric that is undefined on these rows (ROC AUC with one
        class present) is NaN.
    """
    out: dict[str, float] = {}
    fast = _fast_classification(task, y_true, y_pred, proba, metrics, classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in metrics:
            out[m] = fast[m] if m in fast else float(_one(m, task, y_true, y_pred, proba, classes))
    return out


_COUNTED = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _fast_classification(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    metrics: list[str],
    classes: np.ndarray | None,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (binary or macro) and ROC AUC from counts and ranks.

    A cross-validation run scores every fold three times (test, train, baseline); scikit-learn's
    per-call input validation cost more than training for hundreds of small folds. These are the
    same definitions as scikit-learn's (``zero_division=0``; AUC as the Mann–Whitney statistic with
    average ranks for ties), checked against it in tests/test_scoring.py.
    """
    if task == "regression" or classes is None or not any(m in _COUNTED for m in metrics):
        return {}
    labels = np.asarray(classes)
    yt = np.asarray(y_true).ravel()
    yp = np.asarray(y_pred).ravel()
    t = np.searchsorted(labels, yt)
    p = np.searchsorted(labels, yp)
    k = len(labels)
    if (
        (t >= k).any()
        or (p >= k).any()
        or (labels[np.minimum(t, k - 1)] != yt).any()
        or (labels[np.minimum(p, k - 1)] != yp).any()
    ):
        return {}  # labels outside the class list: let scikit-learn decide
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(cm)
    pred_pos = cm.sum(axis=0)
    true_pos = cm.sum(axis=1)
    prec = np.divide(tp, pred_pos, out=np.zeros(k), where=pred_pos > 0)
    rec = np.divide(tp, true_pos, out=np.zeros(k), where=true_pos > 0)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros(k), where=denom > 0)
    idx = slice(1, 2) if task == "binary" and k == 2 else slice(None)
    out = {
        "accuracy": float(tp.sum() / max(len(yt), 1)),
        "precision": float(prec[idx].mean()),
        "recall": float(rec[idx].mean()),
        "f1": float(f1[idx].mean()),
    }
    if "roc_auc" in metrics and task == "binary" and k == 2 and proba is not None:
        pos = t == 1
        n1, n0 = int(pos.sum()), int((~pos).sum())
        if n1 and n0:
            from scipy.stats import rankdata

            ranks = rankdata(proba[:, 1])
            out["roc_auc"] = float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
        else:
            out["roc_auc"] = float("nan")
    return {m: v for m, v in out.items() if m in metrics}


def _one(
    m: str, task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, classes: np.ndarray | None
) -> float:
    from sklearn import metrics as skm  # imported when scoring: dlrun's light commands never do

    if task == "regression":
        yt = np.asarray(y_true, dtype=float)
        yp = np.asarray(y_pred, dtype=float)
        if m == "mae":
            return float(skm.mean_absolute_error(yt, yp))
        if m == "mse":
            return float(skm.mean_squared_error(yt, yp))
        if m == "rmse":
            return float(np.sqrt(skm.mean_squared_error(yt, yp)))
        if m == "r2":
            return float(skm.r2_score(yt, yp)) if len(yt) > 1 else float("nan")
        raise InputError(f"metric must be one of {', '.join(REGRESSION_METRICS)} for regression, got '{m}'")
    yt = np.asarray(y_true).ravel()
    yp = np.asarray(y_pred).ravel()
    labels = list(classes) if classes is not None else sorted(set(yt) | set(yp))
    binary = task == "binary"
    avg = "binary" if binary else "macro"
    pos: Any = labels[1] if binary and len(labels) > 1 else 1
    kw: dict[str, Any] = {"average": avg, "zero_division": 0}
    if binary:
        kw["pos_label"] = pos
    else:
        kw["labels"] = labels
    if m == "accuracy":
        return float(skm.accuracy_score(yt, yp))
    if m == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(yt, yp))
    if m == "f1":
        return float(skm.f1_score(yt, yp, **kw))
    if m == "precision":
        return float(skm.precision_score(yt, yp, **kw))
    if m == "recall":
        return float(skm.recall_score(yt, yp, **kw))
    if m in ("roc_auc", "log_loss"):
        if proba is None or len(np.unique(yt)) < 2:
            return float("nan")
        if m == "log_loss":
            return float(skm.log_loss(yt, np.clip(proba, 1e-15, 1 - 1e-15), labels=labels))
        if binary:
            return float(skm.roc_auc_score(yt == pos, proba[:, 1]))
        present = np.isin(labels, np.unique(yt))
        if present.sum() < len(labels):
            return float("nan")
        return float(skm.roc_auc_score(yt, proba, multi_class="ovr", labels=labels))
    raise InputError(f"metric must be one of {', '.join(CLASSIFICATION_METRICS)} for classification, got '{m}'")


def baseline_name(task: str) -> str:
    """How the no-skill baseline predicts, in words."""
    return "DummyRegressor(strategy='mean')" if task == "regression" else "DummyClassifier(strategy='most_frequent')"


def baseline_scores(
    task: str,
    y_train: pd.DataFrame,
    y_test: pd.DataFrame,
    metrics: list[str],
    classes: np.ndarray | None,
) -> dict[str, float]:
    """Score scikit-learn's no-skill model fit on the same training rows.

    Args:
        task: The task.
        y_train: Original training targets ``(n_train, k)``.
        y_test: Original held-out targets ``(n_test, k)``.
        metrics: Metric names.
        classes: Sorted original class labels, or None for regression.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    x_tr = np.zeros((len(y_train), 1))
    x_te = np.zeros((len(y_test), 1))
    if task == "regression":
        yt = y_train.to_numpy(dtype=float)
        reg = DummyRegressor(strategy="mean").fit(x_tr, yt)
        pred = reg.predict(x_te)
        true: np.ndarray = y_test.to_numpy(dtype=float)
        if true.shape[1] == 1:
            return score(task, true.ravel(), np.asarray(pred).ravel(), None, metrics, None)
        return score(task, true, np.asarray(pred), None, metrics, None)
    ytr = y_train.iloc[:, 0].to_numpy()
    clf = DummyClassifier(strategy="most_frequent").fit(x_tr, ytr)
    pred = clf.predict(x_te)
    proba_small = clf.predict_proba(x_te)
    proba = np.zeros((len(y_test), len(classes) if classes is not None else proba_small.shape[1]))
    if classes is not None:
        for j, c in enumerate(clf.classes_):
            proba[:, list(classes).index(c)] = proba_small[:, j]
    else:
        proba = proba_small
    return score(task, y_test.iloc[:, 0].to_numpy(), pred, proba, metrics, classes)
