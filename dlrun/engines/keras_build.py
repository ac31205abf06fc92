"""Build Keras models, optimizers, losses and callbacks from a validated spec.

Objects are made with Keras' own ``get``/``deserialize``; a spec entry
``{MaxNorm: {max_value: 3}}`` becomes ``{"class_name": "MaxNorm", "config": {...}}``.
Importing this module imports Keras (and so TensorFlow): only call it after the
spec has been validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlrun.errors import SpecError
from dlrun.spec.schema import Spec
from dlrun.spec.shapes import check_output, default_loss

_NESTED_SUFFIXES = ("initializer", "regularizer", "constraint")


def default_train_metrics(task: str) -> list[str]:
    """Metrics Keras tracks per epoch when ``compile.metrics`` is omitted."""
    return ["accuracy"] if task in ("binary", "multiclass") else ["mae"]


def default_eval_metrics(task: str) -> list[str]:
    """Held-out metrics (scikit-learn) reported when ``evaluation.metrics`` is omitted."""
    if task == "binary":
        return ["accuracy", "roc_auc", "f1", "precision", "recall"]
    if task == "multiclass":
        return ["accuracy", "f1", "precision", "recall"]
    return ["mae", "rmse", "r2"]


@dataclass(frozen=True)
class CompileConfig:
    """What ``model.compile`` gets, resolved from the spec and the task.

    Attributes:
        optimizer: Keras serialized optimizer ``{"class_name", "config"}``.
        loss: A Keras loss identifier or serialized loss.
        metrics: Keras metric identifiers tracked per epoch.
    """

    optimizer: dict[str, Any]
    loss: Any
    metrics: list[str]


def resolve_compile(spec: Spec, task: str) -> CompileConfig:
    """Fill in the task defaults of the ``compile`` section."""
    name, args = spec.compile.optimizer_entry
    loss_entry = spec.compile.loss_entry
    if loss_entry is None:
        loss: Any = default_loss(task, spec.preprocessing.target.onehot)
    elif loss_entry[1]:
        loss = {"class_name": loss_entry[0], "config": loss_entry[1]}
    else:
        loss = loss_entry[0]
    metrics = spec.compile.metrics if spec.compile.metrics is not None else default_train_metrics(task)
    return CompileConfig(optimizer={"class_name": name, "config": dict(args)}, loss=loss, metrics=list(metrics))


def to_keras_config(value: Any) -> Any:
    """Turn a spec's ``{Name: {args}}`` nested object into Keras' ``{"class_name", "config"}``."""
    if isinstance(value, dict) and len(value) == 1 and "class_name" not in value:
        name, args = next(iter(value.items()))
        if isinstance(args, dict) or args is None:
            return {"class_name": str(name), "config": {k: to_keras_config(v) for k, v in (args or {}).items()}}
    return value


def layer_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments with nested initializers/regularizers/constraints converted."""
    return {k: to_keras_config(v) if k.endswith(_NESTED_SUFFIXES) else v for k, v in args.items()}


def make_layer(index: int, name: str, args: dict[str, Any]) -> Any:
    """Build one Keras layer; a bad argument is a SpecError at ``model.layers[i].Name``."""
    import keras

    cls = getattr(keras.layers, name, None)
    path = f"model.layers[{index}].{name}"
    if cls is None:
        raise SpecError([(path, f"unknown Keras layer '{name}'")])
    try:
        return cls(**layer_kwargs(args))
    except TypeError as exc:
        raise SpecError([(path, _clean(exc))]) from None
    except ValueError as exc:
        raise SpecError([(path, _clean(exc))]) from None


def _clean(exc: Exception) -> str:
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\w+\.__init__\(\) ", "", text).replace("__init__() ", "")


