"""Sweeps, batches and the run index: expansion, validation, failures, listings, clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_main, tiny_spec, write_spec

from dlrun.errors import SpecError
from dlrun.runs.sweep import expand, parse_grid
from dlrun.store import io as report


# ----------------------------------------------------------------------------- expansion
def test_grid_values_are_yaml_and_lists_stay_whole() -> None:
    grid = parse_grid(["training.batch_size=16,32", "x.y=[8,8],[16,16]", "compile.optimizer=adam,sgd"])
    assert grid == {"training.batch_size": [16, 32], "x.y": [[8, 8], [16, 16]], "compile.optimizer": ["adam", "sgd"]}


def test_expand_every_combination_named_by_its_overrides(tmp_path: Path) -> None:
    raw = tiny_spec(compile={"optimizer": {"SGD": {"learning_rate": 0.1}}})
    raw["sweep"] = {"grid": {"training.batch_size": [16, 32, 64]}}
    path = write_spec(tmp_path / "s.yaml", raw)
    _, points = expand(path, [], ["compile.optimizer.SGD.learning_rate=1e-3,0.01"])
    assert len(points) == 6
    assert [p.folder for p in points[:2]] == ["batch_size=16,learning_rate=0.001", "batch_size=16,learning_rate=0.01"]
    assert points[1].spec.compile.optimizer == {"SGD": {"learning_rate": 0.01}}
    assert points[5].spec.training.batch_size == 64
    assert all(p.spec.sweep is None for p in points)


def test_expand_validates_every_point_before_running(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "s.yaml", tiny_spec())
    with pytest.raises(SpecError) as info:
        expand(path, [], ["training.batch_size=16,-1", "training.epoch=3"])
    text = str(info.value)
    assert "batch_size" in text and "greater than 0" in text
    assert "unknown key 'epoch'" in text and "did you mean 'epochs'" in text


def test_sweep_cli_runs_writes_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two grid keys (one with a single value): two points, a plot per key, resumable
    path = write_spec(tmp_path / "s.yaml", tiny_spec(mode="kfold", evaluation={"folds": 2}, epochs=1))
    out = tmp_path / "sweep"
    args = ["sweep", path, "--grid", "training.batch_size=16,32", "--grid", "compile.optimizer=adam", "--out", out]
    code, stdout, err = run_main(args, capsys)
    assert code == 0, err
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 2 and set(table["status"]) == {"finished"}
    for col in ("training.batch_size", "compile.optimizer", "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high"):
        assert col in table.columns
    assert (out / "batch_size=16,optimizer=adam" / report.SCORES).exists()
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert "sweep_batch_size_accuracy.png" in plots and "sweep_optimizer_accuracy.png" in plots
    assert "curves_loss.png" in plots
    # resume skips finished points, and clears what a killed process left under the sweep
    leftover = out / "batch_size=16,optimizer=adam" / "plots" / ".curves.png.ab12.tmp"
    leftover.write_bytes(b"half")
    code, stdout, _ = run_main([*args, "--resume"], capsys)
    assert code == 0 and stdout.count("finished earlier, skipped") == 2
    assert list(out.rglob("*.tmp")) == []
    # a point's own resume line continues the sweep, not a sweep inside the point's folder
    state = json.loads((out / "batch_size=16,optimizer=adam" / report.STATE).read_text())
    assert state["resume_command"].endswith(f"--out {out} --resume")
    # resumed with another spec: refused, naming the field, before the finished points are reused
    code, _, err = run_main([*args, "--resume", "--set", "training.epochs=2"], capsys)
    assert code == 2 and "training.epochs: 1 → 2" in err


def test_sweep_points_differing_in_scalars_train_together_and_score_as_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec(
        mode="kfold", evaluation={"folds": 2}, epochs=3, compile={"optimizer": {"SGD": {"learning_rate": 0.05}}}
    )
    path = write_spec(tmp_path / "s.yaml", raw)
    out = tmp_path / "sweep"
    lr, units = "compile.optimizer.SGD.learning_rate", "model.layers[0].Dense.units"
    args = ["sweep", path, "--grid", f"{lr}=0.01,0.1", "--grid", f"{units}=4,8", "--out", out]
    code, stdout, err = run_main(args, capsys)
    assert code == 0, err
    packing = json.loads((out / "sweep.json").read_text())["packing"]
    # two widths: two engine calls, each training both learning rates with both folds
    assert (packing["programs"], packing["models"], packing["points_together"]) == (2, 8, 4)
    assert "4 of 4 point(s) trained together: 2 engine call(s) for 8 models" in stdout
    table = pd.read_csv(out / "sweep.csv")
    assert set(table["status"]) == {"finished"} and set(table["trained_together"]) == {2}
    # a point trained with another matches the same point run alone by dlrun cv
    alone = tmp_path / "alone"
    code, _, err = run_main(["cv", path, "--set", f"{lr}=0.1", "--set", f"{units}=8", "--out", alone], capsys)
    assert code == 0, err
    together = pd.read_csv(out / "learning_rate=0.1,units=8" / report.HISTORY)
    single = pd.read_csv(alone / report.HISTORY)
    assert together["loss"].to_numpy() == pytest.approx(single["loss"].to_numpy(), rel=1e-5, abs=1e-6)
    assert list(pd.read_csv(out / "learning_rate=0.1,units=8" / report.SCORES)["accuracy"]) == list(
        pd.read_csv(alone / report.SCORES)["accuracy"]
    )


# ----------------------------------------------------------------------------- batches
def test_batch_goes_on_after_a_failure_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_spec(tmp_path / "configs" / "a_good.yaml", tiny_spec(epochs=2))
    bad_raw = tiny_spec()
    bad_raw["data"] = {"source": str(tmp_path / "missing.csv")}
    write_spec(tmp_path / "configs" / "b_bad.yaml", bad_raw)
    also = write_spec(tmp_path / "configs" / "c_good.yaml", tiny_spec("regression", epochs=2))
    out = tmp_path / "batch"
    code, stdout, _ = run_main(["batch", str(tmp_path / "configs" / "*.yaml"), "--out", out], capsys)
    assert code == 1
    table = pd.read_csv(out / "batch.csv")
    assert list(table["status"]) == ["finished", "failed", "finished"]
    assert "missing.csv" in table.loc[1, "error"]
    assert (out / good.stem / report.SUMMARY_JSON).exists() and (out / also.stem / report.SUMMARY_JSON).exists()
    assert "failed" in stdout
    # --fail-fast stops at the failure
    out2 = tmp_path / "batch2"
    code, _, _ = run_main(["batch", str(tmp_path / "configs" / "*.yaml"), "--out", out2, "--fail-fast"], capsys)
    assert code == 1
    assert list(pd.read_csv(out2 / "batch.csv")["status"]) == ["finished", "failed", "pending"]


def test_batch_resume_skips_finished(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_spec(tmp_path / "one.yaml", tiny_spec(epochs=2))
    out = tmp_path / "batch"
    assert run_main(["batch", cfg, "--out", out, "--resume"], capsys)[0] == 0
    code, stdout, _ = run_main(["batch", cfg, "--out", out, "--resume"], capsys)
    assert code == 0 and "finished earlier, skipped" in stdout
    code, _, err = run_main(["batch", cfg, "--out", out], capsys)
    assert code == 2 and "--resume" in err
    # a finished config resumed with another spec: refused, naming the field (its result is not reused)
    code, _, err = run_main(["batch", cfg, "--out", out, "--resume", "--set", "training.epochs=3"], capsys)
    assert code == 2 and "training.epochs: 2 → 3" in err


def test_batch_starts_afresh_a_config_whose_run_failed_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec(mode="kfold", epochs=1, evaluation={"folds": 2})
    del raw["data"]["task"]  # inferred: the output width is checked once the data is read
    raw["model"]["layers"][-1] = {"Dense": {"units": 3, "activation": "sigmoid"}}
    cfg = write_spec(tmp_path / "one.yaml", raw)
    out = tmp_path / "batch"
    assert run_main(["batch", cfg, "--out", out, "--resume"], capsys)[0] == 1
    raw["model"]["layers"][-1]["Dense"]["units"] = 1  # the user fixes the config and resumes the batch
    write_spec(tmp_path / "one.yaml", raw)
    code, stdout, err = run_main(["batch", cfg, "--out", out, "--resume"], capsys)
    assert code == 0, err
    assert "failed before training anything" in stdout and "starting afresh" in stdout
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["finished"]


# ----------------------------------------------------------------------------- index
def _fake_run(root: Path, name: str, status: str, summary: dict[str, Any] | None = None) -> Path:
    path = root / name / "20260101-000000"
    path.mkdir(parents=True)
    state = {
        "name": name,
        "command": "cv",
        "mode": "kfold",
        "status": status,
        "started": "2026-01-01T00:00:00+00:00",
        "ended": "2026-01-01T00:01:05+00:00",
        "total_models": 10,
        "finished_models": 10,
    }
    (path / report.STATE).write_text(json.dumps(state))
    if summary:
        (path / report.SUMMARY_JSON).write_text(json.dumps(summary))
    return path


def test_runs_lists_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = {
        "folds": {"mean": 0.8},
        "corrected": {"mean": 0.86, "ci_low": 0.8, "ci_high": 0.9},
        "headline": "corrected",
    }
    _fake_run(tmp_path, "good", "finished", {"main_metric": "accuracy", "metrics": {"accuracy": block}})
    _fake_run(tmp_path, "broken", "failed")
    csv = tmp_path / "runs.csv"
    code, stdout, _ = run_main(["runs", tmp_path, "--csv", csv], capsys)
    assert code == 0
    df = pd.read_csv(csv)
    assert set(df["status"]) == {"finished", "failed"}
    assert "accuracy 0.8600 [0.8000, 0.9000]" in set(df["result"].fillna(""))
    assert "1m05s" in stdout


def test_clean_removes_failed_and_dead_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keep = _fake_run(tmp_path, "good", "finished")
    failed = _fake_run(tmp_path, "bad", "failed")
    dead = _fake_run(tmp_path, "dead", "running")  # no live process holds its lock
    code, stdout, _ = run_main(["clean", tmp_path, "--yes"], capsys)
    assert code == 0 and "removed 2 run(s)" in stdout
    assert keep.exists() and not failed.exists() and not dead.exists()


def test_a_sweep_stopped_by_a_full_disk_is_marked_failed_then_finished_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrun.runs import sweep as sweep_mod

    path = write_spec(tmp_path / "s.yaml", tiny_spec(mode="kfold", evaluation={"folds": 2}, epochs=1))
    out = tmp_path / "sweep"
    args = ["sweep", path, "--grid", "training.batch_size=16", "--out", out]

    def full_disk(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device", str(out / "plots"))

    monkeypatch.setattr(sweep_mod, "_sweep_plots", full_disk)
    code, _, err = run_main(args, capsys)
    assert code == 2 and "No space left" in err
    assert json.loads((out / "sweep.json").read_text())["status"] == "failed"
    monkeypatch.undo()  # the disk is freed; the kill that followed cut sweep.json
    (out / "sweep.json").write_text('{"name": "tin')
    code, stdout, err = run_main([*args, "--resume"], capsys)
    assert code == 0, err
    assert f"{out / 'sweep.json'} " in stdout + err and (out / "sweep.json.corrupt").exists()
    assert json.loads((out / "sweep.json").read_text())["status"] == "finished"
