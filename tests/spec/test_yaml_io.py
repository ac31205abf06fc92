"""Tests of dlrun.spec.yaml_io: YAML files (floats, duplicate keys, malformed text) and ``--set`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import edited_spec, spec_problems, tiny_spec

from dlrun.errors import SpecError
from dlrun.spec.dotted import set_path
from dlrun.spec.validation import load_spec, validate
from dlrun.spec.yaml_io import apply_overrides, parse_override, read_yaml

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
    bad = spec_file(edited_spec(lambda r: r["training"].update(batchsize=3)), "bad.yaml")
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
        (
            ["training.epochs=3", "evaluation.mode=kfold", "evaluation.repeats=2"],
            "evaluation.repeats",
            "repeated_kfold",
        ),
        (["training.epochs"], "--set", "key.path=value"),
        (["=3"], "--set", "empty key"),
        (["training.epochs.x=3"], "training.epochs.x", "cannot set 'x'"),
    ],
)
def test_bad_override_names_the_path(overrides: list[str], path: str, text: str) -> None:
    raw = tiny_spec("binary")
    raw["training"]["epochs"] = 10
    problems = spec_problems(raw, overrides)
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
