"""Bad input of every kind: exit 2 (or a clear warning) and one line naming the field,
file, column or value; checked before training and before Keras loads wherever possible."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_main, tiny_spec, write_spec

from dlrun.errors import DataError, InputError, SpecError
from dlrun.spec.validation import validate
from dlrun.spec.yaml_io import read_yaml


def _with(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return out


BASE = tiny_spec(epochs=2)

# (raw spec, dotted path named, words in the message)
STATIC = [
    (_with(BASE, "training.epochs", True), "training.epochs", "boolean"),
    (_with(BASE, "compile.optimizer", {"SGD": {"learning_rate": -0.1}}), "learning_rate", "positive"),
    (_with(BASE, "compile.optimizer", {"SGD": {"learnin_rate": 0.1}}), "learnin_rate", "did you mean 'learning_rate'"),
    (_with(BASE, "compile.optimizer", {"adam": {"beta1": 0.9}}), "beta1", "did you mean 'beta_1'"),
    (
        _with(BASE, "model.layers", [{"Dense": {"unit": 8}}, {"Dense": {"units": 1}}]),
        "model.layers[0].Dense.unit",
        "did you mean 'units'",
    ),
    (
        _with(BASE, "model.layers", [{"Dense": {"units": 8, "kernel_constraint": {"MaxNorm": {"max_valu": 3}}}}]),
        "MaxNorm.max_valu",
        "did you mean 'max_value'",
    ),
    (
        _with(BASE, "training.callbacks", [{"EarlyStopping": {"patiense": 3, "monitor": "loss"}}]),
        "EarlyStopping.patiense",
        "did you mean 'patience'",
    ),
    (_with(BASE, "compile.loss", {"BinaryCrossentropy": {"from_logit": True}}), "from_logit", "from_logits"),
    (
        _with(BASE, "training.callbacks", [{"EarlyStopping": {"monitor": "val_loss", "patience": 2}}]),
        "training.callbacks[0].EarlyStopping.monitor",
        "no validation rows",
    ),
    (
        _with(BASE, "training.callbacks", [{"EarlyStopping": {"patience": 2}}]),  # Keras' default monitor: val_loss
        "EarlyStopping.monitor",
        "validation_split",
    ),
    (_with(BASE, "preprocessing.image", {"reshape": [2, 3]}), "preprocessing.image.reshape", "image data"),
    (_with(BASE, "seed", -1), "seed", "greater than or equal to 0"),
    (_with(BASE, "evaluation.split_seed", -5), "evaluation.split_seed", "greater than or equal to 0"),
    (
        _with(
            _with(tiny_spec("multiclass"), "preprocessing.target", {"onehot": True}),
            "compile.loss",
            "sparse_categorical_crossentropy",
        ),
        "compile.loss",
        "onehot",
    ),
    (_with(BASE, "training.batch_size", list(range(30000))), "training.batch_size", "characters"),
]


@pytest.mark.parametrize(("raw", "where", "words"), STATIC, ids=[s[1] + ":" + s[2][:12] for s in STATIC])
def test_static_problems_name_the_field(raw: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        validate(raw, source="spec.yaml")
    text = str(info.value)
    assert where in text and words in text, text
    assert all(len(line) < 600 for line in text.splitlines())


def test_validation_with_argument_checks_never_imports_keras(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from dlrun.spec.validation import validate; from conftest import tiny_spec\n"
        "raw = tiny_spec(); raw['compile'] = {'optimizer': {'SGD': {'learning_rate': 0.1}}}\n"
        "validate(raw)\n"
        "assert not {'keras', 'tensorflow', 'jax'} & set(sys.modules)"
    )
    tests = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], cwd=tests, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_valid_arguments_pass() -> None:
    raw = _with(BASE, "compile.optimizer", {"SGD": {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}})
    raw = _with(raw, "training.callbacks", [{"EarlyStopping": {"monitor": "val_loss", "patience": 3}}])
    raw = _with(raw, "evaluation.validation_split", 0.2)
    raw["model"]["layers"][0] = {"Dense": {"units": 8, "kernel_constraint": {"MaxNorm": {"max_value": 3}}}}
    validate(raw)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "name: a\nmodel: {layers: [Dense]}\ndata: {source: sonar}\nmodel: {layers: [Dropout]}\n",
            "duplicate key 'model'",
        ),
        ("", "is empty"),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=words):
        read_yaml(path)


def test_a_binary_file_as_config_is_named(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00\x80binary")
    code, _, err = run_main(["validate", path], capsys)
    assert code == 2 and "model.keras" in err and "not a text" in err


# ----------------------------------------------------------------------------- data-dependent, before training
def _prepare(raw: dict[str, Any], config: str | None = None) -> Any:
    from dlrun.protocol.jobs import prepare

    return prepare(validate(raw, source=config))


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_classification_loss_on_a_regression_target() -> None:
    raw = _with(tiny_spec("regression"), "compile.loss", "binary_crossentropy")
    with pytest.raises(SpecError, match=r"compile.loss.*regression target"):
        _prepare(raw)


def test_test_size_too_small_for_the_classes() -> None:
    raw = _with(tiny_spec("multiclass"), "evaluation.test_size", 0.01)
    with pytest.raises(SpecError, match=r"evaluation.test_size"):
        _prepare(raw)


def test_a_headerless_csv_with_header_infer(tmp_path: Path) -> None:
    rows = "\n".join(f"{i * 0.1:.2f},{i * 0.2:.2f},{i % 2}" for i in range(20))
    raw = _with(BASE, "data", {"source": str(_csv(tmp_path, rows + "\n")), "task": "binary"})
    with pytest.raises(DataError, match=r"data.csv.header"):
        _prepare(raw)
    raw["data"]["csv"] = {"header": None}
    assert len(_prepare(raw).data.y) == 20


def test_a_header_only_csv(tmp_path: Path) -> None:
    raw = _with(BASE, "data", {"source": str(_csv(tmp_path, "a,b,c\n"))})
    with pytest.raises(DataError, match="no data rows"):
        _prepare(raw)


def test_inf_names_its_column(tmp_path: Path) -> None:
    rows = "a,b,c\n" + "\n".join(f"{i},{'inf' if i == 3 else i * 2},{i % 2}" for i in range(20))
    raw = _with(BASE, "data", {"source": str(_csv(tmp_path, rows + "\n")), "task": "binary"})
    with pytest.raises(DataError, match=r"infinite values.*\bb \(1 row\)"):
        _prepare(raw)


def test_missing_values_are_counted_over_all_rows(tmp_path: Path) -> None:
    rows = "a,b,c\n" + "\n".join(f"{i},{'' if i % 4 == 0 else i},{i % 2}" for i in range(100))
    raw = _with(BASE, "data", {"source": str(_csv(tmp_path, rows + "\n")), "task": "binary"})
    with pytest.raises(DataError, match=r"b \(25 missing\)"):
        _prepare(raw)


def test_max_rows_that_drops_a_class() -> None:
    raw = _with(tiny_spec("multiclass"), "data.max_rows", 2)
    with pytest.raises(DataError, match=r"data.max_rows"):
        _prepare(raw)


def test_a_relative_csv_path_is_read_from_the_configs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlrun.spec.validation import load_spec

    folder = tmp_path / "project"
    folder.mkdir()
    _csv(folder, "a,b,c\n" + "\n".join(f"{i},{i * 2},{i % 2}" for i in range(20)) + "\n")
    config = write_spec(folder / "c.yaml", _with(BASE, "data", {"source": "d.csv", "task": "binary"}))
    monkeypatch.chdir(tmp_path)
    spec = load_spec(config)
    assert Path(spec.data.source) == folder / "d.csv"


def test_an_exploding_but_finite_loss_is_a_warning_naming_the_learning_rate() -> None:
    from dlrun.runs.summarize import divergence_warning
    from dlrun.spec.validation import validate as v

    spec = v(_with(BASE, "compile.optimizer", {"SGD": {"learning_rate": 1000000.0}}))
    history = pd.DataFrame({"repeat": 0, "fold": 0, "epoch": [1, 2, 3], "loss": [0.7, 3e9, 2.4e18]})
    text = divergence_warning(spec, history)
    assert text is not None and "learning_rate 1000000.0" in text and "exploded" in text
    calm = history.assign(loss=[0.7, 0.6, 0.5])
    assert divergence_warning(spec, calm) is None


# ----------------------------------------------------------------------------- command line
def test_smoothing_out_of_range_is_refused_before_training(tmp_path: Path, capsys: Any, spec_file: Any) -> None:
    spec = spec_file(BASE)
    code, _, err = run_main(["train", spec, "--out", tmp_path / "run", "--smoothing", "5"], capsys)
    assert code == 2 and "--smoothing" in err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_debug_works_after_the_subcommand(tmp_path: Path, capsys: Any) -> None:
    from dlrun.cli.app import _STATE, main

    try:
        with pytest.raises(InputError):
            main(["status", str(tmp_path / "nope"), "--debug"])
    finally:
        _STATE["debug"] = False


def test_batch_keeps_every_problem_of_a_failed_config(tmp_path: Path, capsys: Any) -> None:
    bad = write_spec(tmp_path / "bad.yaml", {**BASE, "trainig": {}, "seed": -1})
    code, _, _ = run_main(["batch", bad, "--out", tmp_path / "b"], capsys)
    assert code == 1
    table = pd.read_csv(tmp_path / "b" / "batch.csv")
    error = str(table["error"].iloc[0])
    assert "trainig" in error and "seed" in error


def test_compare_with_one_run_is_exit_2(tmp_path: Path, capsys: Any) -> None:
    run = tmp_path / "only"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    code, _, err = run_main(["compare", run], capsys)
    assert code == 2 and "at least two" in err
