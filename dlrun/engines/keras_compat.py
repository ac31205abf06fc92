"""Every use of Keras internals (``keras.src``, private attributes) in dlrun, in one place.

Tested with Keras 3.10 to 3.15 (``pyproject.toml`` bounds the range). Each function says
which internal it touches and why the public API does not suffice.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def hide_tensorflow() -> None:
    """Under another backend, stop Keras from importing TensorFlow just because it is installed.

    Keras probes ``module_utils.tensorflow.available`` (which imports TensorFlow: 3 s) to seed it
    in ``set_random_seed`` and to recognise ``tf.TensorShape`` when it saves a ``.keras`` file.
    Under JAX neither matters, so the lazy module is marked unavailable unless TensorFlow is
    already imported.
    """
    import keras
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules and lazy.module is None:
        lazy._available = False


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without importing TensorFlow under another backend."""
    import keras

    hide_tensorflow()
    keras.utils.set_random_seed(int(seed))


@contextmanager
def recording_initializers() -> Iterator[dict[int, Any]]:
    """Record the initializer of every weight a layer creates while the block runs.

    Yields ``{id(variable): initializer}``. Keras drops a variable's initializer once
    it has drawn its value, and layers name theirs differently (an LSTM's bias
    initializer is a closure), so ``Layer.add_weight`` is wrapped while the model builds.
    """
    import keras
    from keras.src.layers.layer import Layer

    seen: dict[int, Any] = {}
    original = Layer.add_weight
    signature = inspect.signature(original)

    def add_weight(self: Any, *args: Any, **kwargs: Any) -> Any:
        var = original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        init = bound.arguments.get("initializer")
        if init is None:
            init = "glorot_uniform" if "float" in str(var.dtype) else "zeros"
        seen[id(var)] = keras.initializers.get(init) if not callable(init) or isinstance(init, str) else init
        return var

    Layer.add_weight = add_weight  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Layer.add_weight = original  # type: ignore[method-assign]


def reseeded(init: Any, seed_generator: Any) -> Any:
    """A copy of a Keras random initializer that draws from ``seed_generator``.

    A ``RandomInitializer`` keeps its seed in ``.seed`` (an int gives the same values on
    every call); pointing it at a ``SeedGenerator`` whose state is mapped per model
    inside a ``StatelessScope`` gives each model its own draw with the layer's own
    distribution and the single model's fan-in and fan-out.
    """
    from keras.src.initializers.random_initializers import RandomInitializer

    if isinstance(init, RandomInitializer):
        out = copy.copy(init)
        out.seed = seed_generator
        return out
    return init


def loss_object(loss: Any) -> Any:
    """A Keras ``Loss`` object for a loss function or object, as ``model.compile`` wraps it."""
    import keras
    from keras.src.losses.losses import LossFunctionWrapper

    if isinstance(loss, keras.losses.Loss):
        return loss
    return LossFunctionWrapper(loss, name=getattr(loss, "__name__", "loss"))


def early_stopping_rule(callback: Any, model: Any) -> tuple[str, float]:
    """``(mode, signed min_delta)`` of a Keras EarlyStopping bound to ``model``.

    ``MonitorCallback._set_monitor_op`` resolves ``mode: auto`` from the compiled metrics'
    direction exactly as ``model.fit`` would.
    """
    import keras

    callback.set_model(model)
    callback._set_monitor_op()
    mode = "max" if callback.monitor_op is keras.ops.greater else "min"
    return mode, float(callback.min_delta)


def strip_mask(x: Any) -> Any:
    """``x`` without the Keras mask attached to it (the engine weights padded rows itself)."""
    from keras.src import backend

    if backend.get_keras_mask(x) is None:
        return x
    return x * 1


def keras_mask(x: Any) -> Any:
    """The Keras mask propagated onto ``x``, or None."""
    from keras.src import backend

    return backend.get_keras_mask(x)


def compiled_metrics(model: Any) -> list[tuple[Any, bool]]:
    """``(metric, weighted)`` for the metrics ``model.compile`` made (single-output models).

    ``compute_metrics`` gives ``metrics`` no sample weights at all (only ``weighted_metrics``
    get them), so padded rows could not be kept out through it; the engine updates each
    compiled metric itself with a 0/1 row mask (times the class weights for weighted ones).
    """
    cm = model._compile_metrics
    if cm is None:
        return []
    return [(m, False) for m in cm._flat_metrics if m] + [(m, True) for m in cm._flat_weighted_metrics if m]
