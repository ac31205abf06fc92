"""Output shapes and parameter counts of a layer stack, worked out without Keras.

``dlrun validate`` must not import TensorFlow, yet shows the model it would build;
common layers are counted here exactly as Keras counts them, others show ``?``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from dlrun.errors import SpecError
from dlrun.spec.models import Spec

_SHAPE_PRESERVING = {
    "Dropout",
    "Activation",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "SpatialDropout1D",
    "SpatialDropout2D",
}


def layer_table(
    entries: list[tuple[str, dict[str, Any]]], input_shape: tuple[int, ...]
) -> tuple[list[tuple[str, str, int | None]], int | None]:
    """``(class, output shape, params)`` per layer and the total (None if any is unknown).

    Args:
        entries: ``(class_name, args)`` of each layer.
        input_shape: Shape of one sample, e.g. ``(60,)``.
    """
    rows: list[tuple[str, str, int | None]] = []
    total: int | None = 0
    for name, shape, params in _walk(entries, input_shape):
        rows.append((name, "?" if shape is None else str((None, *shape)), params))
        total = None if params is None or total is None else total + params
    return rows, total


def output_shape(entries: list[tuple[str, dict[str, Any]]], input_shape: tuple[int, ...]) -> tuple[Any, ...] | None:
    """The stack's output shape with its batch axis, ``(None, 3)``, or None where a layer is not worked out here."""
    shapes = [shape for _, shape, _ in _walk(entries, input_shape)]
    last = shapes[-1] if shapes else tuple(input_shape)
    return None if last is None else (None, *last)


def _walk(
    entries: list[tuple[str, dict[str, Any]]], input_shape: tuple[int, ...]
) -> Iterator[tuple[str, tuple[int, ...] | None, int | None]]:
    """``(class, output shape of one sample or None, params or None)`` for each layer in turn."""
    shape: tuple[int, ...] | None = tuple(input_shape)
    for name, args in entries:
        params: int | None = None
        if shape is None:
            pass
        elif name == "Dense":
            units = int(args.get("units", 0))
            params = shape[-1] * units + (units if args.get("use_bias", True) else 0)
            shape = (*shape[:-1], units)
        elif name in _SHAPE_PRESERVING:
            params = shape[-1] if name == "PReLU" else 0
        elif name in ("BatchNormalization", "LayerNormalization"):
            per = (1 if args.get("center", True) else 0) + (1 if args.get("scale", True) else 0)
            per += 2 if name == "BatchNormalization" else 0
            params = shape[-1] * per
        elif name == "Flatten":
            params = 0
            shape = (math.prod(shape),)
        elif name == "Reshape":
            target = list(args.get("target_shape", []))
            if -1 in target:
                known = math.prod(t for t in target if t != -1)
                target[target.index(-1)] = math.prod(shape) // max(known, 1)
            params = 0
            shape = tuple(int(t) for t in target)
        else:
            shape = None
        yield name, shape, params


def default_loss(task: str, onehot: bool) -> str:
    """The loss used when ``compile.loss`` is omitted."""
    if task == "binary":
        return "categorical_crossentropy" if onehot else "binary_crossentropy"
    if task == "multiclass":
        return "categorical_crossentropy" if onehot else "sparse_categorical_crossentropy"
    return "mse"


def check_output(spec: Spec, output_shape: tuple[Any, ...], n_outputs: int, task: str) -> None:
    """Refuse an output layer that cannot fit the target (width, activation, rank), naming every problem."""
    entries = spec.model.entries
    last_i = len(entries) - 1
    last_name, last_args = entries[-1]
    path = f"model.layers[{last_i}].{last_name}"
    if len(output_shape) != 2:
        raise SpecError(
            [(path, f"the model must output (batch, {n_outputs}), got {output_shape}; add Flatten or Dense layers")]
        )
    problems: list[tuple[str, str]] = []
    width = output_shape[-1]
    if width != n_outputs:
        if task == "multiclass":
            need = f"{n_outputs} units, one per class"
        elif task == "binary":
            need = f"{n_outputs} unit{'s' if n_outputs > 1 else ''}"
        else:
            need = f"{n_outputs} unit{'s' if n_outputs > 1 else ''}, one per target"
        where = f"{path}.units" if last_name == "Dense" else path
        problems.append((where, f"the output layer has {width} units but the {task} target needs {need}"))
    act = str(last_args.get("activation", "linear")).lower()
    loss = spec.compile.loss_entry
    loss_name = (loss[0] if loss else default_loss(task, spec.preprocessing.target.onehot)).lower()
    if task == "multiclass" and act == "sigmoid":
        problems.append((f"{path}.activation", "sigmoid on a multiclass target: use activation: softmax"))
    # judged on the width the target needs, so a wrong width and a wrong activation are told together
    if task == "binary" and n_outputs == 1 and "crossentropy" in loss_name and act not in ("sigmoid",):
        if not (loss and loss[1].get("from_logits")):
            problems.append(
                (
                    f"{path}.activation",
                    f"binary cross-entropy needs a sigmoid output, got '{act}' "
                    "(or set compile.loss: {BinaryCrossentropy: {from_logits: true}})",
                )
            )
    if problems:
        raise SpecError(problems)
