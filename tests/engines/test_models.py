"""Tests of dlrun.engines.keras_build: layers from spec entries, output checks, compile defaults."""

from __future__ import annotations

from typing import Any

import pytest

from dlrun.engines.keras_build import (
    build_model,
    default_eval_metrics,
    default_loss,
    layer_kwargs,
    make_callbacks,
    make_loss,
    make_optimizer,
    resolve_compile,
    to_keras_config,
)
from dlrun.errors import SpecError
from dlrun.spec.schema import Spec, validate

keras = pytest.importorskip("keras")


def _spec(layers: list[Any], **sections: Any) -> Spec:
    return validate({"data": {"source": "make_classification"}, "model": {"layers": layers}, **sections})


def _problem(exc: pytest.ExceptionInfo[SpecError]) -> tuple[str, str]:
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


# ----------------------------------------------------------------------------- building
def test_build_model_from_layer_entries() -> None:
    spec = _spec(
        [
            {
                "Dense": {
                    "units": 5,
                    "activation": "relu",
                    "kernel_initializer": "normal",
                    "kernel_constraint": {"MaxNorm": {"max_value": 3}},
                }
            },
            {"Dropout": {"rate": 0.2}},
            "BatchNormalization",
            {"Dense": {"units": 1, "activation": "sigmoid"}},
        ]
    )
    model = build_model(spec, (4,), 1, "binary")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Dropout", "BatchNormalization", "Dense"]
    dense = model.layers[0]
    assert type(dense.kernel_constraint).__name__ == "MaxNorm"
    assert dense.kernel_constraint.get_config()["max_value"] == 3
    assert type(dense.kernel_initializer).__name__ == "RandomNormal"
    assert dense.activation.__name__ == "relu"
    assert model.layers[1].rate == pytest.approx(0.2)
    assert model.output_shape == (None, 1)
    # 4*5+5 + 0 + 4*5 (BatchNormalization: gamma, beta, mean, variance) + 5*1+1
    assert model.count_params() == 25 + 20 + 6


def test_build_model_is_seeded_by_the_caller() -> None:
    from dlrun.engines.runtime import seed_everything

    spec = _spec([{"Dense": {"units": 3, "activation": "relu"}}, {"Dense": {"units": 1}}])
    seed_everything(5)
    a = [w.copy() for w in build_model(spec, (4,), 1, "regression").get_weights()]
    seed_everything(5)
    b = build_model(spec, (4,), 1, "regression").get_weights()
    assert all((x == y).all() for x, y in zip(a, b))


def test_regularizer_and_image_input() -> None:
    spec = _spec(
        [
            "Flatten",
            {"Dense": {"units": 4, "activation": "relu", "kernel_regularizer": {"L2": {"l2": 0.01}}}},
            {"Dense": {"units": 3, "activation": "softmax"}},
        ]
    )
    model = build_model(spec, (5, 5), 3, "multiclass")
    assert model.output_shape == (None, 3)
    assert type(model.layers[1].kernel_regularizer).__name__ == "L2"


# ----------------------------------------------------------------------------- output checks
@pytest.mark.parametrize(
    ("layers", "n_outputs", "task", "path", "text"),
    [
        pytest.param(
            [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 1}}],
            3,
            "regression",
            "model.layers[1].Dense.units",
            "has 1 units but the regression target needs 3 units",
            id="3-targets-into-Dense(1)",
        ),
        pytest.param(
            [{"Dense": {"units": 3, "activation": "sigmoid"}}],
            3,
            "multiclass",
            "model.layers[0].Dense.activation",
            "use activation: softmax",
            id="sigmoid-on-multiclass",
        ),
        pytest.param(
            [{"Dense": {"units": 4, "activation": "softmax"}}],
            3,
            "multiclass",
            "model.layers[0].Dense.units",
            "needs 3 units, one per class",
            id="wrong-class-count",
        ),
        pytest.param(
            [{"Dense": {"units": 1, "activation": "relu"}}],
            1,
            "binary",
            "model.layers[0].Dense.activation",
            "needs a sigmoid output",
            id="binary-without-sigmoid",
        ),
        pytest.param(
            [{"Dense": {"units": 2, "activation": "relu"}}, {"Dropout": {"rate": 0.1}}],
            1,
            "regression",
            "model.layers[1].Dropout",
            "has 2 units",
            id="last-layer-not-dense",
        ),
    ],
)
def test_output_mismatch(layers: list[Any], n_outputs: int, task: str, path: str, text: str) -> None:
    with pytest.raises(SpecError) as exc:
        build_model(_spec(layers), (4,), n_outputs, task)
    got_path, message = _problem(exc)
    assert got_path.startswith(path)
    assert text in message


