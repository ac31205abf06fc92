"""End-to-end tests of the command line on tiny synthetic data (120 rows, 2-3 epochs).

Successful commands run through Typer's ``CliRunner`` on ``dlrun.cli.app.app``; error paths run
through ``dlrun.cli.app.main`` (which maps dlrun errors to exit codes), and one real
``python -m dlrun`` subprocess checks the exit code a shell sees.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import HAVE_SHARED_DATA, run_main, tiny_spec, write_spec
from typer.testing import CliRunner

from dlrun.cli.app import app
from dlrun.data.sources import load_dataset
from dlrun.spec.schema import validate

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"

# task -> (spec overrides, expected per-epoch history columns (test_: the held-out rows), held-out metrics)
TRAIN_CASES: dict[str, dict[str, Any]] = {
    "binary": {
        "evaluation": {"mode": "split", "validation_split": 0.2},
        "history": {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"},
        "metrics": ["accuracy", "roc_auc", "f1", "precision", "recall"],
    },
    "multiclass": {
        "evaluation": {"mode": "split"},
        "history": {"epoch", "loss", "accuracy", "test_loss", "test_accuracy"},
        "metrics": ["accuracy", "f1", "precision", "recall"],
    },
    "regression": {
        "evaluation": {"mode": "split", "validation_split": 0.2},
        "history": {"epoch", "loss", "mae", "val_loss", "val_mae", "test_loss", "test_mae"},
        "metrics": ["mae", "rmse", "r2"],
    },
}


def invoke(args: list[str]) -> Any:
    """Run ``dlrun ARGS`` in-process with CliRunner; fail with its output if it did not succeed."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise AssertionError(f"dlrun {' '.join(map(str, args))} -> {result.exit_code}\n{result.output}") from (
            result.exception
        )
    return result


# ----------------------------------------------------------------------------- train, end to end
@pytest.fixture(scope="module", params=list(TRAIN_CASES))
def train_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    task = request.param
    case = TRAIN_CASES[task]
    folder = tmp_path_factory.mktemp(f"train_{task}")
    raw = tiny_spec(task, epochs=2, evaluation=case["evaluation"])
    spec_path = write_spec(folder / "spec.yaml", raw)
    out = folder / "run"
    # --set must win over the file (epochs 2 -> 3); --log-every 2 prints epochs 2 and 3 only
    result = invoke(["train", spec_path, "--out", out, "--set", "training.epochs=3", "--log-every", "2"])
    return {"task": task, "case": case, "raw": raw, "out": out, "stdout": result.stdout, "spec_path": spec_path}


def test_train_writes_every_output(train_run: dict[str, Any]) -> None:
    out: Path = train_run["out"]
    task = train_run["task"]
    for name in (
        "config.yaml",
        "env.json",
        "history.csv",
        "summary.json",
        "summary.md",
        "predictions.csv",
        "model.keras",
        "preprocessor.json",
        "state.json",
        "progress.jsonl",
        "plots/learning_curve_loss.png",
    ):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    plot = "predicted_vs_true" if task == "regression" else "confusion_matrix"
    assert (out / "plots" / f"{plot}.png").read_bytes().startswith(PNG)
    assert (out / "plots/learning_curve_loss.png").read_bytes().startswith(PNG)
    assert not list(out.glob("**/*.tmp")), "no temporary files are left behind"
    assert not (out / "checkpoint").exists() or not any((out / "checkpoint").iterdir())


def test_train_config_is_fully_resolved(train_run: dict[str, Any]) -> None:
    config = yaml.safe_load((train_run["out"] / "config.yaml").read_text())
    for section in ("data", "preprocessing", "model", "compile", "training", "evaluation", "runtime"):
        assert section in config, section
    assert config["training"]["epochs"] == 3, "the --set override is recorded"
    assert config["training"]["batch_size"] == 16
    assert config["training"]["checkpoint_every"] == 25, "defaults are filled in"
    assert config["preprocessing"]["scaling"] == "standard"
    assert config["evaluation"]["test_size"] == pytest.approx(0.33)
    assert config["runtime"]["engine"] == "auto"
    spec = validate(config)  # the resolved file is itself a valid spec
    assert spec.model.entries == validate(train_run["raw"]).model.entries


