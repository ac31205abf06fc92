"""Per-model scalars: which specs share one stacked program, and that sharing changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlrun.engines.base import FitJob
from dlrun.engines.stacked.hparams import hparam_paths, program_key, share_groups
from dlrun.spec.schema import Spec, validate


def make_spec(optimizer: Any, layers: list[dict[str, Any]], name: str = "t", epochs: int = 3) -> Spec:
    return validate(
        {
            "name": name,
            "data": {"source": "make_classification"},
            "model": {"layers": layers},
            "compile": {"optimizer": optimizer, "loss": "binary_crossentropy", "metrics": ["accuracy"]},
            "training": {"batch_size": 4, "epochs": epochs, "shuffle": True},
            "evaluation": {"validation_split": 0.2},
        }
    )


def layers(stddev: float = 0.1, rate: float = 0.2, l1: float = 0.01, l2: float = 0.02) -> list[dict[str, Any]]:
    return [
        {"GaussianNoise": {"stddev": stddev}},
        {"Dense": {"units": 4, "activation": "relu", "kernel_regularizer": {"L1L2": {"l1": l1, "l2": l2}}}},
        {"Dropout": {"rate": rate}},
        {"Dense": {"units": 1, "activation": "sigmoid", "bias_regularizer": {"L2": {"l2": l2}}}},
    ]


# ----------------------------------------------------------------------------- the definition (no Keras)
def test_hparam_paths_lists_the_per_model_scalars_by_set_path() -> None:
    spec = make_spec({"Adam": {"learning_rate": 0.1, "beta_1": 0.8, "epsilon": 1e-6, "amsgrad": True}}, layers())
    assert hparam_paths(spec) == {
        "compile.optimizer.Adam.learning_rate": 0.1,
        "compile.optimizer.Adam.beta_1": 0.8,
        "model.layers[0].GaussianNoise.stddev": 0.1,
        "model.layers[1].Dense.kernel_regularizer.L1L2.l1": 0.01,
        "model.layers[1].Dense.kernel_regularizer.L1L2.l2": 0.02,
        "model.layers[2].Dropout.rate": 0.2,
        "model.layers[3].Dense.bias_regularizer.L2.l2": 0.02,
    }


def test_specs_differing_only_in_per_model_scalars_share_a_program() -> None:
    base = make_spec({"SGD": {"learning_rate": 0.1, "momentum": 0.5}}, layers(), name="a")
    other = make_spec({"SGD": {"learning_rate": 0.3, "momentum": 0.9}}, layers(0.4, 0.3, 0.2, 0.1), name="b")
    assert program_key(base) == program_key(other)  # the name is no part of the program
    assert share_groups([base, other]) == [[0, 1]]


@pytest.mark.parametrize(
    ("why", "optimizer", "layer_args"),
    [
        ("momentum 0 traces another update", {"SGD": {"learning_rate": 0.1, "momentum": 0.0}}, {}),
        ("a dropout rate of 0 skips the layer", {"SGD": {"learning_rate": 0.1, "momentum": 0.5}}, {"rate": 0.0}),
        ("an L1 factor of 0 adds no term", {"SGD": {"learning_rate": 0.1, "momentum": 0.5}}, {"l1": 0.0}),
        ("another optimizer", {"Adam": {"learning_rate": 0.1}}, {}),
    ],
)
def test_a_sign_or_structure_change_takes_another_program(why: str, optimizer: Any, layer_args: Any) -> None:
    base = make_spec({"SGD": {"learning_rate": 0.1, "momentum": 0.5}}, layers())
    other = make_spec(optimizer, layers(**layer_args))
    assert share_groups([base, other, base]) == [[0, 2], [1]], why


@pytest.mark.parametrize(
    ("optimizer", "key"),
    [
        ("Adam", "epsilon"),  # ops.add(sqrt(v), epsilon): converted by its Python value
        ("RMSprop", "rho"),
        ("RMSprop", "momentum"),  # ops.multiply(momentum, ...), unlike SGD's ops.cast(momentum)
        ("SGD", "clipnorm"),  # ops.multiply(g, clipnorm) and ops.maximum(norm, clipnorm)
        ("SGD", "clipvalue"),  # ops.clip(g, -clipvalue, clipvalue)
        ("Adagrad", "initial_accumulator_value"),  # fills the accumulators once, when built
        ("Ftrl", "beta"),
    ],
)
def test_scalars_the_engine_cannot_vary_per_model_split_programs(optimizer: str, key: str) -> None:
    """A scalar Keras would compute with by its Python value (or uses only when the optimizer is
    built) cannot differ inside one program: specs differing in it train apart."""
    specs = [make_spec({optimizer: {"learning_rate": 0.1, key: v}}, layers()) for v in (0.1, 0.5)]
    assert f"compile.optimizer.{optimizer}.{key}" not in hparam_paths(specs[0])
    assert share_groups(specs) == [[0], [1]]


def test_noise_layers_keras_computes_with_math_are_not_per_model() -> None:
    """GaussianDropout turns its rate into a constant with ``math.sqrt``: a traced rate would be lost."""
    specs = [make_spec("sgd", [{"GaussianDropout": {"rate": r}}, {"Dense": {"units": 1}}]) for r in (0.1, 0.3)]
    assert hparam_paths(specs[0]) == {}
    assert share_groups(specs) == [[0], [1]]


# ----------------------------------------------------------------------------- sharing changes nothing
FAMILIES = {
    # every optimizer scalar that may differ per model, together with the layers' scalars
    "sgd": [
        {"SGD": {"learning_rate": 0.05, "momentum": 0.5, "global_clipnorm": 0.05, "weight_decay": 0.01}},
        {"SGD": {"learning_rate": 0.2, "momentum": 0.9, "global_clipnorm": 0.5, "weight_decay": 0.2}},
    ],
    "adam": [
        {"Adam": {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "weight_decay": 0.01}},
        {"Adam": {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.3}},
    ],
}


def make_jobs() -> list[FitJob]:
    rng = np.random.default_rng(0)
    jobs = []
    for m, n in enumerate((12, 11)):
        x = rng.normal(size=(n + 6, 3)).astype(np.float32)
        y = (x[:, 0] + 0.5 * rng.normal(size=n + 6) > 0).astype(np.float32)
        jobs.append(FitJob(0, m, 100 + m, x[:n], y[:n], x_val=x[n:], y_val=y[n:], x_test=x[n:], y_test=y[n:]))
    return jobs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_specs_of_one_group_trained_together_equal_each_trained_alone(family: str) -> None:
    """Every per-model scalar kind: a spec trained in one program with another spec of its group
    gives the weights, predictions and every logged score (training, ``val_``, ``test_``) it
    gives trained alone, where its values are constants of its own program (equal up to float
    rounding: XLA folds a constant where it computes with a traced value)."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("the stacked engine runs on JAX")
    from dlrun.engines.stacked import StackedEngine, fit_many

    first, second = FAMILIES[family]
    specs = [make_spec(first, layers()), make_spec(second, layers(0.5, 0.4, 0.05, 0.2))]
    assert share_groups(specs) == [[0, 1]]
    jobs = make_jobs()
    together = list(fit_many(specs, jobs, "binary", (3,), 1))
    assert [i for i, _ in together] == [0, 0, 1, 1]
    for k, spec in enumerate(specs):
        alone = list(StackedEngine(spec, "binary", (3,), 1).fit(jobs))
        for a, (_, b) in zip(alone, together[2 * k : 2 * k + 2]):
            assert sorted(a.history) == sorted(b.history)
            for name in a.history:
                np.testing.assert_allclose(a.history[name], b.history[name], atol=1e-6, rtol=1e-5, err_msg=name)
            for wa, wb in zip(a.weights or [], b.weights or []):
                np.testing.assert_allclose(wa, wb, atol=1e-6, rtol=1e-5)
            np.testing.assert_allclose(a.train_pred, b.train_pred, atol=1e-6, rtol=1e-5)
    # the two specs really train differently: the test could fail
    assert not np.allclose(together[0][1].history["val_loss"], together[2][1].history["val_loss"])