@pytest.mark.parametrize(
    ("units", "activation", "width_text"),
    [
        (2, "softmax", "has 2 units but the binary target needs 1 unit"),
        (3, "linear", "has 3 units but the binary target needs 1 unit"),
    ],
)
def test_a_wrong_width_and_a_wrong_activation_are_told_together(units: int, activation: str, width_text: str) -> None:
    with pytest.raises(SpecError) as exc:
        build_model(_spec([{"Dense": {"units": units, "activation": activation}}]), (4,), 1, "binary")
    (width_path, width_msg), (act_path, act_msg) = exc.value.problems
    assert (width_path, act_path) == ("model.layers[0].Dense.units", "model.layers[0].Dense.activation")
    assert width_text in width_msg
    assert f"needs a sigmoid output, got '{activation}'" in act_msg


def test_output_rank_must_be_two() -> None:
    with pytest.raises(SpecError) as exc:
        build_model(_spec([{"Dense": {"units": 1}}]), (5, 5), 1, "regression")
    path, message = _problem(exc)
    assert path == "model.layers[0].Dense"
    assert "Flatten" in message


def test_binary_logits_with_from_logits_loss_is_allowed() -> None:
    spec = _spec([{"Dense": {"units": 1}}], compile={"loss": {"BinaryCrossentropy": {"from_logits": True}}})
    assert build_model(spec, (4,), 1, "binary").output_shape == (None, 1)


def test_two_units_with_onehot_categorical_is_allowed() -> None:
    spec = _spec([{"Dense": {"units": 2, "activation": "softmax"}}], preprocessing={"target": {"onehot": True}})
    assert build_model(spec, (4,), 2, "binary").output_shape == (None, 2)


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("layers", "path", "text"),
    [
        ([{"Dense": {"units": 4, "foo": 1}}, {"Dense": {"units": 1}}], "model.layers[0].Dense", "foo"),
        (
            [{"Dense": {"units": 4}}, {"Conv1D": {"filters": 4}}, {"Dense": {"units": 1}}],
            "model.layers[1].Conv1D",
            "kernel_size",
        ),
    ],
)
def test_bad_layer_argument_names_the_layer(layers: list[Any], path: str, text: str) -> None:
    with pytest.raises(SpecError) as exc:
        build_model(_spec(layers), (4,), 1, "regression")
    got_path, message = _problem(exc)
    assert got_path.startswith(path)  # spec validation may name the argument itself
    assert text in message or text in got_path
    assert "Traceback" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("layer", "name"),
    [({"Reshape": {"target_shape": [7]}}, "Reshape"), ({"BatchNormalization": {"axis": 5}}, "BatchNormalization")],
)
def test_shape_error_while_building_names_the_layer(layer: dict[str, Any], name: str) -> None:
    spec = _spec([{"Dense": {"units": 4}}, layer, {"Dense": {"units": 1}}])
    with pytest.raises(SpecError) as exc:
        build_model(spec, (4,), 1, "regression")
    assert _problem(exc)[0] == f"model.layers[1].{name}"


def test_bad_optimizer_argument_names_compile_optimizer() -> None:
    """Past spec validation (which names the argument), Keras' own refusal still becomes a SpecError."""
    from dlrun.engines.keras_build import CompileConfig

    cfg = CompileConfig(optimizer={"class_name": "SGD", "config": {"learnin_rate": 0.1}}, loss="mse", metrics=[])
    with pytest.raises(SpecError) as exc:
        make_optimizer(cfg)
    path, message = _problem(exc)
    assert path == "compile.optimizer"
    assert "learnin_rate" in message


