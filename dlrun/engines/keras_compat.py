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
def recording_initializers(draw: bool = True) -> Iterator[dict[int, Any]]:
    """Record the initializer of every weight a layer creates while the block runs.

    Yields ``{id(variable): initializer}``. Keras drops a variable's initializer once
    it has drawn its value, and layers name theirs differently (an LSTM's bias
    initializer is a closure), so ``Layer.add_weight`` is wrapped while the model builds.

    Args:
        draw: False: create every weight as zeros instead of drawing it (the stacked engine
            draws each model's own values from the recorded initializers in one program, and
            eager random draws compile one small program per shape: about a second per model).
    """
    import keras
    from keras.src.layers.layer import Layer

    seen: dict[int, Any] = {}
    original = Layer.add_weight
    signature = inspect.signature(original)

    def add_weight(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        if draw:
            var = original(self, *args, **kwargs)
        else:
            cheap = dict(bound.arguments)
            cheap.pop("self")
            cheap["initializer"] = "zeros"
            var = original(self, **cheap)
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


def stateless_call_with_row_mask(
    model: Any, tv: Any, ntv: Any, x: Any, row_mask: Any
) -> tuple[Any, list[Any], list[Any]]:
    """``model.stateless_call(tv, ntv, x, training=True, return_losses=True)`` for a Sequential
    model, with ``row_mask`` ``(B,)`` given to every BatchNormalization layer.

    Keras' own call hands a mask on only through layers that propagate masks (Dense does, Conv2D
    and Flatten do not), so BatchNormalization after a convolution would count padded rows in
    its batch statistics. This is ``Layer.stateless_call``'s body with the layers called in turn
    (``Sequential.call``'s loop: ``_call_has_mask_arg``, ``_call_has_training_arg``).

    Returns:
        ``(outputs, non-trainable values, losses)`` as ``stateless_call`` returns them.
    """
    import keras

    mapping = list(zip(model.trainable_variables, tv)) + list(zip(model.non_trainable_variables, ntv))
    with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
        h = x
        mask = None
        for layer in model.layers:
            kwargs: dict[str, Any] = {}
            if layer._call_has_training_arg:
                kwargs["training"] = True
            if isinstance(layer, keras.layers.BatchNormalization):
                # its mask covers every axis but the features: the row mask repeated over them
                lead = tuple(h.shape[:-1])
                kwargs["mask"] = keras.ops.broadcast_to(
                    keras.ops.reshape(row_mask, (lead[0],) + (1,) * (len(lead) - 1)), lead
                )
            elif layer._call_has_mask_arg and mask is not None:
                kwargs["mask"] = mask
            h = layer(h, **kwargs)
            if isinstance(layer, keras.layers.BatchNormalization):
                h = strip_mask(h)  # the row mask is ours: later layers would warn that they drop it
            mask = keras_mask(h)
        losses = list(model.losses)
    new_ntv = []
    for v, old in zip(model.non_trainable_variables, ntv):
        cur = scope.get_current_value(v)
        new_ntv.append(old if cur is None else cur)
    return h, new_ntv, losses
