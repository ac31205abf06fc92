"""Tests of ``dlrun predict``: a trained run applied to new rows gives the run's own predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_spec, write_spec
from sklearn.datasets import make_classification
from typer.testing import CliRunner

from dlrun.cli.app import app, main
from dlrun.runs.predict import predict_file

LABELS = np.array(["'-1'", "'1'"])  # quotes included, as in mammography.csv
PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
HEADER_BUG = ()  # was an xfail marker for a fixed bug (pandas 3 removed to_numeric(errors='ignore'))


def _invoke(args: list[Any]) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


@pytest.fixture(scope="module")
def string_label_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A binary run trained on a CSV whose labels are the strings "'-1'" and "'1'"."""
    folder = tmp_path_factory.mktemp("predict_binary")
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3, n_redundant=0, random_state=4)
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    table["label"] = LABELS[y]
    csv = folder / "train.csv"
    table.to_csv(csv, index=False)
    raw = tiny_spec("binary", epochs=3)
    raw["data"] = {"source": str(csv), "target": "label"}
    spec = write_spec(folder / "spec.yaml", raw)
    out = folder / "run"
    _invoke(["train", spec, "--out", out])
    return {"folder": folder, "out": out, "table": table, "preds": pd.read_csv(out / "predictions.csv")}


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A regression run whose target is standardised for training and must come back in its own units."""
    folder = tmp_path_factory.mktemp("predict_regression")
    raw = tiny_spec("regression", epochs=3, preprocessing={"target": {"transform": "standard"}})
    raw["data"]["params"]["bias"] = 500.0  # targets around 500: far from the standardised scale
    spec = write_spec(folder / "spec.yaml", raw)
    out = folder / "run"
    _invoke(["train", spec, "--out", out])
    from dlrun.data.sources import load_dataset
    from dlrun.spec.schema import validate

    data = load_dataset(validate(raw).data, seed=raw["seed"])
    table = pd.concat([data.X, data.y], axis=1)
    return {"folder": folder, "out": out, "table": table, "preds": pd.read_csv(out / "predictions.csv")}


def _write_input(run: dict[str, Any], layout: str, header: bool, name: str) -> tuple[Path, pd.DataFrame]:
    """Write the held-out rows of the training table as a CSV; return it with the run's predictions for them."""
    preds = run["preds"]
    rows = run["table"].iloc[preds["row"].to_numpy()]
    if layout == "features":
        rows = rows.drop(columns=rows.columns[-1])
    path = run["folder"] / name
    rows.to_csv(path, index=False, header=header)
    return path, preds


LAYOUTS = [
    pytest.param("training", False, id="training-layout-no-header"),
    pytest.param("features", False, id="features-only-no-header"),
    pytest.param("training", True, id="training-layout-header", marks=HEADER_BUG),
    pytest.param("features", True, id="features-only-header", marks=HEADER_BUG),
]


@pytest.mark.parametrize(("layout", "header"), LAYOUTS)
def test_predict_matches_training_predictions(string_label_run: dict[str, Any], layout: str, header: bool) -> None:
    path, expected = _write_input(string_label_run, layout, header, f"in_{layout}_{header}.csv")
    out = string_label_run["folder"] / f"preds_{layout}_{header}.csv"
    result = _invoke(["predict", string_label_run["out"], path, "--out", out])
    assert f"{len(expected)} predictions written" in result.output
    got = pd.read_csv(out)
    assert list(got.columns) == ["pred", "proba_'-1'", "proba_'1'"]
    assert len(got) == len(expected)
    # labels come back in their original form, quotes included
    assert set(got["pred"]) <= set(LABELS)
    assert got["pred"].tolist() == expected["pred"].tolist()
    for col in ("proba_'-1'", "proba_'1'"):
        np.testing.assert_allclose(got[col].to_numpy(), expected[col].to_numpy(), atol=1e-5)


def test_predict_to_stdout(string_label_run: dict[str, Any]) -> None:
    path, expected = _write_input(string_label_run, "features", False, "stdout_in.csv")
    result = _invoke(["predict", string_label_run["out"], path])
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "pred,proba_'-1',proba_'1'"
    assert len(lines) == len(expected) + 1
    assert [ln.split(",")[0] for ln in lines[1:]] == expected["pred"].tolist()


def test_predict_file_returns_a_frame(string_label_run: dict[str, Any]) -> None:
    path, expected = _write_input(string_label_run, "training", False, "api_in.csv")
    df = predict_file(string_label_run["out"], path)
    assert df["pred"].tolist() == expected["pred"].tolist()
    np.testing.assert_allclose(df[["proba_'-1'", "proba_'1'"]].sum(axis=1), 1.0, atol=1e-5)