def test_bad_callback_argument_names_the_callback() -> None:
    with pytest.raises(SpecError) as exc:
        callbacks = [{"EarlyStopping": {"patiense": 3, "monitor": "loss"}}]
        make_callbacks(_spec([{"Dense": {"units": 1}}], training={"callbacks": callbacks}))
    path, _ = _problem(exc)
    assert path.startswith("training.callbacks[0].EarlyStopping")


# ----------------------------------------------------------------------------- compile defaults
@pytest.mark.parametrize(
    ("task", "onehot", "loss", "metrics"),
    [
        ("binary", False, "binary_crossentropy", ["accuracy"]),
        ("binary", True, "categorical_crossentropy", ["accuracy"]),
        ("multiclass", False, "sparse_categorical_crossentropy", ["accuracy"]),
        ("multiclass", True, "categorical_crossentropy", ["accuracy"]),
        ("regression", False, "mse", ["mae"]),
    ],
)
def test_resolve_compile_defaults_per_task(task: str, onehot: bool, loss: str, metrics: list[str]) -> None:
    spec = _spec([{"Dense": {"units": 1}}], preprocessing={"target": {"onehot": onehot}})
    cfg = resolve_compile(spec, task)
    assert cfg.loss == loss == default_loss(task, onehot)
    assert cfg.metrics == metrics
    assert cfg.optimizer == {"class_name": "adam", "config": {}}
    assert make_loss(cfg) is not None


def test_resolve_compile_keeps_what_the_spec_says() -> None:
    spec = _spec(
        [{"Dense": {"units": 1}}],
        compile={"optimizer": {"SGD": {"learning_rate": 0.1, "momentum": 0.9}}, "loss": "mae", "metrics": ["mse"]},
    )
    cfg = resolve_compile(spec, "regression")
    assert cfg.optimizer == {"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9}}
    assert cfg.loss == "mae"
    assert cfg.metrics == ["mse"]
    opt = make_optimizer(cfg)
    assert type(opt).__name__ == "SGD"
    assert float(opt.learning_rate) == pytest.approx(0.1)
    assert float(opt.momentum) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", "SGD"), ("adam", "Adam"), ("RMSprop", "RMSprop"), ("Nadam", "Nadam")]
)
def test_optimizer_names_any_case(name: str, cls: str) -> None:
    cfg = resolve_compile(_spec([{"Dense": {"units": 1}}], compile={"optimizer": name}), "regression")
    assert type(make_optimizer(cfg)).__name__ == cls


def test_loss_with_arguments_is_serialized() -> None:
    spec = _spec([{"Dense": {"units": 1}}], compile={"loss": {"Huber": {"delta": 2.0}}})
    cfg = resolve_compile(spec, "regression")
    assert cfg.loss == {"class_name": "Huber", "config": {"delta": 2.0}}
    assert type(make_loss(cfg)).__name__ == "Huber"


@pytest.mark.parametrize(("task", "first"), [("binary", "accuracy"), ("multiclass", "accuracy"), ("regression", "mae")])
def test_default_eval_metrics(task: str, first: str) -> None:
    assert default_eval_metrics(task)[0] == first


def test_to_keras_config_nests() -> None:
    assert to_keras_config({"MaxNorm": {"max_value": 3}}) == {"class_name": "MaxNorm", "config": {"max_value": 3}}
    assert to_keras_config("he_normal") == "he_normal"
    assert to_keras_config({"class_name": "X", "config": {}}) == {"class_name": "X", "config": {}}
    kwargs = layer_kwargs({"units": 3, "kernel_constraint": {"MaxNorm": {"max_value": 2}}, "name": {"a": {}}})
    assert kwargs["kernel_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 2}}
    assert kwargs["name"] == {"a": {}}, "only initializer/regularizer/constraint arguments are converted"
