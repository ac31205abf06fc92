"""Process-wide settings: dlrun's XLA flags never override the user's."""

from __future__ import annotations

from typing import Any

import pytest

from dlrun.engines.runtime import compile_cache_dir, xla_flags


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("", "--xla_cpu_copy_insertion_use_region_analysis=true"),
        ("--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d --xla_cpu_copy_insertion_use_region_analysis=true"),
        ("--xla_cpu_copy_insertion_use_region_analysis=false", "--xla_cpu_copy_insertion_use_region_analysis=false"),
    ],
)
def test_xla_flags_append_ours_unless_set(current: str, expected: str) -> None:
    assert xla_flags(current) == expected
    assert xla_flags(xla_flags(current)) == expected  # idempotent: every entry point may call it


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/home/u/.cache/dlrun/jax"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/dlrun/jax"),
        ({"DLRUN_COMPILE_CACHE": "1"}, "/home/u/.cache/dlrun/jax"),
        ({"DLRUN_COMPILE_CACHE": "/elsewhere"}, "/elsewhere"),
        ({"DLRUN_COMPILE_CACHE": "0"}, None),
        ({"DLRUN_COMPILE_CACHE": "off"}, None),
        ({"JAX_COMPILATION_CACHE_DIR": "/theirs"}, None),  # the user's own JAX setting is JAX's business
    ],
)
def test_compile_cache_dir(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None) -> None:
    for key in ("XDG_CACHE_HOME", "DLRUN_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert compile_cache_dir() == expected


def _run(code: str, env: dict[str, str]) -> str:
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | env
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("user", "spec_backend", "expected"),
    [
        (None, "auto", "jax"),
        ("tensorflow", "auto", "tensorflow"),
        (None, "tensorflow", "tensorflow"),
        ("jax", "jax", "jax"),
    ],
)
def test_backend_choice(user: str | None, spec_backend: str, expected: str) -> None:
    """JAX by default; the user's KERAS_BACKEND or runtime.backend otherwise (chosen before Keras loads)."""
    code = (
        "from dlrun.engines.runtime import choose_backend, quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        f"print(choose_backend({spec_backend!r}))"
    )
    assert _run(code, {"KERAS_BACKEND": user} if user else {}) == expected


def test_jax_setup_seeding_and_versions_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from dlrun.engines.runtime import seed_everything, setup, versions\n"
        "from dlrun.spec.schema import RuntimeSpec\n"
        "info = setup(RuntimeSpec())\n"
        "seed_everything(3)\n"
        "v = versions()\n"
        "print(info['backend'], info['device'], v['backend'], 'jax' in v, 'tensorflow' in sys.modules)"
    )
    assert _run(code, {}) == "jax cpu jax True False"


def test_gpu_without_one_is_an_input_error() -> None:
    code = (
        "from dlrun.errors import InputError\n"
        "from dlrun.engines.runtime import setup\n"
        "from dlrun.spec.schema import RuntimeSpec\n"
        "import jax\n"
        "if jax.devices()[0].platform == 'gpu':\n"
        "    print('skip')\n"
        "else:\n"
        "    try:\n"
        "        setup(RuntimeSpec(device='gpu'))\n"
        "    except InputError as e:\n"
        "        print('gpu' in str(e))\n"
    )
    assert _run(code, {}) in ("True", "skip")


_SAVE = """
import sys, numpy as np
from dlrun.engines.runtime import quiet_tensorflow; quiet_tensorflow()
import keras
from dlrun.engines.base import FitJob
from dlrun.engines.sequential import SequentialEngine
from dlrun.spec.schema import validate
spec = validate({"data": {"source": "make_classification"},
                 "model": {"layers": [{"Dense": {"units": 4, "activation": "relu"}},
                                      {"Dense": {"units": 1, "activation": "sigmoid"}}]},
                 "training": {"epochs": 2, "batch_size": 8}})
rng = np.random.default_rng(0)
x = rng.normal(size=(20, 3)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.float32)
job = FitJob(0, 0, 5, x, y, x_test=x[:6], y_test=y[:6], class_weight={0: 1.0, 1: 2.0})
res = SequentialEngine(spec, "binary", (3,), 1, keep_model=True).fit_one(job)
assert set(res.history) == {"loss", "accuracy", "test_loss", "test_accuracy"}, res.history
res.model.save(sys.argv[1] + "/" + keras.backend.backend() + ".keras")
np.save(sys.argv[1] + "/" + keras.backend.backend() + ".npy", np.asarray(res.model.predict(x, verbose=0)))
other = {"jax": "tensorflow", "tensorflow": "jax"}[keras.backend.backend()]
import os
if os.path.exists(sys.argv[1] + "/" + other + ".keras"):
    loaded = keras.models.load_model(sys.argv[1] + "/" + other + ".keras")
    want = np.load(sys.argv[1] + "/" + other + ".npy")
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), want, atol=1e-5)
    print("loaded", other)
print("ok", keras.backend.backend(), "tensorflow" in sys.modules)
"""


@pytest.mark.slow
def test_tensorflow_backend_sequential_engine_and_keras_files_across_backends(tmp_path: Any) -> None:
    """KERAS_BACKEND=tensorflow trains with the sequential engine (no tf.data); .keras files load either way."""
    pytest.importorskip("tensorflow")
    code = _SAVE.replace("sys.argv[1]", repr(str(tmp_path)))
    assert _run(code, {"KERAS_BACKEND": "jax"}) == "ok jax False"
    assert _run(code, {"KERAS_BACKEND": "tensorflow"}) == "ok tensorflow True"
    assert _run(code, {"KERAS_BACKEND": "jax"}) == "ok jax False"  # now loads the TensorFlow-trained file
