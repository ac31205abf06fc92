"""What every engine takes and returns. No TensorFlow import here."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dlrun.errors import SpecError


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
        y_test: Held-out targets, shaped like ``y_train``, or None: engines record the
            ``test_`` loss and metrics on them each epoch (never used to steer training).
        hparams: Per-model values of the spec's scalars by dotted path
            (``{"compile.optimizer.Adam.learning_rate": 0.01}``), or None: the stacked engine
            trains models that differ only in these in one program
            (:func:`dlrun.engines.stacked.hparams.share_groups`).
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
    y_test: np.ndarray | None = None
    hparams: dict[str, float] | None = None

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


# ----------------------------------------------------------------------------- the protocol
@runtime_checkable
class Engine(Protocol):
    """What every training engine is: a name, a support check, a chunk size and ``fit``.

    Engines are built with ``(spec, task, input_shape, n_outputs, **options)`` (see
    :func:`make_engine`) and import Keras or its backend only when built.

    Attributes:
        name: The engine's name in ``runtime.engine``, ``scores.csv`` and ``summary.json``.
        shares_programs: Whether specs of one ``share_groups`` group can train together in
            one program (``fit_many``).
    """

    name: str
    shares_programs: bool

    @staticmethod
    def supports(spec: Any, task: str) -> str | None:
        """``None`` when the engine can train ``spec`` for ``task``; else one line saying why not."""
        ...

    def models_per_chunk(self, jobs: Sequence[FitJob]) -> int:
        """How many of ``jobs`` one ``fit`` call should get (1: one model at a time, each fold
        prepared just before it trains)."""
        ...

    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        """Train ``jobs``; yield one result per job as soon as it is done, in job order."""
        ...


# name -> (module, class): engines import Keras, so they are loaded only when asked for
_REGISTRY: dict[str, tuple[str, str]] = {
    "stacked": ("dlrun.engines.stacked", "StackedEngine"),
    "sequential": ("dlrun.engines.sequential", "SequentialEngine"),
}

#: The order ``runtime.engine: auto`` tries engines in: the first that supports a spec trains it.
AUTO_ORDER: tuple[str, ...] = ("stacked", "sequential")


def engine_names() -> list[str]:
    """Every registered engine's name."""
    return list(_REGISTRY)


def register_engine(name: str, module: str, cls: str) -> None:
    """Make the engine class ``module.cls`` available as ``runtime.engine: name``."""
    _REGISTRY[name] = (module, cls)


def engine_class(name: str) -> type[Any]:
    """The class registered as ``name`` (imported now).

    Raises:
        KeyError: No engine has that name.
    """
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def unsupported_reason(name: str, spec: Any, task: str) -> str | None:
    """Why engine ``name`` cannot train ``spec`` (``None``: it can), before anything is built."""
    reason: str | None = engine_class(name).supports(spec, task)
    return reason


def make_engine(
    name: str, spec: Any, task: str, input_shape: tuple[int, ...], n_outputs: int, **options: Any
) -> Engine:
    """Build engine ``name`` for a spec (``options`` go to its constructor, e.g. ``keep_model``)."""
    engine: Engine = engine_class(name)(spec, task, input_shape, n_outputs, **options)
    return engine


# ----------------------------------------------------------------------------- checks every engine makes
def check_spec(spec: Any) -> None:
    """Problems every engine refuses, raised before training.

    Raises:
        SpecError: A callback monitors held-out ``test_`` scores (they must never
            steer training).
    """
    problems = []
    for j, (name, args) in enumerate(spec.training.callback_entries):
        monitor = str(args.get("monitor", "val_loss"))
        if monitor.startswith("test_"):
            problems.append(
                (
                    f"training.callbacks[{j}].{name}.monitor",
                    f"'{monitor}' is a held-out score and may not steer training; monitor val_{monitor[5:]} "
                    "(set evaluation.validation_split) or a training metric",
                )
            )
    if problems:
        raise SpecError(problems)
