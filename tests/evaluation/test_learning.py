"""Tests of the check that a model learned: its loss against the no-skill predictor's, and constant outputs."""

from __future__ import annotations

import numpy as np
import pytest

from dlrun.evaluation import learning


def _h(p: float) -> float:
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


@pytest.mark.parametrize(
    ("loss", "y", "weights", "expected"),
    [
        pytest.param("binary_crossentropy", [[0], [0], [0], [1]], None, _h(0.25), id="bce-priors"),
        pytest.param("BinaryCrossentropy", [[0], [0], [0], [1]], None, _h(0.25), id="bce-class-name"),
        # balanced weights make the best constant 1/2, and their mean is 1
        pytest.param(
            "binary_crossentropy", [[0], [0], [0], [1]], [2 / 3, 2 / 3, 2 / 3, 2.0], np.log(2), id="bce-balanced"
        ),
        pytest.param(
            "categorical_crossentropy",
            np.eye(3)[[0, 0, 1, 2]],
            None,
            -(0.5 * np.log(0.5) + 0.5 * np.log(0.25)),
            id="cce",
        ),
        pytest.param(
            "sparse_categorical_crossentropy",
            [0, 0, 1, 2],
            None,
            -(0.5 * np.log(0.5) + 0.5 * np.log(0.25)),
            id="sparse",
        ),
        pytest.param("mse", [[1.0], [2.0], [3.0], [6.0]], None, float(np.var([1, 2, 3, 6])), id="mse-variance"),
        pytest.param("mean_absolute_error", [[1.0], [2.0], [3.0], [10.0]], None, (1 + 0 + 1 + 8) / 4, id="mae-median"),
        pytest.param("mse", [[0.0, 10.0], [2.0, 30.0]], None, (1.0 + 100.0) / 2, id="mse-two-outputs"),
    ],
)
def test_no_skill_loss_is_the_best_constant(loss: str, y: object, weights: object, expected: float) -> None:
    got = learning.no_skill_loss(loss, np.asarray(y, dtype=float), None if weights is None else np.asarray(weights))
    assert got == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_moves_the_no_skill_loss_and_unknown_losses_are_skipped() -> None:
    y = np.array([[0.0], [1.0], [1.0], [1.0]])
    assert learning.no_skill_loss("binary_crossentropy", y, label_smoothing=0.2) == pytest.approx(
        _h(0.7)
    )  # targets 0.1 and 0.9
    assert learning.no_skill_loss("hinge", y) is None
    assert learning.no_skill_loss("sparse_categorical_crossentropy", np.array([0, 0]), n_classes=3) == pytest.approx(
        0.0, abs=1e-5
    )


@pytest.mark.parametrize(
    ("outputs", "constant"),
    [
        pytest.param(np.full((5, 2), [1.0, 0.0]), True, id="one-class"),
        pytest.param(np.full((5, 1), 512.25) + np.arange(5)[:, None] * 1e-9, True, id="float-noise"),
        pytest.param(np.array([[0.2], [0.21], [0.9]]), False, id="varies"),
        pytest.param(np.array([[0.4]]), False, id="one-row"),
        pytest.param(None, False, id="no-held-out-rows"),
    ],
)
def test_constant_outputs(outputs: np.ndarray | None, constant: bool) -> None:
    assert learning.constant_outputs(outputs) is constant


def test_check_models_flags_blow_ups_stuck_models_and_constant_outputs_only() -> None:
    varied = np.linspace(0.1, 0.9, 6)[:, None]
    found = learning.check_models(
        keys=[(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)],
        final_loss=[7.5, 0.30, 0.690, 0.20, None],
        no_skill=[0.69, 0.69, 0.693, 0.69, 0.69],
        held_out=[varied, varied, varied, np.full((6, 1), 0.6), None],
        score=[0.52, 0.85, 0.55, 0.5, None],
        baseline=[0.53, 0.53, 0.53, 0.53, None],
    )
    assert [(m.repeat, m.fold) for m in found] == [(0, 0), (0, 2), (0, 3)]
    assert [m.blew_up for m in found] == [True, False, False]
    assert [m.constant_predictions for m in found] == [False, False, True]


def test_a_healthy_run_has_no_block() -> None:
    found = learning.check_models([(0, 0)], [0.3], [0.69], [np.linspace(0, 1, 4)[:, None]])
    assert found == [] and learning.learning_block(found, 1, ("Adam", {}), "accuracy") is None


def test_the_warning_names_models_folds_scores_and_the_spec_path() -> None:
    found = learning.check_models(
        [(0, f) for f in range(10)],
        [7.5, 7.6] + [0.3] * 8,
        [0.69] * 10,
        [np.full((4, 2), [1.0, 0.0]), None] + [np.linspace(0, 1, 4)[:, None]] * 8,
        [0.52, 0.48] + [0.8] * 8,
        [0.53, 0.53] + [0.53] * 8,
    )
    block = learning.learning_block(found, 10, ("SGD", {"learning_rate": 1e6, "momentum": 0.9}), "accuracy")
    assert block is not None and block["spec_path"] == "compile.optimizer.SGD.learning_rate"
    text = learning.learning_warning(block)
    assert text.startswith("2 of 10 models did not learn (repeat 0 fold 0, repeat 0 fold 1)")
    assert "final training loss 7.5–7.6 vs 0.69 for the no-skill predictor" in text
    assert "held-out accuracy 0.5 vs no-skill baseline 0.53" in text
    assert "learning rate (1000000.0) is too high" in text and "compile.optimizer.SGD.learning_rate" in text
    assert learning.learning_mark({"learning": block}) == "did not learn (2 of 10 models)"
    assert learning.learning_mark({}) == ""


def test_unscaled_features_are_named_as_a_cause() -> None:
    found = learning.check_models([(0, 0)], [5.6], [0.65], [None])
    cause, path = learning.likely_cause(found, ("adam", {}), scaling="none")
    assert "preprocessing.scaling: standard" in cause and path == "compile.optimizer.adam.learning_rate"
    stuck = learning.check_models([(0, 0)], [0.69], [0.69], [None])
    assert "training.epochs" in learning.likely_cause(stuck, ("SGD", {"learning_rate": 1e-9}))[0]
