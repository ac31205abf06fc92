"""Held-out scoring agrees with scikit-learn's definitions; baselines are no-skill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from dlrun.evaluation.scoring import baseline_scores, score

CLASSES = np.array(["M", "R"])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [5, 21, 187])
def test_binary_metrics_equal_scikit_learn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    yt = rng.choice(CLASSES, n)
    p1 = np.round(rng.random(n), 1)  # rounding makes ties, which AUC must average
    proba = np.c_[1 - p1, p1]
    yp = np.where(p1 >= 0.5, "R", "M")
    got = score("binary", yt, yp, proba, ["accuracy", "precision", "recall", "f1", "roc_auc"], CLASSES)
    kw = {"pos_label": "R", "zero_division": 0}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))
    assert got["precision"] == pytest.approx(skm.precision_score(yt, yp, **kw))
    assert got["recall"] == pytest.approx(skm.recall_score(yt, yp, **kw))
    assert got["f1"] == pytest.approx(skm.f1_score(yt, yp, **kw))
    if len(set(yt)) == 2:
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt == "R", p1))
    else:
        assert np.isnan(got["roc_auc"])


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_macro_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = np.array([0, 1, 2, 3])
    yt = rng.choice(classes, 40)
    yp = rng.choice(classes[:3], 40)  # class 3 never predicted: zero division
    got = score("multiclass", yt, yp, None, ["accuracy", "precision", "recall", "f1"], classes)
    kw = {"average": "macro", "zero_division": 0, "labels": classes}
    assert got["precision"] == pytest.approx(skm.precision_score(yt, yp, **kw))
    assert got["recall"] == pytest.approx(skm.recall_score(yt, yp, **kw))
    assert got["f1"] == pytest.approx(skm.f1_score(yt, yp, **kw))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))


def test_regression_metrics_in_original_units() -> None:
    yt = np.array([3.0, 5.0, 7.0])
    yp = np.array([4.0, 5.0, 5.0])
    got = score("regression", yt, yp, None, ["mae", "rmse", "r2"], None)
    assert got["mae"] == pytest.approx(1.0)
    assert got["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert got["r2"] == pytest.approx(skm.r2_score(yt, yp))


def test_baseline_is_no_skill() -> None:
    y_tr = pd.DataFrame({"y": ["'-1'"] * 97 + ["'1'"] * 3})
    y_te = pd.DataFrame({"y": ["'-1'"] * 48 + ["'1'"] * 2})
    got = baseline_scores("binary", y_tr, y_te, ["accuracy", "roc_auc", "f1"], np.array(["'-1'", "'1'"]))
    assert got == {"accuracy": pytest.approx(0.96), "roc_auc": 0.5, "f1": 0.0}
    reg = baseline_scores("regression", pd.DataFrame({"y": [1.0, 3.0]}), pd.DataFrame({"y": [2.0, 4.0]}), ["mae"], None)
    assert reg["mae"] == pytest.approx(1.0)
