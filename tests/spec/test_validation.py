"""Tests of dlrun.spec.validation: every bad input names its dotted path, with a suggestion for typos."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import edited_spec, spec_problems, tiny_spec

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.errors import InputError, SpecError
from dlrun.spec.dotted import suggest
from dlrun.spec.models import Spec
from dlrun.spec.validation import json_schema, load_spec, resolved_dict, validate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _layer(raw: dict[str, Any], i: int) -> dict[str, Any]:
    return next(iter(raw["model"]["layers"][i].values()))


# ----------------------------------------------------------------------------- the valid case
def test_tiny_spec_is_valid_and_defaults_are_filled() -> None:
    spec = validate(tiny_spec("binary"))
    assert isinstance(spec, Spec)
    assert spec.compile.optimizer == "adam"
    assert spec.evaluation.test_size == pytest.approx(0.33)
    assert spec.model.entries[0] == ("Dense", {"units": 8, "activation": "relu"})
    resolved = resolved_dict(spec)
    for section in ("data", "preprocessing", "model", "compile", "training", "evaluation", "runtime"):
        assert section in resolved
    assert resolved["training"]["checkpoint_every"] == 25
    assert resolved["preprocessing"]["scaling"] == "standard"


# ----------------------------------------------------------------------------- bad inputs, one each
BAD_INPUTS = [
    # unknown / misspelled keys at several depths, with the nearest valid key
    pytest.param(lambda r: r.update(trainig={"epochs": 3}), "trainig", "did you mean 'training'", id="top-level-key"),
    pytest.param(
        lambda r: r["training"].update(batchsize=3),
        "training.batchsize",
        "did you mean 'batch_size'",
        id="section-key",
    ),
    pytest.param(
        lambda r: r["evaluation"].update(mdoe="kfold"), "evaluation.mdoe", "did you mean 'mode'", id="mode-key"
    ),
    pytest.param(
        lambda r: r.update(preprocessing={"image": {"rescal": 0.1}}),
        "preprocessing.image.rescal",
        "did you mean 'rescale'",
        id="nested-key-depth-3",
    ),
    pytest.param(
        lambda r: r["data"].update(csv={"seperator": ";"}),
        "data.csv.seperator",
        "valid keys: header, sep",
        id="key-without-close-match-lists-valid-keys",
    ),
    pytest.param(
        lambda r: _layer(r, 1).pop("units"),
        "model.layers[1].Dense.units",
        "is required",
        id="dense-units-missing",
    ),
    pytest.param(lambda r: r.pop("model"), "model", "is required", id="section-missing"),
    pytest.param(lambda r: r["data"].pop("source"), "data.source", "is required", id="source-missing"),
    # wrong types and ranges
    pytest.param(lambda r: r["training"].update(epochs="many"), "training.epochs", "'many'", id="epochs-string"),
    pytest.param(lambda r: r["training"].update(epochs=0), "training.epochs", "greater than 0", id="epochs-zero"),
    pytest.param(lambda r: r["training"].update(shuffle="sometimes"), "training.shuffle", "boolean", id="bool"),
    pytest.param(
        lambda r: r["evaluation"].update(test_size=1.5), "evaluation.test_size", "less than 1", id="test-size"
    ),
    pytest.param(
        lambda r: r["evaluation"].update(folds=1), "evaluation.folds", "greater than or equal to 2", id="folds"
    ),
    pytest.param(lambda r: r["model"].update(layers=[]), "model.layers", "at least 1", id="no-layers"),
    pytest.param(
        lambda r: r["model"]["layers"].__setitem__(0, {"Dense": 5}),
        "model.layers[0].Dense",
        "dictionary",
        id="layer-args-not-mapping",
    ),
    pytest.param(lambda r: r.update(name="has space"), "name", "pattern", id="name-pattern"),
    pytest.param(
        lambda r: r["model"]["layers"].insert(1, {"Dropout": {"rate": 2}}),
        "model.layers[1].Dropout.rate",
        "[0, 1)",
        id="dropout-rate-range",
    ),
    pytest.param(
        lambda r: r["model"]["layers"].insert(1, {"Dropout": {}}),
        "model.layers[1].Dropout.rate",
        "is required",
        id="dropout-rate-missing",
    ),
    pytest.param(
        lambda r: r["evaluation"].update(mode="kfolds"), "evaluation.mode", "did you mean 'kfold'", id="mode-literal"
    ),
    pytest.param(
        lambda r: r.update(preprocessing={"scaling": "standart"}),
        "preprocessing.scaling",
        "did you mean 'standard'",
        id="scaling-literal",
    ),
    # unknown names, with suggestions
    pytest.param(
        lambda r: r["model"]["layers"].__setitem__(0, {"Dence": {"units": 3}}),
        "model.layers[0].Dence",
        "did you mean 'Dense'",
        id="layer-name",
    ),
    pytest.param(
        lambda r: r.update(compile={"optimizer": "adamm"}), "compile.optimizer", "did you mean 'adam'", id="optimizer"
    ),
    pytest.param(
        lambda r: r.update(compile={"optimizer": {"SDG": {"learning_rate": 0.1}}}),
        "compile.optimizer",
        "unknown optimizer 'SDG'",
        id="optimizer-mapping",
    ),
    pytest.param(
        lambda r: r.update(compile={"loss": "binary_crossentropi"}),
        "compile.loss",
        "did you mean 'binary_crossentropy'",
        id="loss",
    ),
    pytest.param(
        lambda r: r.update(compile={"metrics": ["acuracy"]}),
        "compile.metrics[0]",
        "did you mean 'accuracy'",
        id="keras-metric",
    ),
    pytest.param(
        lambda r: _layer(r, 0).update(kernel_initializer="he_normall"),
        "model.layers[0].Dense.kernel_initializer",
        "did you mean 'he_normal'",
        id="initializer",
    ),
    pytest.param(
        lambda r: _layer(r, 0).update(kernel_constraint={"MaxNorn": {"max_value": 3}}),
        "model.layers[0].Dense.kernel_constraint",
        "did you mean 'MaxNorm'",
        id="constraint",
    ),
    pytest.param(
        lambda r: _layer(r, 0).update(kernel_regularizer=0.01),
        "model.layers[0].Dense.kernel_regularizer",
        "L2",
        id="regularizer-number",
    ),
    pytest.param(
        lambda r: _layer(r, 0).update(activation="rellu"),
        "model.layers[0].Dense.activation",
        "did you mean 'relu'",
        id="activation",
    ),
    pytest.param(
        lambda r: _layer(r, 0).update(input_shape=[6]),
        "model.layers[0].Dense.input_shape",
        "comes from the data",
        id="input-shape",
    ),
    pytest.param(
        lambda r: r["training"].update(callbacks=[{"EarlyStoping": {"patience": 3}}]),
        "training.callbacks[0].EarlyStoping",
        "did you mean 'EarlyStopping'",
        id="callback",
    ),
    pytest.param(
        lambda r: r["evaluation"].update(metrics=["acuracy"]),
        "evaluation.metrics[0]",
        "did you mean 'accuracy'",
        id="eval-metric",
    ),
    pytest.param(lambda r: r["data"].update(source="sonr"), "data.source", "did you mean 'sonar'", id="named-source"),
    pytest.param(
        lambda r: r["data"].update(source="sklearn:breast_cancr"),
        "data.source",
        "did you mean 'breast_cancer'",
        id="sklearn-source",
    ),
    pytest.param(
        lambda r: r["data"].update(source="skleran:iris"), "data.source", "did you mean 'sklearn'", id="source-kind"
    ),
    pytest.param(
        lambda r: r.update(sweep={"grid": {"training.epochs": []}}),
        "sweep.grid.training.epochs",
        "at least one",
        id="sweep-empty",
    ),
]


@pytest.mark.parametrize(("edit", "path", "text"), BAD_INPUTS)
def test_bad_input_names_the_field(edit: Any, path: str, text: str) -> None:
    problems = spec_problems(edited_spec(edit))
    assert path in [p for p, _ in problems], problems
    message = dict(problems)[path]
    assert text in message, message


def test_spec_error_text_lists_path_and_source() -> None:
    raw = edited_spec(lambda r: r["training"].update(batchsize=3))
    with pytest.raises(SpecError) as info:
        validate(raw, source="exp.yaml")
    text = str(info.value)
    assert text.startswith("1 problem in exp.yaml:")
    assert "training.batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)" in text
    assert info.value.exit_code == 2
    assert isinstance(info.value, InputError)


# ----------------------------------------------------------------------------- every problem at once
def test_two_schema_errors_are_both_listed() -> None:
    raw = edited_spec(lambda r: (r.update(trainig={"epochs": 3}), r["evaluation"].update(folds="ten")))
    paths = [p for p, _ in spec_problems(raw)]
    assert "trainig" in paths
    assert "evaluation.folds" in paths


def test_two_name_errors_are_both_listed() -> None:
    raw = edited_spec(lambda r: (_layer(r, 0).update(activation="rellu"), r.update(compile={"optimizer": "adamm"})))
    paths = [p for p, _ in spec_problems(raw)]
    assert paths == ["model.layers[0].Dense.activation", "compile.optimizer"]


def test_schema_and_name_errors_are_listed_together() -> None:
    raw = edited_spec(lambda r: (r.update(trainig={"epochs": 3}), _layer(r, 1).pop("units")))
    paths = [p for p, _ in spec_problems(raw)]
    assert "trainig" in paths
    assert "model.layers[1].Dense.units" in paths


def test_layer_entry_with_two_names_is_an_error() -> None:
    raw = edited_spec(lambda r: r["model"]["layers"].__setitem__(0, {"Dense": {"units": 3}, "Dropout": {"rate": 0.1}}))
    paths = [p for p, _ in spec_problems(raw)]
    assert any(p.startswith("model.layers") for p in paths)


@pytest.mark.parametrize("units", ["seven", -3, 0])
def test_dense_units_must_be_a_positive_integer(units: Any) -> None:
    raw = edited_spec(lambda r: _layer(r, 0).update(units=units))
    assert "model.layers[0].Dense.units" in [p for p, _ in spec_problems(raw)]


# ----------------------------------------------------------------------------- schema and helpers
def test_json_schema_describes_every_section() -> None:
    schema = json_schema()
    json.loads(json.dumps(schema))  # plain JSON
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert set(schema["required"]) == {"data", "model"}
    props = schema["properties"]
    for section in Spec.model_fields:
        assert section in props, section
    defs = schema["$defs"]
    for name in ("DataSpec", "ModelSpec", "CompileSpec", "TrainingSpec", "EvaluationSpec", "PreprocessingSpec"):
        assert name in defs and "properties" in defs[name], name
    assert set(defs["EvaluationSpec"]["properties"]["mode"]["enum"]) == {*TRAIN_MODES, *CV_MODES}
    assert defs["TrainingSpec"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("name", "choices", "expected"),
    [
        ("trainig", ["training", "model"], " (did you mean 'training'?)"),
        ("ADAM", ["adam", "sgd"], " (did you mean 'adam'?)"),
        ("zzz", ["adam", "sgd"], ""),
    ],
)
def test_suggest(name: str, choices: list[str], expected: str) -> None:
    assert suggest(name, choices) == expected


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    spec = load_spec(path)
    assert path.read_text().startswith("#"), "each config opens with a comment saying what it reproduces"
    assert spec.name == path.stem or path.stem == "wine"


def test_validate_does_not_mutate_raw() -> None:
    raw = tiny_spec("binary")
    before = copy.deepcopy(raw)
    validate(raw)
    assert raw == before
