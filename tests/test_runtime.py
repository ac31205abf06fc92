"""Process-wide settings: dlrun's XLA flags never override the user's."""

from __future__ import annotations

import pytest

from dlrun.runtime import xla_flags


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
        "from dlrun.runtime import choose_backend, quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        f"print(choose_backend({spec_backend!r}))"
    )
    assert _run(code, {"KERAS_BACKEND": user} if user else {}) == expected


def test_jax_setup_seeding_and_versions_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from dlrun.runtime import seed_everything, setup, versions\n"
        "from dlrun.spec import RuntimeSpec\n"
        "info = setup(RuntimeSpec())\n"
        "seed_everything(3)\n"
        "v = versions()\n"
        "print(info['backend'], info['device'], v['backend'], 'jax' in v, 'tensorflow' in sys.modules)"
    )
    assert _run(code, {}) == "jax cpu jax True False"


def test_gpu_without_one_is_an_input_error() -> None:
    code = (
        "from dlrun.errors import InputError\n"
        "from dlrun.runtime import setup\n"
        "from dlrun.spec import RuntimeSpec\n"
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
