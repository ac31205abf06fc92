"""Tests of a run's summary warnings: a model that did not learn is reported, a healthy one is not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_main, tiny_spec

from dlrun.runs.summarize import learning_check, summary_markdown

BLOW_UP = "the learning rate (1000000.0) is too high; lower compile.optimizer.SGD.learning_rate"


def _layers(activation: str) -> dict[str, Any]:
    out = {"Dense": {"units": 1, "activation": "sigmoid"}}
    return {"layers": [{"Dense": {"units": 8, "activation": activation}}, out]}


def _outputs(out: Path) -> tuple[dict[str, Any], str, str]:
    return (
        json.loads((out / "summary.json").read_text()),
        (out / "summary.md").read_text(),
        (out / "report.html").read_text(),
    )


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("momentum", [None, 0.9], ids=["plain", "momentum"])
def test_sgd_blowing_up_in_epoch_one_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_file: Any, activation: str, momentum: float | None
) -> None:
    sgd: dict[str, Any] = {"learning_rate": 1.0e6} | ({"momentum": momentum} if momentum else {})
    spec = spec_file(tiny_spec("binary", epochs=2, model=_layers(activation), compile={"optimizer": {"SGD": sgd}}))
    code, out, err = run_main(["train", spec, "--out", tmp_path / "run"], capsys)
    assert code == 0  # a finite loss: the run finishes, with the warning
    assert "warning: the model did not learn: final training loss" in err and BLOW_UP in err
    summary, md, html = _outputs(tmp_path / "run")
    assert summary["learning"]["not_learned"] == 1 and summary["learning"]["models"][0]["final_loss"] > 1.0
    assert any(BLOW_UP in w for w in summary["warnings"])
    assert "WARNING: the model did not learn" in summary["headline"]["text"] in out
    assert "## Models that did not learn" in md and BLOW_UP in md
    assert "WARNING: the model did not learn" in html


def test_cv_names_each_fold_that_did_not_learn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_file: Any
) -> None:
    raw = tiny_spec(
        "binary",
        mode="kfold",
        epochs=2,
        model=_layers("relu"),
        compile={"optimizer": {"SGD": {"learning_rate": 1.0e6}}},
        evaluation={"mode": "kfold", "folds": 3},
    )
    code, _, err = run_main(["cv", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 0
    assert "warning: 3 of 3 models did not learn (repeat 0 fold 0, repeat 0 fold 1, repeat 0 fold 2)" in err
    summary, md, _ = _outputs(tmp_path / "run")
    assert [(m["repeat"], m["fold"]) for m in summary["learning"]["models"]] == [(0, 0), (0, 1), (0, 2)]
    assert "(WARNING: 3 of 3 models did not learn; see warnings)" in summary["headline"]["text"]
    assert "| 0 | 2 |" in md


def test_a_regression_model_that_stays_at_the_mean_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_file: Any
) -> None:
    raw = tiny_spec("regression", epochs=2, compile={"optimizer": {"SGD": {"learning_rate": 1.0e-9}}})
    code, _, err = run_main(["train", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 0
    assert "warning: the model did not learn" in err and "held-out mae" in err
    assert "stayed at the no-skill predictor" in err and "compile.optimizer.SGD.learning_rate" in err


def test_a_diverged_regression_still_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_file: Any) -> None:
    raw = tiny_spec("regression", epochs=2, compile={"optimizer": {"SGD": {"learning_rate": 1.0e6}}})
    code, _, err = run_main(["train", spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 1 and "NaN" in err


@pytest.mark.parametrize(
    ("task", "command", "mode"),
    [("binary", "train", "split"), ("regression", "train", "split"), ("multiclass", "cv", "kfold")],
)
def test_a_healthy_run_has_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_file: Any, task: str, command: str, mode: str
) -> None:
    raw = tiny_spec(task, mode=mode, epochs=10, compile={"optimizer": {"Adam": {"learning_rate": 0.01}}})
    if mode == "kfold":
        raw["evaluation"] = {"mode": "kfold", "folds": 3}
    code, _, err = run_main([command, spec_file(raw), "--out", tmp_path / "run"], capsys)
    assert code == 0 and "warning" not in err
    summary, md, _ = _outputs(tmp_path / "run")
    assert "learning" not in summary and not summary.get("warnings") and "Warnings" not in md


def test_learning_check_reads_constant_predictions_and_fold_scores(tmp_path: Path) -> None:
    from dlrun.protocol.jobs import prepare
    from dlrun.spec.schema import validate

    prep = prepare(validate(tiny_spec("binary", mode="kfold", evaluation={"mode": "kfold", "folds": 3})))
    history = pd.DataFrame({"repeat": 0, "fold": [0, 1, 2], "epoch": 1, "loss": [0.2, 0.2, 0.2]})
    rows = [pd.DataFrame({"repeat": 0, "fold": f, "proba_0": [0.3, 0.3 if f == 1 else 0.8]}) for f in range(3)]
    scores = pd.DataFrame({"repeat": 0, "fold": [0, 1, 2], "accuracy": [0.9, 0.5, 0.9], "baseline_accuracy": 0.5})
    block = learning_check(prep, history, scores, pd.concat(rows))
    assert block is not None and block["not_learned"] == 1
    model = block["models"][0]
    assert (model["fold"], model["constant_predictions"], model["score"], model["baseline"]) == (1, True, 0.5, 0.5)
    assert learning_check(prep, history.assign(loss=0.8)) is not None  # above ln 2: the loss alone tells
    assert learning_check(prep, history) is None


def test_summary_markdown_lists_the_warnings() -> None:
    summary = {
        "name": "x",
        "mode": "split",
        "command": "train",
        "metrics": {"accuracy": 0.5},
        "train_metrics": {"accuracy": 0.5},
        "baseline": {"model": "prior", "metrics": {"accuracy": 0.5}},
        "warnings": ["something to see"],
    }
    assert "## Warnings\n\n- something to see" in summary_markdown(summary)


@pytest.mark.parametrize(("class_weight", "flagged"), [(None, True), ("balanced", False)])
def test_the_no_skill_loss_follows_the_class_weights(class_weight: str | None, flagged: bool) -> None:
    from dlrun.protocol.jobs import prepare
    from dlrun.spec.schema import validate

    raw = tiny_spec("binary", training={"class_weight": class_weight})
    raw["data"]["params"]["weights"] = [0.9, 0.1]
    prep = prepare(validate(raw))
    # 0.4 is above the entropy of the 9:1 priors (about 0.33) but well below ln 2, the no-skill loss
    # of the balanced weighting Keras trains with
    history = pd.DataFrame({"repeat": 0, "fold": 0, "epoch": [1], "loss": [0.4]})
    assert (learning_check(prep, history) is not None) is flagged