def build_model(spec: Spec, input_shape: tuple[int, ...], n_outputs: int, task: str) -> Any:
    """Build (uncompiled) the layer stack on an input of ``input_shape``.

    Args:
        spec: The validated spec.
        input_shape: Shape of one sample, e.g. ``(60,)`` or ``(28, 28, 1)``.
        n_outputs: Width the last layer must produce: 1 for binary (sigmoid) or
            one-output regression, the number of classes for multiclass, k for k targets.
        task: ``binary``, ``multiclass`` or ``regression``.

    Returns:
        A ``keras.Sequential`` whose output is ``(batch, n_outputs)``.

    Raises:
        SpecError: A layer argument is wrong, or the output does not fit the target.
    """
    import keras

    model = keras.Sequential([keras.Input(shape=input_shape)], name=spec.name.replace(".", "_"))
    for i, (name, args) in enumerate(spec.model.entries):
        layer = make_layer(i, name, args)
        try:
            model.add(layer)
        except (TypeError, ValueError, IndexError) as exc:
            raise SpecError([(f"model.layers[{i}].{name}", _clean(exc))]) from None
    check_output(spec, tuple(model.output_shape), n_outputs, task)
    return model


def make_optimizer(cfg: CompileConfig) -> Any:
    """A fresh Keras optimizer from its serialized form."""
    import keras

    conf = dict(cfg.optimizer["config"])
    lr = conf.get("learning_rate")
    if isinstance(lr, dict):  # a schedule: {ExponentialDecay: {...}} (or Keras' serialized form)
        try:
            conf["learning_rate"] = keras.optimizers.schedules.deserialize(to_keras_config(lr))
        except (TypeError, ValueError) as exc:
            raise SpecError([("compile.optimizer.learning_rate", _clean(exc))]) from None
    name = str(cfg.optimizer["class_name"])
    cls = next(
        (
            getattr(keras.optimizers, a)
            for a in dir(keras.optimizers)
            if a.lower() == name.lower() and isinstance(getattr(keras.optimizers, a), type)
        ),
        None,
    )
    try:
        if cls is not None:  # by class, so every optimizer Keras ships works (get() misses Lamb, Muon)
            return cls(**conf)
        return keras.optimizers.get(_canonical_optimizer(cfg.optimizer))
    except (TypeError, ValueError, AttributeError) as exc:
        raise SpecError([("compile.optimizer", _clean(exc))]) from None


def _canonical_optimizer(cfg: dict[str, Any]) -> dict[str, Any] | str:
    import keras

    name = cfg["class_name"]
    for attr in dir(keras.optimizers):
        if attr.lower() == name.lower() and isinstance(getattr(keras.optimizers, attr), type):
            name = attr
            break
    if not cfg["config"]:
        return (
            name.lower()
            if name.lower() in ("sgd", "adam", "rmsprop", "adagrad", "adamw", "nadam", "adamax")
            else {
                "class_name": name,
                "config": {},
            }
        )
    return {"class_name": name, "config": cfg["config"]}


def make_loss(cfg: CompileConfig) -> Any:
    """A Keras loss from its identifier or serialized form."""
    import keras

    try:
        return keras.losses.get(cfg.loss)
    except (TypeError, ValueError) as exc:
        raise SpecError([("compile.loss", _clean(exc))]) from None


def make_callbacks(spec: Spec) -> list[Any]:
    """The spec's Keras callbacks (EarlyStopping, ReduceLROnPlateau, ...)."""
    import keras

    out = []
    for j, (name, args) in enumerate(spec.training.callback_entries):
        cls = getattr(keras.callbacks, name)
        try:
            out.append(cls(**args))
        except (TypeError, ValueError) as exc:
            raise SpecError([(f"training.callbacks[{j}].{name}", _clean(exc))]) from None
    return out


def compile_model(model: Any, cfg: CompileConfig, steps_per_execution: int = 1, jit: bool | str = "auto") -> None:
    """``model.compile`` with a fresh optimizer from ``cfg``."""
    try:
        model.compile(
            optimizer=make_optimizer(cfg),
            loss=make_loss(cfg),
            metrics=list(cfg.metrics),
            steps_per_execution=steps_per_execution,
            jit_compile=jit,
        )
    except (TypeError, ValueError) as exc:
        raise SpecError([("compile", _clean(exc))]) from None


def summary_rows(model: Any) -> list[tuple[str, str, str, int]]:
    """``(name, class, output shape, params)`` of each layer, for ``dlrun validate``."""
    return [
        (layer.name, type(layer).__name__, str(layer.output.shape), int(layer.count_params())) for layer in model.layers
    ]
