"""``dlrun export mlflow`` into a real local MLflow store (SQLite), read back with MLflow's own client."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_main
from export_folders import folders_fixture  # noqa: F401 (the `folders` fixture)

from dlrun.cli import output
from dlrun.cli.output import track
from dlrun.export.mlflow_export import log_finished_run, tracking_settings

pytestmark = [pytest.mark.xdist_group("export"), pytest.mark.slow]  # shares the folders of export_folders.py


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow puts a SQLite store's artifacts in ./mlruns: a temporary folder, not the checkout."""
    monkeypatch.chdir(tmp_path)


def test_export_reads_back_and_a_second_export_adds_nothing(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dirs = [folders[k] for k in ("train", "cv", "sweep", "search")]
    code, out, err = run_main(["export", "mlflow", *dirs, "--tracking-uri", uri, "--experiment", "tiny"], capsys)
    assert code == 0, err
    # train, cv, a sweep parent with 2 points, a search parent with 2 trials
    assert "8 MLflow run(s) added, 0 already exported" in out
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["tiny"])
    assert len(df) == 8
    assert df["tags.dlrun.fingerprint"].nunique() == 8
    parents = df[df["tags.dlrun.kind"].notna()]
    assert sorted(parents["tags.dlrun.kind"]) == ["search", "sweep"]
    children = df[df["tags.mlflow.parentRunId"].notna()]
    assert len(children) == 4 and set(children["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    cv = df[(df["tags.dlrun.command"] == "cv") & df["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert cv["metrics.accuracy_ci_low"] <= cv["metrics.accuracy"] <= cv["metrics.accuracy_ci_high"]
    assert cv["params.training.epochs"] == "2"
    client = mlflow.tracking.MlflowClient(uri)
    history = client.get_metric_history(cv["run_id"], "epoch_loss")
    assert sorted(m.step for m in history) == [1, 2]
    names = {a.path for a in client.list_artifacts(cv["run_id"])}
    assert {"report.html", "summary.json", "config.yaml", "plots"} <= names

    code, out, err = run_main(["export", "mlflow", *dirs, "--tracking-uri", uri, "--experiment", "tiny"], capsys)
    assert code == 0, err
    assert "0 MLflow run(s) added, 8 already exported" in out
    assert len(mlflow.search_runs(experiment_names=["tiny"])) == 8


def test_without_mlflow_the_command_says_how_to_install(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    code, _, err = run_main(["export", "mlflow", str(folders["cv"])], capsys)
    assert code == 2
    assert "pip install 'dlrun[mlflow]'" in err


def _tracked_copy(src: Path, dst: Path, tracking: dict[str, Any] | None) -> Path:
    """A copy of a run folder whose resolved spec has (or lacks) a ``tracking.mlflow`` section."""
    shutil.copytree(src, dst)
    config = yaml.safe_load((dst / "config.yaml").read_text())
    if tracking is not None:
        config["tracking"] = {"mlflow": tracking}
    (dst / "config.yaml").write_text(yaml.safe_dump(config))
    return dst


def test_spec_tracking_logs_a_finished_run(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'tracked.db'}"
    run = _tracked_copy(folders["cv"], tmp_path / "run", {"tracking_uri": uri, "experiment": "tracked"})
    assert tracking_settings(run) == {"tracking_uri": uri, "experiment": "tracked"}
    track(run)  # what the CLI does after a run finishes
    assert "mlflow: 1 MLflow run(s) added" in capsys.readouterr().out
    mlflow.set_tracking_uri(uri)
    assert len(mlflow.search_runs(experiment_names=["tracked"])) == 1


def test_no_tracking_section_logs_nothing(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _tracked_copy(folders["cv"], tmp_path / "run", None)
    assert tracking_settings(run) is None
    assert log_finished_run(run) is None
    track(run)
    assert capsys.readouterr() == ("", "")


def test_a_tracking_failure_is_a_warning(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(folder: Path) -> None:
        raise ConnectionError("tracking server down")

    monkeypatch.setattr(output, "log_finished_run", unreachable)
    track(folders["cv"])
    assert "warning: MLflow tracking of" in capsys.readouterr().err
