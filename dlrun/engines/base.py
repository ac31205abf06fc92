"""What every engine takes and returns. No TensorFlow import here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FitJob:
    """One model to train: a fold of one repeat, already preprocessed.

    Attributes:
        repeat: Repeat index (0-based).
        fold: Fold index (0-based).
        seed: The model's own seed, derived from the run seed, repeat and fold.
        x_train: Training features, float32, shape ``(n_train, *input_shape)``.
        y_train: Encoded training targets, float32, ``(n_train, n_out)`` or ``(n_train,)``
            (integer class codes for sparse losses).
        x_val: Validation features ``(n_val, *input_shape)`` or None.
        y_val: Validation targets, shaped like ``y_train``, or None.
        x_test: Held-out features ``(n_test, *input_shape)`` or None (mode ``none``).
        class_weight: ``{class_code: weight}`` or None.
        initial_epoch: Epochs already done (resume); the engine starts after them.
        initial_weights: Weights to start from (resume), as ``model.get_weights()``.
    """

    repeat: int
    fold: int
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    class_weight: dict[int, float] | None = None
    initial_epoch: int = 0
    initial_weights: list[np.ndarray] | None = None

    @property
    def key(self) -> tuple[int, int]:
        """``(repeat, fold)``."""
        return (self.repeat, self.fold)


@dataclass
class FitResult:
    """What training one model produced.

    Attributes:
        repeat: Repeat index.
        fold: Fold index.
        history: Keras-style per-epoch logs: ``{"loss": [...], "accuracy": [...], "val_loss": [...]}``.
        train_pred: Raw model outputs on ``x_train``, ``(n_train, n_out)``.
        test_pred: Raw model outputs on ``x_test``, ``(n_test, n_out)``, or None.
        epochs_run: Epochs actually trained (early stopping may end sooner).
        seconds: Wall time attributed to this model.
        engine: ``"sequential"`` or ``"stacked"``.
        model: The trained Keras model where the engine keeps one (sequential), else None.
        weights: The trained weights as ``model.get_weights()`` would list them.
    """

    repeat: int
    fold: int
    history: dict[str, list[float]]
    train_pred: np.ndarray
    test_pred: np.ndarray | None
    epochs_run: int
    seconds: float
    engine: str
    model: Any = None
    weights: list[np.ndarray] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EpochEvent:
    """Progress of one epoch, for a single model or a stack of models.

    Attributes:
        keys: ``(repeat, fold)`` of the models this event covers.
        epoch: 1-based epoch just finished.
        epochs: Total epochs asked for.
        logs: Metric values (mean over the models covered).
    """

    keys: tuple[tuple[int, int], ...]
    epoch: int
    epochs: int
    logs: dict[str, float]


EpochCallback = Callable[[EpochEvent], None]
