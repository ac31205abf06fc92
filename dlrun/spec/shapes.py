"""Output shapes and parameter counts of a layer stack, worked out without Keras.

``dlrun validate`` must not import TensorFlow, yet shows the model it would build;
common layers are counted here exactly as Keras counts them, others show ``?``.
"""

from __future__ import annotations

import math
from typing import Any

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
    shape: tuple[int, ...] | None = tuple(input_shape)
    rows: list[tuple[str, str, int | None]] = []
    total: int | None = 0
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
        rows.append((name, "?" if shape is None else str((None, *shape)), params))
        total = None if params is None or total is None else total + params
    return rows, total