def test_train_env_and_state(train_run: dict[str, Any]) -> None:
    out: Path = train_run["out"]
    env = json.loads((out / "env.json").read_text())
    for key in ("python", "backend", "keras", "numpy", "scikit-learn", "device", "seed", "command", "time"):
        assert key in env, key
    assert env["seed"] == 3
    assert env["device"]["device"] in ("cpu", "gpu")
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "finished"
    assert state["command"] == "train"
    assert state["finished_models"] == state["total_models"] == 1
    events = [json.loads(line)["event"] for line in (out / "progress.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "finished"


def test_train_history(train_run: dict[str, Any]) -> None:
    history = pd.read_csv(train_run["out"] / "history.csv")
    assert set(history.columns) == train_run["case"]["history"]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert (history["loss"] > 0).all()


def test_train_summary_and_predictions(train_run: dict[str, Any]) -> None:
    out: Path = train_run["out"]
    task = train_run["task"]
    summary = json.loads((out / "summary.json").read_text())
    metrics = train_run["case"]["metrics"]
    assert summary["command"] == "train" and summary["task"] == task
    assert list(summary["metrics"]) == metrics
    assert summary["main_metric"] == metrics[0]
    assert summary["epochs"] == 3
    for m in metrics:
        value = summary["metrics"][m]
        assert isinstance(value, float) and math.isfinite(value), m
        if m in ("accuracy", "roc_auc", "f1", "precision", "recall"):
            assert 0.0 <= value <= 1.0
        assert m in summary["baseline"]["metrics"] and m in summary["train_metrics"]
    assert summary["n_test"] == 40  # ceil(0.33 * 120)
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 120
    assert f"on {summary['n_test']} held-out test rows" in summary["headline"]["text"]
    assert summary["headline"]["text"] in train_run["stdout"]

    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == summary["n_test"]
    assert preds["row"].is_unique and preds["row"].between(0, 119).all()
    data = load_dataset(validate(train_run["raw"]).data, seed=3)
    truth = data.y.iloc[preds["row"].to_numpy(), 0].to_numpy()
    np.testing.assert_allclose(preds["true"].to_numpy(), truth)
    if task == "regression":
        assert list(preds.columns) == ["row", "true", "pred"]
        assert np.isfinite(preds["pred"]).all()
    else:
        classes = sorted(data.y.iloc[:, 0].unique())
        assert list(preds.columns) == ["row", "true", "pred", *[f"proba_{c}" for c in classes]]
        assert set(preds["pred"]) <= set(classes)
        proba = preds[[f"proba_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(classes)[proba.argmax(axis=1)], preds["pred"].to_numpy())
        acc = float((preds["true"] == preds["pred"]).mean())
        assert acc == pytest.approx(summary["metrics"]["accuracy"])


def test_train_log_every_in_output(train_run: dict[str, Any]) -> None:
    lines = [ln for ln in train_run["stdout"].splitlines() if "| epoch " in ln]
    assert [ln.split("| epoch ")[1].split(" ")[0] for ln in lines] == ["2/3", "3/3"]
    assert "\r" not in train_run["stdout"] and "\x1b" not in train_run["stdout"]


@pytest.mark.parametrize("train_run", ["binary"], indirect=True)
def test_train_refuses_an_existing_run_without_resume(
    train_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = (train_run["out"] / "state.json").read_text()
    code, _, err = run_main(["train", train_run["spec_path"], "--out", train_run["out"]], capsys)
    assert code == 2
    assert "already holds a run" in err and "--resume" in err
    assert (train_run["out"] / "state.json").read_text() == before


# ----------------------------------------------------------------------------- cv, end to end
CV_CASES = {
    "kfold": {"task": "binary", "evaluation": {"mode": "kfold", "folds": 3}, "models": 3, "repeats": 1},
    "repeated_kfold": {
        "task": "regression",
        "evaluation": {"mode": "repeated_kfold", "folds": 3, "repeats": 2},
        "models": 6,
        "repeats": 2,
    },
}


def _cv(folder: Path, mode: str) -> tuple[Path, Any]:
    case = CV_CASES[mode]
    spec_path = write_spec(folder / "spec.yaml", tiny_spec(case["task"], epochs=2, evaluation=case["evaluation"]))
    out = folder / "run"
    result = invoke(["cv", spec_path, "--out", out, "--engine", "sequential"])
    return out, result


@pytest.fixture(scope="module", params=list(CV_CASES))
def cv_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mode = request.param
    out, result = _cv(tmp_path_factory.mktemp(f"cv_{mode}"), mode)
    return {"mode": mode, "case": CV_CASES[mode], "out": out, "stdout": result.stdout}


def test_cv_writes_every_output(cv_run: dict[str, Any]) -> None:
    out: Path = cv_run["out"]
    case = cv_run["case"]
    n, k, repeats = case["models"], 3, case["repeats"]
    main_metric = "accuracy" if case["task"] == "binary" else "mae"

    folds = pd.read_csv(out / "folds.csv")
    assert len(folds) == n
    assert folds[["repeat", "fold"]].values.tolist() == [[r, f] for r in range(repeats) for f in range(k)]
    for r in range(repeats):
        rows = " ".join(folds.loc[folds["repeat"] == r, "test_index"]).split()
        assert sorted(map(int, rows)) == list(range(120)), "each repeat's test folds partition the rows"

    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == n
    assert set(scores["engine"]) == {"sequential"}
    assert (scores["epochs"] == 2).all()
    assert (scores["n_train"] + scores["n_test"] == 120).all()
    for col in (main_metric, f"baseline_{main_metric}", f"train_{main_metric}", "seconds", "seed"):
        assert col in scores.columns and scores[col].notna().all(), col

    history = pd.read_csv(out / "history.csv")
    assert {"repeat", "fold", "epoch", "loss"} <= set(history.columns)
    assert len(history) == n * 2

    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 120 * repeats
    for (r, f), group in preds.groupby(["repeat", "fold"]):
        expected = folds.loc[(folds["repeat"] == r) & (folds["fold"] == f), "test_index"].iloc[0]
        assert sorted(group["row"]) == sorted(map(int, expected.split()))

    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "cv" and summary["mode"] == cv_run["mode"]
    assert summary["n_models"] == n and summary["repeats"] == repeats and summary["folds"] == k
    assert summary["main_metric"] == main_metric
    block = summary["metrics"][main_metric]
    est = block[block["headline"]]
    assert est["n"] >= 2
    assert est["ci_low"] <= est["mean"] <= est["ci_high"]
    assert est["mean"] == pytest.approx(scores[main_metric].mean())
    assert len(summary["splits_digest"]) == 40
    assert summary["headline"]["text"] in cv_run["stdout"]

    md = (out / "summary.md").read_text()
    assert md.startswith(f"# tiny_{case['task']} — {cv_run['mode']}")
    assert f"| {main_metric} |" in md and "No-skill baseline" in md

    plots = {p.name for p in (out / "plots").glob("*.png")}
    expected_plots = {"learning_curve_loss.png", f"scores_{main_metric}.png", f"qq_{main_metric}.png"}
    if repeats > 1:
        expected_plots.add(f"repeats_{main_metric}.png")
    assert expected_plots <= plots
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "finished" and state["finished_models"] == n


@pytest.mark.parametrize("cv_run", ["kfold"], indirect=True)
def test_cv_is_deterministic(cv_run: dict[str, Any], tmp_path: Path) -> None:
    again, _ = _cv(tmp_path, "kfold")
    a = pd.read_csv(cv_run["out"] / "scores.csv").drop(columns="seconds")
    b = pd.read_csv(again / "scores.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(cv_run["out"] / "history.csv"), pd.read_csv(again / "history.csv"))
    assert (cv_run["out"] / "folds.csv").read_text() == (again / "folds.csv").read_text()


# ----------------------------------------------------------------------------- errors and exit codes
def test_nan_loss_exits_1_with_a_clear_message(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec("regression", epochs=3, compile={"optimizer": {"SGD": {"learning_rate": 1.0e12}}})
    code, _, err = run_main(["train", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 1
    assert "loss became NaN" in err and "learning_rate" in err
    assert "Traceback" not in err
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["status"] == "failed" and "NaN" in state["error"]


def _bad_layer_run(spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    """Train a spec that passes validation but whose layer argument Keras refuses when the layer is built."""
    raw = tiny_spec("binary")
    raw["model"]["layers"].insert(0, {"Reshape": {"target_shape": [7, 7]}})
    raw["model"]["layers"].insert(1, {"Flatten": {}})
    out = tmp_path / "run"
    code, _, err = run_main(["train", spec_file(raw), "--out", out], capsys)
    return code, err, out


def test_a_layer_argument_typo_exits_2_before_any_folder(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec("binary")
    raw["model"]["layers"].insert(1, {"Dense": {"units": 4, "kernel_sise": 3}})
    code, _, err = run_main(["train", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert "model.layers[1].Dense.kernel_sise" in err and "did you mean 'kernel_size'" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_bad_layer_argument_at_build_time_exits_2(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out = _bad_layer_run(spec_file, tmp_path, capsys)
    assert code == 2
    assert "model.layers[0].Reshape" in err
    assert "Traceback" not in err
    assert json.loads((out / "state.json").read_text())["status"] == "failed"


def test_failed_state_records_the_problem(spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, out = _bad_layer_run(spec_file, tmp_path, capsys)
    assert "model.layers[0].Reshape" in json.loads((out / "state.json").read_text())["error"]


def test_misspelled_key_exits_2_naming_it(spec_file: Any, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tiny_spec("binary")
    raw["training"]["batchsize"] = 4
    code, out, err = run_main(["validate", spec_file(raw)], capsys)
    assert code == 2
    assert "training.batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (
            {"Dense": {"units": 3}},
            [
                "model.layers[1].Dense.units: the output layer has 3 units but the binary target needs 1 unit",
                "model.layers[1].Dense.activation: binary cross-entropy needs a sigmoid output, got 'linear'",
            ],
        ),
        ({"Reshape": {"target_shape": [2, 4]}}, ["model.layers[1].Reshape: the model must output (batch, 1)"]),
    ],
    ids=["width-and-activation", "rank"],
)
def test_validate_tells_every_output_problem_the_run_would_meet(
    spec_file: Any, capsys: pytest.CaptureFixture[str], last: dict[str, Any], expected: list[str]
) -> None:
    raw = tiny_spec("binary")
    del raw["data"]["task"]  # inferred from the data: checked once validate reads it
    raw["model"]["layers"][-1] = last
    code, out, err = run_main(["validate", spec_file(raw)], capsys)
    assert code == 2, out + err
    assert f"{len(expected)} problem" in err
    for line in expected:
        assert line in err
    assert "Traceback" not in out + err


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "cv", "validate"):
        code, _, err = run_main([command, tmp_path / "nope.yaml"], capsys)
        assert code == 2, command
        assert "config file not found" in err


def test_train_on_a_cv_spec_points_to_dlrun_cv(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec("binary", evaluation={"mode": "kfold", "folds": 3})
    code, _, err = run_main(["train", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert "dlrun cv" in err and "'kfold'" in err


def test_cv_on_a_train_spec_points_to_dlrun_train(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["cv", spec_file(tiny_spec("binary")), "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert "dlrun train" in err


def test_bad_set_value_exits_2(spec_file: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["validate", spec_file(tiny_spec("binary")), "--set", "training.epochs=abc"], capsys)
    assert code == 2
    assert "training.epochs" in err and "'abc'" in err


def test_resume_needs_out(spec_file: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["train", spec_file(tiny_spec("binary")), "--resume"], capsys)
    assert code == 2
    assert "--resume needs --out" in err


def test_shell_exit_code_of_python_m_dlrun(spec_file: Any) -> None:
    raw = tiny_spec("binary")
    raw["trainig"] = raw.pop("training")
    path = spec_file(raw)
    proc = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(path), "--out", str(path.parent / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "trainig: unknown key 'trainig' (did you mean 'training'?)" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (path.parent / "run").exists(), "nothing is written for an invalid spec"


# ----------------------------------------------------------------------------- light commands
WRAPPER = textwrap.dedent(
    """
    import sys
    from dlrun.cli.app import main

    def run(args):
        try:
            main(args)
        except SystemExit as exc:
            return exc.code
        return None

    for args in (["--help"], ["validate", sys.argv[1]]):
        code = run(args)
        heavy = sorted(m for m in ("tensorflow", "keras", "jax") if m in sys.modules)
        print(f"RESULT {args[0]} code={code} heavy={heavy}", flush=True)
    """
)


def test_help_and_validate_do_not_import_tensorflow(spec_file: Any, tmp_path: Path) -> None:
    path = spec_file(tiny_spec("binary"))
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    proc = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    results = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert results == ["RESULT --help code=0 heavy=[]", "RESULT validate code=0 heavy=[]"], proc.stdout
    assert "Commands" in proc.stdout and "train" in proc.stdout
    # validate shows the layer table it would build
    assert "valid spec 'tiny_binary'" in proc.stdout
    assert "(None, 8)" in proc.stdout and "(None, 1)" in proc.stdout
    assert "65" in proc.stdout  # 6*8+8 + 8*1+1 parameters


def test_validate_prints_layer_table() -> None:
    result = CliRunner().invoke(app, ["validate", str(REPO / "configs" / "quickstart.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid spec 'quickstart' (mode split)" in result.stdout
    assert "569 rows, task binary" in result.stdout
    for shape, params in (("(None, 16)", "496"), ("(None, 8)", "136"), ("(None, 1)", "9")):
        assert shape in result.stdout and params in result.stdout
    assert "641" in result.stdout


NAMED_CONFIGS = {"sonar", "pima", "mammography", "housing", "wine-quality-red"}


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate_with_their_data(config: Path) -> None:
    """Every config loads its data and its output layer fits the target (no TensorFlow needed)."""
    raw = yaml.safe_load(config.read_text())
    if raw["data"]["source"] in NAMED_CONFIGS and not HAVE_SHARED_DATA:
        pytest.skip("offline dataset copies not available")
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert f"valid spec '{raw['name']}'" in result.stdout
    if not raw["data"]["source"].startswith("keras:"):
        assert "total" in result.stdout, "the layer table is shown"


def test_validate_no_data(spec_file: Any) -> None:
    raw = tiny_spec("binary")
    raw["data"] = {"source": "does/not/exist.csv"}
    result = invoke(["validate", spec_file(raw), "--no-data"])
    assert "valid spec" in result.stdout and "rows" not in result.stdout


def test_schema_prints_json(tmp_path: Path) -> None:
    result = invoke(["schema"])
    schema = json.loads(result.stdout)
    assert {"data", "model", "compile", "training", "evaluation"} <= set(schema["properties"])
    out = tmp_path / "schema.json"
    invoke(["schema", "--out", out])
    assert json.loads(out.read_text()) == schema


def test_datasets_lists_named_sets() -> None:
    result = CliRunner().invoke(app, ["datasets"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("sonar", "pima", "mammography", "housing", "iris"):
        assert name in result.stdout, name
    assert "DLRUN_DATA_DIR=" in result.stdout


def test_version() -> None:
    from dlrun import __version__

    assert f"dlrun {__version__}" in invoke(["--version"]).stdout


def test_stacked_nan_loss_fails_the_run_clearly(
    spec_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec(
        "regression",
        mode="kfold",
        epochs=3,
        evaluation={"folds": 2},
        compile={"optimizer": {"SGD": {"learning_rate": 1e12}}},
        runtime={"engine": "stacked"},
    )
    out = tmp_path / "run"
    code, _, err = run_main(["cv", spec_file(raw), "--out", out], capsys)
    assert code == 1
    assert "loss became NaN" in err and "learning_rate" in err
    assert json.loads((out / "state.json").read_text())["status"] == "failed"
