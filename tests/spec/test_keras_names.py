"""The static Keras name tables must match the installed Keras (regenerate with scripts/gen_keras_names.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import load_script

from dlrun.spec import keras_names as kn

ROOT = Path(__file__).resolve().parents[2]


def test_tables_match_installed_keras() -> None:
    gen = load_script(ROOT / "scripts" / "gen_keras_names.py")
    for name, items in gen.tables().items():
        assert tuple(sorted(set(items))) == getattr(kn, name), f"{name} is stale: run scripts/gen_keras_names.py"


def test_aliases_users_write_are_known() -> None:
    for init in ("normal", "uniform", "he_normal", "glorot_uniform", "zeros"):
        assert init in kn.INITIALIZERS
    assert "MaxNorm" in kn.CONSTRAINTS and "Dense" in kn.LAYERS and "EarlyStopping" in kn.CALLBACKS


def test_argument_tables_match_installed_keras() -> None:
    gen = load_script(ROOT / "scripts" / "gen_keras_names.py")
    for name, by_class in gen.arg_tables().items():
        want = {cls: tuple(sorted(args)) for cls, args in by_class.items()}
        assert want == getattr(kn, name), f"{name} is stale: run scripts/gen_keras_names.py"
    assert "units" in kn.LAYER_ARGS["Dense"] and "learning_rate" in kn.OPTIMIZER_ARGS["SGD"]
    assert "monitor" in kn.CALLBACK_ARGS["EarlyStopping"] and "max_value" in kn.CONSTRAINT_ARGS["MaxNorm"]


def test_the_generator_writes_the_committed_json() -> None:
    gen = load_script(ROOT / "scripts" / "gen_keras_names.py")
    committed = (ROOT / "dlrun" / "spec" / "keras_names.json").read_text(encoding="utf-8")
    assert json.loads(gen.render()) == json.loads(committed), "stale: run scripts/gen_keras_names.py"
    assert kn.KERAS_VERSION == json.loads(committed)["KERAS_VERSION"]
