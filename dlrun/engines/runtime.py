"""Backend choice, seeding, device choice and XLA settings, all in one place.

Keras 3 runs on JAX unless the user chose otherwise (``KERAS_BACKEND`` or
``runtime.backend``). Importing this module imports neither Keras nor a backend;
:func:`setup` does.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from dlrun.engines.keras_compat import hide_tensorflow, set_random_seed
from dlrun.errors import InputError
from dlrun.spec.schema import RuntimeSpec

_DONE: dict[str, Any] = {}

#: ``KERAS_BACKEND`` as the user's environment gave it, before dlrun set anything.
USER_BACKEND: str | None = os.environ.get("KERAS_BACKEND") or None
DEFAULT_BACKEND = "jax"


# XLA flags dlrun adds unless the user's XLA_FLAGS already sets them. Region analysis lets the
# CPU compiler update a while loop's weights in place; without it every training step of the
# stacked engine copies all weights and optimizer slots (measured: 35 vs 47 ms per epoch for
# 150 Sonar models on one core).
_XLA_FLAGS = {"xla_cpu_copy_insertion_use_region_analysis": "true"}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def quiet_tensorflow(backend: str = "auto") -> None:
    """Before Keras is imported: choose its backend, silence TensorFlow's C++ start-up chatter, set XLA flags.

    Args:
        backend: ``runtime.backend``: ``auto`` keeps the user's ``KERAS_BACKEND`` or takes JAX.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    choose_backend(backend)
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))


def choose_backend(backend: str = "auto") -> str:
    """Set ``KERAS_BACKEND`` for ``runtime.backend`` (before Keras is imported); return the backend.

    ``jax`` or ``tensorflow`` wins over the environment; ``auto`` keeps the user's
    ``KERAS_BACKEND`` or takes JAX.

    Raises:
        InputError: Keras is already imported on another backend than the one asked for.
    """
    if "keras" in sys.modules:
        current = str(sys.modules["keras"].backend.backend())
        if backend not in ("auto", current):
            raise InputError(
                f"runtime.backend is '{backend}' but Keras was already imported with the {current} backend "
                f"in this process; set KERAS_BACKEND={backend} before starting, or runtime.backend: auto"
            )
        return current
    if backend != "auto":
        os.environ["KERAS_BACKEND"] = backend
    elif not USER_BACKEND:
        os.environ["KERAS_BACKEND"] = DEFAULT_BACKEND
    return os.environ["KERAS_BACKEND"]


def backend_name() -> str:
    """The backend Keras runs (or will run) on, without importing it."""
    if "keras" in sys.modules:
        return str(sys.modules["keras"].backend.backend())
    return os.environ.get("KERAS_BACKEND") or USER_BACKEND or DEFAULT_BACKEND


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
        InputError: ``device: gpu`` was asked for and the backend sees no GPU, or the
            backend asked for differs from the one Keras already runs on.
    """
    key = f"{rt.backend}:{rt.device}:{rt.deterministic}:{rt.mixed_precision}"
    if _DONE.get("key") == key:
        return dict(_DONE["info"])
    quiet_tensorflow(rt.backend)
    backend = backend_name()
    if backend == "tensorflow":
        gpus = _tensorflow_devices(rt)
    else:
        gpus = _jax_devices(rt)
    import keras

    hide_tensorflow()
    if rt.device == "gpu" and not gpus:
        raise InputError(
            f"runtime.device is 'gpu' but {backend} sees no GPU on this machine; "
            "set runtime.device: auto (or cpu), or install a CUDA build (pip install 'dlrun[cuda]')"
        )
    keras.mixed_precision.set_global_policy("mixed_float16" if rt.mixed_precision else "float32")
    info = {"device": "gpu" if gpus else "cpu", "gpus": gpus, "backend": backend}
    _DONE["key"] = key
    _DONE["info"] = info
    return dict(info)


def _jax_devices(rt: RuntimeSpec) -> list[str]:
    """GPUs JAX sees (``device: cpu`` makes JAX use the CPU even where it has one)."""
    import jax

    _use_compile_cache(jax)
    if rt.device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return []
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if rt.deterministic:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    return [str(g) for g in gpus]


def compile_cache_dir() -> str | None:
    """Where compiled XLA programs are kept between runs; None: not kept (or the user's own JAX setting).

    ``DLRUN_COMPILE_CACHE``: unset or ``1`` keeps them under ``$XDG_CACHE_HOME/dlrun/jax``
    (``~/.cache/dlrun/jax``), a path keeps them there, ``0`` turns the cache off. A user's
    ``JAX_COMPILATION_CACHE_DIR`` is left to JAX.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    value = os.environ.get("DLRUN_COMPILE_CACHE", "").strip()
    if value.lower() in ("0", "off", "false", "no"):
        return None
    if value and value.lower() not in ("1", "on", "true", "yes"):
        return value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dlrun", "jax")


def _use_compile_cache(jax: Any) -> None:
    # A stacked program takes 1-3 s to compile and is the same in the next run of the spec, in
    # every batch of a search and in every outer fold of nested cross-validation; JAX's
    # persistent cache (keyed by the program, the compiler options and the versions) serves it
    # again. Programs that compile in under 0.1 s are not worth a file.
    path = compile_cache_dir()
    if path is not None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:  # a read-only home: run without the cache
            return
        jax.config.update("jax_compilation_cache_dir", path)
    if path is not None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _tensorflow_devices(rt: RuntimeSpec) -> list[str]:
    try:
        tf = import_tensorflow()
    except ImportError:
        raise InputError(
            "Keras is to run on TensorFlow (KERAS_BACKEND or runtime.backend) but TensorFlow is not installed; "
            "pip install 'dlrun[tensorflow]', or use runtime.backend: jax"
        ) from None
    gpus = tf.config.list_physical_devices("GPU")
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
    return [g.name for g in gpus]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend through Keras (one place for all of them).

    Under JAX this does not import TensorFlow (Keras would, only to seed it).
    """
    set_random_seed(int(seed))


def versions() -> dict[str, str]:
    """Library versions for ``env.json``: the Keras backend and its library, never importing another."""
    import keras
    import numpy
    import pandas
    import sklearn

    backend = str(keras.backend.backend())
    out = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": backend,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }
    if backend == "jax" or "jax" in sys.modules:
        import jax

        out["jax"] = jax.__version__
    if "tensorflow" in sys.modules:
        out["tensorflow"] = sys.modules["tensorflow"].__version__
    return out
