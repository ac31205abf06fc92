"""Seeding, device choice and TensorFlow settings, all in one place.

Importing this module does not import TensorFlow; :func:`setup` does.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from dlrun.errors import InputError
from dlrun.spec import RuntimeSpec

_DONE: dict[str, Any] = {}


# XLA flags dlrun adds unless the user's XLA_FLAGS already sets them. Region analysis lets the
# CPU compiler update a while loop's weights in place; without it every training step of the
# stacked engine copies all weights and optimizer slots (measured: 35 vs 47 ms per epoch for
# 150 Sonar models on one core).
_XLA_FLAGS = {"xla_cpu_copy_insertion_use_region_analysis": "true"}


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter before it is imported, and set dlrun's XLA flags."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))


def xla_flags(current: str) -> str:
    """``current`` XLA_FLAGS with dlrun's flags appended where the user has not set them."""
    words = current.split()
    for name, value in _XLA_FLAGS.items():
        if not any(w.lstrip("-").split("=", 1)[0] == name for w in words):
            words.append(f"--{name}={value}")
    return " ".join(words)


def import_tensorflow() -> Any:
    """Import TensorFlow with its C++ start-up lines (CUDA probing, absl) kept off stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    quiet_tensorflow()
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe prints here too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def setup(rt: RuntimeSpec) -> dict[str, Any]:
    """Apply the runtime section once per process; return what was chosen.

    Raises:
        InputError: ``device: gpu`` was asked for and TensorFlow sees no GPU.
    """
    key = f"{rt.device}:{rt.deterministic}:{rt.mixed_precision}"
    if _DONE.get("key") == key:
        return dict(_DONE["info"])
    tf = import_tensorflow()
    import keras

    gpus = tf.config.list_physical_devices("GPU")
    if rt.device == "gpu" and not gpus:
        raise InputError(
            "runtime.device is 'gpu' but TensorFlow sees no GPU on this machine; "
            "set runtime.device: auto (or cpu), or install a CUDA build of TensorFlow"
        )
    if rt.device == "cpu" and gpus and "key" not in _DONE:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
        gpus = []
    for g in gpus:
        try:
            tf.config.experimental.set_memory_growth(g, True)
        except RuntimeError:
            pass
    if rt.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_float16" if rt.mixed_precision else "float32")
    info = {"device": "gpu" if gpus else "cpu", "gpus": [g.name for g in gpus]}
    _DONE["key"] = key
    _DONE["info"] = info
    return dict(info)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend through Keras (one place for all of them)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def versions() -> dict[str, str]:
    """Library versions for ``env.json``."""
    import keras
    import numpy
    import pandas
    import sklearn
    import tensorflow as tf

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }
