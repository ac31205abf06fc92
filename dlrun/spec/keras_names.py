"""Names of Keras classes and functions, and their constructor arguments, so a spec can be
checked without importing Keras.

The tables are data (``keras_names.json`` beside this module), generated from the installed Keras
by ``scripts/gen_keras_names.py``; ``tests/spec/test_keras_names.py`` keeps them in sync. They are
read once, when this module is first imported.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

_DATA: dict[str, Any] = json.loads(resources.files("dlrun.spec").joinpath("keras_names.json").read_text("utf-8"))


def _names(key: str) -> tuple[str, ...]:
    return tuple(_DATA[key])


def _args(key: str) -> dict[str, tuple[str, ...]]:
    return {cls: tuple(args) for cls, args in _DATA[key].items()}


KERAS_VERSION: str = str(_DATA["KERAS_VERSION"])

LAYERS = _names("LAYERS")
OPTIMIZERS = _names("OPTIMIZERS")
LOSSES = _names("LOSSES")
METRICS = _names("METRICS")
INITIALIZERS = _names("INITIALIZERS")
REGULARIZERS = _names("REGULARIZERS")
CONSTRAINTS = _names("CONSTRAINTS")
ACTIVATIONS = _names("ACTIVATIONS")
CALLBACKS = _names("CALLBACKS")

# Constructor arguments (classes whose **kwargs are open are left out: not checked).
LAYER_ARGS = _args("LAYER_ARGS")
OPTIMIZER_ARGS = _args("OPTIMIZER_ARGS")
LOSS_ARGS = _args("LOSS_ARGS")
CALLBACK_ARGS = _args("CALLBACK_ARGS")
INITIALIZER_ARGS = _args("INITIALIZER_ARGS")
REGULARIZER_ARGS = _args("REGULARIZER_ARGS")
CONSTRAINT_ARGS = _args("CONSTRAINT_ARGS")
