"""Tests of dlrun.spec.schema: every bad input names its dotted path, with a suggestion for typos."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.errors import InputError, SpecError
from dlrun.spec.schema import (
    Spec,
    apply_overrides,
    json_schema,
    load_spec,
    parse_override,
    read_yaml,
    resolved_dict,
    set_path,
    suggest,
    validate,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _problems(raw: dict[str, Any], overrides: list[str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate(apply_overrides(raw, overrides or []))
    return info.value.problems


def _edit(fn: Any) -> dict[str, Any]:
    raw = tiny_spec("binary")
    fn(raw)
    return raw


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
        "model.layers[0].Dense",
        "input_shape comes from the data",
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
    # mode / repeats cross-checks
    pytest.param(
        lambda r: r["evaluation"].update(mode="kfold", repeats=3),
        "evaluation",
        "repeats=3 needs mode 'repeated_kfold'",
        id="kfold-repeats",
    ),
    pytest.param(
        lambda r: r["evaluation"].update(mode="split", repeats=2),
        "evaluation",
        "needs mode 'repeated_split'",
        id="split-repeats",
    ),
    pytest.param(
        lambda r: r["evaluation"].update(mode="validation_split"),
        "evaluation",
        "needs validation_split > 0",
        id="validation-split-fraction",
    ),
]


@pytest.mark.parametrize(("edit", "path", "text"), BAD_INPUTS)
def test_bad_input_names_the_field(edit: Any, path: str, text: str) -> None:
    problems = _problems(_edit(edit))
    assert path in [p for p, _ in problems], problems
    message = dict(problems)[path]
    assert text in message, message


def test_spec_error_text_lists_path_and_source() -> None:
    raw = _edit(lambda r: r["training"].update(batchsize=3))
    with pytest.raises(SpecError) as info:
        validate(raw, source="exp.yaml")
    text = str(info.value)
    assert text.startswith("1 problem in exp.yaml:")
    assert "training.batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)" in text
    assert info.value.exit_code == 2
    assert isinstance(info.value, InputError)


# ----------------------------------------------------------------------------- every problem at once
def test_two_schema_errors_are_both_listed() -> None:
    raw = _edit(lambda r: (r.update(trainig={"epochs": 3}), r["evaluation"].update(folds="ten")))
    paths = [p for p, _ in _problems(raw)]
    assert "trainig" in paths
    assert "evaluation.folds" in paths


def test_two_name_errors_are_both_listed() -> None:
    raw = _edit(lambda r: (_layer(r, 0).update(activation="rellu"), r.update(compile={"optimizer": "adamm"})))
    paths = [p for p, _ in _problems(raw)]
    assert paths == ["model.layers[0].Dense.activation", "compile.optimizer"]


def test_schema_and_name_errors_are_listed_together() -> None:
    raw = _edit(lambda r: (r.update(trainig={"epochs": 3}), _layer(r, 1).pop("units")))
    paths = [p for p, _ in _problems(raw)]
    assert "trainig" in paths
    assert "model.layers[1].Dense.units" in paths


def test_layer_entry_with_two_names_is_an_error() -> None:
    raw = _edit(lambda r: r["model"]["layers"].__setitem__(0, {"Dense": {"units": 3}, "Dropout": {"rate": 0.1}}))
    paths = [p for p, _ in _problems(raw)]
    assert any(p.startswith("model.layers") for p in paths)


@pytest.mark.parametrize("units", ["seven", -3, 0])
def test_dense_units_must_be_a_positive_integer(units: Any) -> None:
    raw = _edit(lambda r: _layer(r, 0).update(units=units))
    assert "model.layers[0].Dense.units" in [p for p, _ in _problems(raw)]


# ----------------------------------------------------------------------------- YAML files


@pytest.mark.parametrize("text", ["1e-3", "1.0e12", "5E-4"])
def test_exponent_floats_in_yaml_are_numbers(spec_file: Any, text: str) -> None:
    path = spec_file(tiny_spec("binary"))
    path.write_text(path.read_text() + f"compile:\n  optimizer:\n    SGD: {{learning_rate: {text}}}\n")
    spec = load_spec(path)
    assert spec.compile.optimizer_entry[1]["learning_rate"] == pytest.approx(float(text))


def test_exponent_float_in_set_override_is_a_number() -> None:
    assert parse_override("compile.optimizer.SGD.learning_rate=1e-3") == ("compile.optimizer.SGD.learning_rate", 0.001)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("data:\n  source: sonar\n model:\n  layers: []\n", "line 3, column 2"),
        ("data: {source: sonar\n", "line 2, column 1"),
        ("a: b: c\n", "line 1, column 5"),
        ("\tdata: 1\n", "line 1, column 1"),
    ],
)
def test_malformed_yaml_reports_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        read_yaml(path)
    assert f"malformed YAML at {where}" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("- a\n- b\n", "must hold a mapping"),
        ("just a string\n", "must hold a mapping"),
        ("", "is empty"),
        ("# x\n", "is empty"),
    ],
)
def test_yaml_must_hold_a_mapping(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=expect):
        read_yaml(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="config file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_load_spec_reads_applies_and_validates(spec_file: Any) -> None:
    path = spec_file(tiny_spec("binary"))
    spec = load_spec(path, ["training.epochs=7"])
    assert spec.training.epochs == 7
    bad = spec_file(_edit(lambda r: r["training"].update(batchsize=3)), "bad.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.source == str(bad)


# ----------------------------------------------------------------------------- --set overrides
@pytest.mark.parametrize(
    ("optimizer", "override", "expected"),
    [
        ("sgd", "compile.optimizer.SGD.learning_rate=0.1", {"SGD": {"learning_rate": 0.1}}),
        ("SGD", "compile.optimizer.SGD.learning_rate=0.1", {"SGD": {"learning_rate": 0.1}}),
        (
            {"SGD": {"learning_rate": 0.01, "momentum": 0.8}},
            "compile.optimizer.SGD.learning_rate=0.1",
            {"SGD": {"learning_rate": 0.1, "momentum": 0.8}},
        ),
        (
            {"sgd": {"momentum": 0.8}},
            "compile.optimizer.SGD.learning_rate=0.1",
            {"SGD": {"learning_rate": 0.1, "momentum": 0.8}},
        ),
        ("adam", "compile.optimizer=sgd", "sgd"),
        ("adam", "compile.optimizer.SGD.learning_rate=0.1", {"SGD": {"learning_rate": 0.1}}),
    ],
)
def test_set_optimizer_argument(optimizer: Any, override: str, expected: Any) -> None:
    raw = tiny_spec("binary", compile={"optimizer": optimizer})
    spec = validate(apply_overrides(raw, [override]))
    assert spec.compile.optimizer == expected
    assert raw["compile"]["optimizer"] == optimizer, "apply_overrides must not change its input"


@pytest.mark.parametrize(
    ("override", "get", "expected"),
    [
        ("training.epochs=3", lambda s: s.training.epochs, 3),
        ("model.layers[0].Dense.units=7", lambda s: s.model.entries[0][1]["units"], 7),
        ("evaluation.mode=kfold", lambda s: s.evaluation.mode, "kfold"),
        ("evaluation.metrics=[f1, accuracy]", lambda s: s.evaluation.metrics, ["f1", "accuracy"]),
        ("preprocessing.impute=median", lambda s: s.preprocessing.impute, "median"),
        ("training.shuffle=false", lambda s: s.training.shuffle, False),
        ("name=renamed", lambda s: s.name, "renamed"),
        ("evaluation.split_seed=", lambda s: s.evaluation.split_seed, None),
    ],
)
def test_set_overrides_apply(override: str, get: Any, expected: Any) -> None:
    spec = validate(apply_overrides(tiny_spec("binary"), [override]))
    assert get(spec) == expected


def test_later_overrides_win() -> None:
    spec = validate(apply_overrides(tiny_spec("binary"), ["training.epochs=3", "training.epochs=5"]))
    assert spec.training.epochs == 5


@pytest.mark.parametrize(
    ("overrides", "path", "text"),
    [
        (["training.epochs=abc"], "training.epochs", "'abc'"),
        (["training.batch_size=0"], "training.batch_size", "greater than 0"),
        (["trainig.epochs=3"], "trainig", "did you mean 'training'"),
        (["training.epoch=3"], "training.epoch", "did you mean 'epochs'"),
        (["compile.optimizer=adamm"], "compile.optimizer", "did you mean 'adam'"),
        (["model.layers[0].Dense.activation=rellu"], "model.layers[0].Dense.activation", "did you mean 'relu'"),
        (["model.layers[5].Dense.units=7"], "model.layers[5].Dense.units", "out of range"),
        (["training.epochs=3", "evaluation.mode=kfold", "evaluation.repeats=2"], "evaluation", "repeated_kfold"),
        (["training.epochs"], "--set", "key.path=value"),
        (["=3"], "--set", "empty key"),
        (["training.epochs.x=3"], "training.epochs.x", "cannot set 'x'"),
    ],
)
def test_bad_override_names_the_path(overrides: list[str], path: str, text: str) -> None:
    raw = tiny_spec("binary")
    raw["training"]["epochs"] = 10
    problems = _problems(raw, overrides)
    assert path in [p for p, _ in problems], problems
    assert text in dict(problems)[path]


def test_parse_override_reads_yaml_values() -> None:
    assert parse_override("a.b=0.01") == ("a.b", 0.01)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    assert parse_override(" a = true") == ("a", True)
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a={b: 1}") == ("a", {"b": 1})


def test_set_path_creates_missing_sections() -> None:
    raw: dict[str, Any] = {}
    set_path(raw, "training.callbacks", [{"EarlyStopping": {"patience": 2}}])
    set_path(raw, "evaluation.folds", 4)
    assert raw == {"training": {"callbacks": [{"EarlyStopping": {"patience": 2}}]}, "evaluation": {"folds": 4}}


# ----------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mode", [*TRAIN_MODES, *CV_MODES])
def test_every_mode_validates_and_is_cv_matches(mode: str) -> None:
    evaluation: dict[str, Any] = {"mode": mode}
    if mode == "validation_split":
        evaluation["validation_split"] = 0.25
    if mode.startswith("repeated"):
        evaluation["repeats"] = 3
    spec = validate(tiny_spec("binary", evaluation=evaluation))
    assert spec.is_cv == (mode in CV_MODES)


@pytest.mark.parametrize("mode", ["repeated_kfold", "repeated_split"])
def test_repeated_modes_accept_repeats(mode: str) -> None:
    spec = validate(tiny_spec("binary", evaluation={"mode": mode, "repeats": 4}))
    assert spec.evaluation.repeats == 4


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
