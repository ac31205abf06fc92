"""The engine protocol: every registered engine implements it and says how many jobs one fit call gets."""

from __future__ import annotations

import numpy as np
import pytest

from dlrun.engines.base import Engine, FitJob, engine_class, engine_names, make_engine
from dlrun.spec.schema import validate


def test_every_registered_engine_says_whether_it_shares_programs() -> None:
    assert {name: engine_class(name).shares_programs for name in engine_names()} == {
        "stacked": True,
        "sequential": False,
    }


def test_engines_follow_the_protocol_and_size_their_calls() -> None:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("the stacked engine runs on JAX")
    spec = validate(
        {
            "data": {"source": "make_classification"},
            "model": {"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
            "training": {"epochs": 1},
            "runtime": {"max_models_per_chunk": 2},
        }
    )
    x = np.zeros((8, 3), np.float32)
    jobs = [FitJob(0, k, k, x, np.zeros(8, np.float32)) for k in range(3)]
    sizes = {}
    for name in engine_names():
        engine = make_engine(name, spec, "binary", (3,), 1)
        assert isinstance(engine, Engine) and engine.name == name
        sizes[name] = engine.models_per_chunk(jobs)
    assert sizes == {"stacked": 2, "sequential": 1}