def test_predict_regression_in_original_units(regression_run: dict[str, Any]) -> None:
    path, expected = _write_input(regression_run, "features", False, "reg_in.csv")
    out = regression_run["folder"] / "reg_preds.csv"
    _invoke(["predict", regression_run["out"], path, "--out", out])
    got = pd.read_csv(out)
    assert list(got.columns) == ["pred"]
    np.testing.assert_allclose(got["pred"].to_numpy(), expected["pred"].to_numpy(), rtol=1e-4, atol=1e-3)
    # the model learns standardised targets (around 0); predictions come back around the targets' 500
    # (without the inverse transform they would sit within a few units of 0)
    assert abs(got["pred"].mean() - expected["true"].mean()) < 2 * expected["true"].std()
    assert got["pred"].mean() > 200


def test_predict_wrong_column_count_exits_2(
    string_label_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = string_label_run["folder"] / "bad.csv"
    pd.DataFrame(np.zeros((3, 3))).to_csv(path, index=False, header=False)
    with pytest.raises(SystemExit) as info:
        main(["predict", str(string_label_run["out"]), str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "got 3 columns" in err and "5 feature columns" in err


def test_predict_needs_a_train_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("1,2\n")
    with pytest.raises(SystemExit) as info:
        main(["predict", str(tmp_path), str(csv)])
    assert info.value.code == 2
    assert "finished `dlrun train` run" in capsys.readouterr().err


def test_predict_missing_input_exits_2(string_label_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(string_label_run["out"]), str(string_label_run["folder"] / "nope.csv")])
    assert info.value.code == 2
    assert "input CSV not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- messages that name the thing
META = {
    "feature_names": ["f0", "f1", "f2", "f3", "f4"],
    "raw_columns": ["f0", "f1", "f2", "f3", "f4", "label"],
    "target_names": ["label"],
}


@pytest.mark.parametrize(
    ("text", "named", "absent"),
    [
        pytest.param("f0,f1,f2\n1,2,3\n", ["lacks feature column(s): f3, f4"], ["unexpected"], id="two-missing"),
        pytest.param(
            "f0,f1,f2,f3,x9\n1,2,3,4,5\n",
            ["lacks feature column(s): f4", "unexpected column(s): x9"],
            [],
            id="one-missing-one-unexpected",
        ),
        pytest.param(
            "a,b,c\n1,2,3\n",
            ["lacks feature column(s): f0, f1, f2, f3, f4", "unexpected column(s): a, b, c"],
            [],
            id="no-known-name",
        ),
        pytest.param(
            "label,f0,f1,f2,f3\n1,2,3,4,5\n",
            ["lacks feature column(s): f4"],
            ["unexpected"],
            id="target-not-unexpected",
        ),
    ],
)
def test_a_header_without_feature_columns_names_them(
    tmp_path: Path, text: str, named: list[str], absent: list[str]
) -> None:
    from dlrun.errors import DataError
    from dlrun.runs.predict import read_rows

    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_rows(path, META, {})
    message = str(info.value)
    for part in named:
        assert part in message
    for part in absent:
        assert part not in message
    assert "expected the columns f0, f1, f2, f3, f4" in message


SPEC_TEXT = "name: x\nseed: 7\ndata:\n  source: sonar\n  target: class\nmodel:\n  layers:\n    - Dense: {units: 1}\n"


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        pytest.param("config.yaml", SPEC_TEXT, "a YAML file", id="yaml-suffix"),
        pytest.param("spec.json", '{"name": "x", "seed": 7}', "a JSON file", id="json-suffix"),
        pytest.param("config.txt", SPEC_TEXT, "a YAML file", id="yaml-content"),
        pytest.param(
            "rows.csv",
            '{"name": "x",\n "data": {"source": "sonar", "target": "class"}}\n',
            "a JSON file",
            id="json-content",
        ),
        pytest.param("rows.dat", "key: value\nlist: [1, 2, 3]\nother: 4\n", "a YAML file", id="yaml-list-content"),
    ],
)
def test_a_non_table_file_is_not_a_csv_of_rows(tmp_path: Path, name: str, text: str, kind: str) -> None:
    from dlrun.errors import DataError
    from dlrun.runs.predict import read_rows

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_rows(path, META, {})
    message = str(info.value)
    assert f"is not a CSV of rows ({kind})" in message
    assert "f0, f1, f2, f3, f4" in message
    assert "tokenizing" not in message


def test_a_binary_file_is_not_a_csv_of_rows(tmp_path: Path) -> None:
    from dlrun.errors import DataError
    from dlrun.runs.predict import read_rows

    path = tmp_path / "rows.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"is not a CSV of rows \(a binary file\)"):
        read_rows(path, META, {})


def test_predict_given_the_spec_says_so(string_label_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(string_label_run["out"]), str(string_label_run["folder"] / "spec.yaml")])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "is not a CSV of rows (a YAML file)" in err and "f0, f1, f2, f3, f4" in err
    assert "Traceback" not in err


def test_load_run_model_is_gone() -> None:
    import dlrun.runs.predict as predict

    assert "load_run_model" not in vars(predict)
