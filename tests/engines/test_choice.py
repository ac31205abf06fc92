"""Engine choice: the same rules and messages as before, the note returned instead of printed."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from dlrun.engines import EngineChoice, choose_engine
from dlrun.errors import SpecError
from dlrun.spec.schema import Spec, validate


def make_spec(**sections: Any) -> Spec:
    raw: dict[str, Any] = {
        "data": {"source": "make_classification"},
        "model": {"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
        "training": {"epochs": 1},
    }
    return validate({**raw, **sections})


PLATEAU = {"callbacks": [{"ReduceLROnPlateau": {"monitor": "loss"}}], "epochs": 1}


def test_auto_takes_the_stacked_engine_without_a_note() -> None:
    assert choose_engine(make_spec(), "binary") == EngineChoice("stacked", None, shares_programs=True)


def test_auto_falls_back_with_the_reason_as_its_note() -> None:
    choice = choose_engine(make_spec(training=PLATEAU), "binary")
    assert choice.name == "sequential" and not choice.shares_programs
    assert choice.note == (
        "engine: sequential (training.callbacks[0].ReduceLROnPlateau: "
        "the stacked engine supports only the EarlyStopping callback)"
    )


def test_keep_model_takes_the_sequential_engine() -> None:
    choice = choose_engine(make_spec(runtime={"engine": "stacked"}), "binary", keep_model=True)
    assert choice == EngineChoice("sequential", None, shares_programs=False)


@pytest.mark.parametrize(
    ("previous", "expected"), [("sequential", "sequential"), ("nonsense", "stacked"), (None, "stacked")]
)
def test_auto_keeps_the_engine_of_saved_folds(previous: str | None, expected: str) -> None:
    assert choose_engine(make_spec(), "binary", previous=previous).name == expected


def test_a_named_engine_wins_over_the_previous_one() -> None:
    spec = make_spec(runtime={"engine": "sequential"})
    assert choose_engine(spec, "binary", previous="stacked").name == "sequential"


def test_a_named_engine_that_cannot_train_the_spec_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        choose_engine(make_spec(training=PLATEAU, runtime={"engine": "stacked"}), "binary")
    assert err.value.problems == [
        (
            "runtime.engine",
            "the stacked engine cannot run this spec: training.callbacks[0].ReduceLROnPlateau: "
            "the stacked engine supports only the EarlyStopping callback",
        )
    ]


def test_resuming_with_an_engine_that_cannot_train_the_spec_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="the stacked engine cannot run this spec"):
        choose_engine(make_spec(training=PLATEAU), "binary", previous="stacked")


def test_importing_the_engines_loads_no_deep_learning_framework() -> None:
    code = (
        "import sys, dlrun.engines, dlrun.engines.stacked; "
        "from dlrun.engines import choose_engine, fit_many, program_key, share_groups, hparam_paths; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
