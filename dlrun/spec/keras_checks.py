"""Keras names and arguments in a spec, checked against Keras' own tables without importing Keras.

Works on the raw mapping, so these problems are reported together with the schema's: unknown
layers, optimizers, losses, metrics and callbacks (with the nearest valid name), arguments a
Keras class does not take, and values that only make sense together. The tables are
:mod:`dlrun.spec.keras_names`.
"""

from __future__ import annotations

from typing import Any

from dlrun.spec import keras_names as kn
from dlrun.spec.dotted import lookup, short_repr, suggest
from dlrun.spec.models import CLASSIFICATION_METRICS, REGRESSION_METRICS, entry_of


def check_keras(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every Keras name, argument and combination problem of a raw spec mapping, as ``(path, message)``."""
    problems = _check_names(raw)
    return problems + [p for p in _check_values(raw) if p not in problems]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_layer_args(path: str, name: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """Static checks of the arguments users get wrong most (the rest is checked by Keras at build time)."""
    problems: list[tuple[str, str]] = []
    if name == "Dense":
        if "units" not in args:
            problems.append((f"{path}.units", "is required: the number of output units, e.g. units: 64"))
        elif not _is_int(args["units"]) or args["units"] <= 0:
            problems.append((f"{path}.units", f"must be a positive integer, got {args['units']!r}"))
    if name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "AlphaDropout", "GaussianDropout"):
        rate = args.get("rate")
        if rate is None:
            problems.append((f"{path}.rate", "is required: the fraction of inputs to drop, e.g. rate: 0.2"))
        elif not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            problems.append((f"{path}.rate", f"must be a number in [0, 1), got {rate!r}"))
    if name == "GaussianNoise" and "stddev" not in args:
        problems.append((f"{path}.stddev", "is required: the noise standard deviation, e.g. stddev: 0.1"))
    for key in ("input_shape", "batch_input_shape"):
        if key in args:
            problems.append((f"{path}.{key}", "comes from the data; remove it"))
    for key, val in args.items():
        problems += _check_nested(f"{path}.{key}", key, val)
    return problems


def _check_names(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Check Keras names and common layer arguments on the raw mapping (no Keras import).

    Works on the raw data so that these problems are reported together with schema errors.
    """
    problems: list[tuple[str, str]] = []
    layers = lookup(raw, "model", "layers")
    for i, entry in enumerate(layers if isinstance(layers, list) else []):
        got = entry_of(entry)
        if isinstance(got, str):
            problems.append((f"model.layers[{i}]", got))
            continue
        name, args = got
        if name not in kn.LAYERS:
            problems.append((f"model.layers[{i}].{name}", f"unknown Keras layer '{name}'{suggest(name, kn.LAYERS)}"))
            continue
        problems += _check_layer_args(f"model.layers[{i}].{name}", name, args)
    opt = lookup(raw, "compile", "optimizer")
    if opt is not None:
        got = entry_of(opt)
        if isinstance(got, str):
            problems.append(("compile.optimizer", got))
        elif got[0].lower() not in {o.lower() for o in kn.OPTIMIZERS}:
            problems.append(("compile.optimizer", f"unknown optimizer '{got[0]}'{suggest(got[0], kn.OPTIMIZERS)}"))
    loss = lookup(raw, "compile", "loss")
    if loss is not None:
        got = entry_of(loss)
        if isinstance(got, str):
            problems.append(("compile.loss", got))
        elif got[0] not in kn.LOSSES:
            problems.append(("compile.loss", f"unknown loss '{got[0]}'{suggest(got[0], kn.LOSSES)}"))
    metrics = lookup(raw, "compile", "metrics")
    for j, m in enumerate(metrics if isinstance(metrics, list) else []):
        if isinstance(m, str) and m not in kn.METRICS:
            problems.append((f"compile.metrics[{j}]", f"unknown Keras metric '{m}'{suggest(m, kn.METRICS)}"))
    callbacks = lookup(raw, "training", "callbacks")
    for j, entry in enumerate(callbacks if isinstance(callbacks, list) else []):
        got = entry_of(entry)
        if isinstance(got, str):
            problems.append((f"training.callbacks[{j}]", got))
        elif got[0] not in kn.CALLBACKS:
            problems.append(
                (f"training.callbacks[{j}].{got[0]}", f"unknown callback '{got[0]}'{suggest(got[0], kn.CALLBACKS)}")
            )
    valid = CLASSIFICATION_METRICS + REGRESSION_METRICS
    ev_metrics = lookup(raw, "evaluation", "metrics")
    for j, m in enumerate(ev_metrics if isinstance(ev_metrics, list) else []):
        if isinstance(m, str) and m not in valid:
            problems.append(
                (f"evaluation.metrics[{j}]", f"must be one of {', '.join(valid)}, got '{m}'{suggest(m, valid)}")
            )
    grid = lookup(raw, "sweep", "grid")
    for key, values in grid.items() if isinstance(grid, dict) else []:
        if isinstance(values, list) and not values:
            problems.append((f"sweep.grid.{key}", "needs at least one value"))
    return problems


# Losses for class labels: meaningless on a regression target; the sparse ones need integer codes.
CLASSIFICATION_LOSSES = (
    "binary_crossentropy",
    "BinaryCrossentropy",
    "binary_focal_crossentropy",
    "BinaryFocalCrossentropy",
    "categorical_crossentropy",
    "CategoricalCrossentropy",
    "categorical_focal_crossentropy",
    "CategoricalFocalCrossentropy",
    "sparse_categorical_crossentropy",
    "SparseCategoricalCrossentropy",
    "categorical_hinge",
    "CategoricalHinge",
    "hinge",
    "Hinge",
    "squared_hinge",
    "SquaredHinge",
)
SPARSE_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
# Callbacks that watch a metric, and their default monitor.
_MONITORS = {"EarlyStopping": "val_loss", "ReduceLROnPlateau": "val_loss", "ModelCheckpoint": "val_loss"}


def _class_of(name: str, table: dict[str, tuple[str, ...]]) -> str | None:
    """The class a (possibly lower-case alias) name refers to in an argument table, e.g. sgd → SGD."""
    if name in table:
        return name
    flat = name.lower().replace("_", "")
    return next((c for c in table if c.lower() == flat), None)


def _unknown_args(
    path: str, what: str, name: str, args: dict[str, Any], table: dict[str, tuple[str, ...]]
) -> list[tuple[str, str]]:
    """One problem per argument that the Keras class does not take, with the nearest valid name."""
    cls = _class_of(name, table)
    if cls is None:
        return []  # a class whose **kwargs are open: Keras checks it
    valid = table[cls]
    problems = []
    for key in args:
        if key not in valid:
            hint = suggest(str(key), valid) or f"; valid: {', '.join(valid)}"
            problems.append((f"{path}.{key}", f"unknown argument '{key}' of {what} {cls}{hint}"))
    return problems


def _nested_args(path: str, key: str, val: Any) -> list[tuple[str, str]]:
    """Arguments of a nested ``{MaxNorm: {max_value: 3}}`` initializer/regularizer/constraint."""
    tables = {
        "initializer": (kn.INITIALIZER_ARGS, "initializer"),
        "regularizer": (kn.REGULARIZER_ARGS, "regularizer"),
        "constraint": (kn.CONSTRAINT_ARGS, "constraint"),
    }
    kind = next((k for k in tables if key.endswith(k)), None)
    if kind is None or not isinstance(val, dict) or len(val) != 1:
        return []
    name, args = next(iter(val.items()))
    if not isinstance(args, dict):
        return []
    table, what = tables[kind]
    return _unknown_args(f"{path}.{name}", what, str(name), args, table)


def _positive_number(path: str, v: Any) -> list[tuple[str, str]]:
    if v is None or isinstance(v, (str, dict)):
        return []  # a schedule or a name: Keras checks it
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        return [(path, f"must be a positive number, e.g. 0.001, got {short_repr(v)}")]
    return []


def _check_values(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Arguments of layers, optimizers, losses and callbacks against the Keras signatures (no Keras
    import), and values that only make sense together (sparse loss and one-hot targets, a callback
    watching validation scores without validation rows, image options on a table)."""
    problems: list[tuple[str, str]] = []
    layers = lookup(raw, "model", "layers")
    for i, entry in enumerate(layers if isinstance(layers, list) else []):
        got = entry_of(entry)
        if isinstance(got, str) or got[0] not in kn.LAYERS:
            continue
        name, args = got
        path = f"model.layers[{i}].{name}"
        problems += [p for p in _unknown_args(path, "layer", name, args, kn.LAYER_ARGS) if "input_shape" not in p[0]]
        for key, val in args.items():
            problems += _nested_args(f"{path}.{key}", str(key), val)
    opt = lookup(raw, "compile", "optimizer")
    opt_entry = entry_of(opt) if opt is not None else None
    if isinstance(opt_entry, tuple):
        name, args = opt_entry
        path = f"compile.optimizer.{name}"
        problems += _unknown_args(path, "optimizer", name, args, kn.OPTIMIZER_ARGS)
        problems += _positive_number(f"{path}.learning_rate", args.get("learning_rate"))
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            problems += _positive_number(f"{path}.{key}", args.get(key))
    loss = lookup(raw, "compile", "loss")
    loss_entry = entry_of(loss) if loss is not None else None
    if isinstance(loss_entry, tuple):
        name, args = loss_entry
        problems += _unknown_args(f"compile.loss.{name}", "loss", name, args, kn.LOSS_ARGS)
        if name in SPARSE_LOSSES and lookup(raw, "preprocessing", "target", "onehot") is True:
            problems.append(
                (
                    "compile.loss",
                    f"{name} takes integer class codes, but preprocessing.target.onehot is true (one-hot targets); "
                    "use categorical_crossentropy, or set onehot: false",
                )
            )
    has_val = _has_validation_rows(raw)
    callbacks = lookup(raw, "training", "callbacks")
    for j, entry in enumerate(callbacks if isinstance(callbacks, list) else []):
        got = entry_of(entry)
        if isinstance(got, str) or got[0] not in kn.CALLBACKS:
            continue
        name, args = got
        path = f"training.callbacks[{j}].{name}"
        problems += _unknown_args(path, "callback", name, args, kn.CALLBACK_ARGS)
        monitor = args.get("monitor", _MONITORS.get(name))
        if isinstance(monitor, str) and monitor.startswith("val_") and not has_val:
            problems.append(
                (
                    f"{path}.monitor",
                    f"watches '{monitor}' but the run has no validation rows, so it would never act; set "
                    "evaluation.validation_split (e.g. 0.2) or monitor a training metric such as 'loss'",
                )
            )
    image = lookup(raw, "preprocessing", "image")
    source = lookup(raw, "data", "source")
    if isinstance(image, dict) and isinstance(source, str) and not source.startswith("keras:"):
        for key in ("rescale", "flatten", "reshape"):
            if image.get(key) not in (None, False):
                problems.append(
                    (
                        f"preprocessing.image.{key}",
                        f"applies to image data (keras:mnist, keras:fashion_mnist, keras:cifar10) only, but "
                        f"data.source '{short_repr(source)}' is a table; remove it",
                    )
                )
    return problems


def _has_validation_rows(raw: dict[str, Any]) -> bool:
    ev = lookup(raw, "evaluation") or {}
    if not isinstance(ev, dict):
        return True
    vs = ev.get("validation_split", 0.0)
    fraction = isinstance(vs, (int, float)) and not isinstance(vs, bool) and vs > 0
    return ev.get("mode") == "validation_split" or fraction


_NESTED_TABLES = {
    "initializer": kn.INITIALIZERS,
    "regularizer": kn.REGULARIZERS,
    "constraint": kn.CONSTRAINTS,
    "activation": kn.ACTIVATIONS,
}


def _check_nested(path: str, key: str, val: Any) -> list[tuple[str, str]]:
    """Check an initializer/regularizer/constraint/activation argument by its key's suffix."""
    kind = next((k for k in _NESTED_TABLES if key.endswith(k)), None)
    if kind is None or val is None:
        return []
    table = _NESTED_TABLES[kind]
    if isinstance(val, str):
        name = val
    elif isinstance(val, dict) and len(val) == 1:
        name = str(next(iter(val)))
        if kind == "activation":
            return [(path, f"must be an activation name, got a mapping {val!r}")]
    elif isinstance(val, (int, float)) and kind == "regularizer":
        return [(path, f"must be a regularizer name or {{L2: {{l2: {val}}}}}, got {val!r}")]
    else:
        return [(path, f"must be a {kind} name or a one-key mapping {{Name: {{args}}}}, got {val!r}")]
    known = {t.lower().replace("_", "") for t in table}
    if name.lower().replace("_", "") not in known:
        return [(path, f"unknown {kind} '{name}'{suggest(name, table)}")]
    return []
