"""What an export reads from run folders (dlrun.export.folders), without any tracking client."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_folders import folders_fixture  # noqa: F401 (the `folders` fixture)

from dlrun.errors import InputError
from dlrun.export.folders import epoch_history, exportables, flatten, summary_metrics

pytestmark = pytest.mark.xdist_group("export")  # one worker builds the folders once


def test_flatten_nested_spec() -> None:
    flat = flatten({"compile": {"optimizer": {"SGD": {"learning_rate": 0.1}}}, "metrics": ["a", "b"], "x": None})
    assert flat == {"compile.optimizer.SGD.learning_rate": "0.1", "metrics": '["a", "b"]', "x": "null"}


def test_summary_metrics_of_a_cv_and_a_train_summary() -> None:
    cv = {
        "metrics": {"accuracy": {"headline": "corrected", "corrected": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}}},
        "baseline": {"metrics": {"accuracy": {"headline": "corrected", "corrected": {"mean": 0.5}}}},
    }
    got = summary_metrics(cv)
    assert got["accuracy"] == 0.8 and got["accuracy_ci_low"] == 0.7 and got["accuracy_ci_high"] == 0.9
    assert got["baseline_accuracy"] == 0.5
    train = {"metrics": {"mae": 1.5, "r2": float("nan")}, "train_metrics": {"mae": 1.0}, "baseline": {}}
    assert summary_metrics(train) == {"mae": 1.5, "train_mae": 1.0}  # NaN left out


@pytest.mark.slow
def test_exportables_of_each_kind(folders: dict[str, Path]) -> None:
    runs, groups, skipped = exportables([folders[k] for k in ("train", "cv", "sweep", "search")])
    assert not skipped
    assert sorted(r.tags["dlrun.command"] for r in runs) == ["cv", "train"]
    assert sorted(g.kind for g in groups) == ["search", "sweep"]
    for g in groups:
        assert len(g.children) == 2
        assert g.params["best_run"] in {c.name for c in g.children}
    cv = next(r for r in runs if r.tags["dlrun.command"] == "cv")
    assert {"accuracy", "accuracy_ci_low", "accuracy_ci_high"} <= set(cv.metrics)
    assert cv.params["training.epochs"] == "2"
    assert {p.name for p in cv.artifacts} >= {"report.html", "summary.json", "config.yaml"}
    assert any(p.parent.name == "plots" for p in cv.artifacts)
    assert [step for step, _ in cv.history["loss"]] == [1, 2]
    # the same folders read again: the same identities (what makes a second export add nothing)
    again, again_groups, _ = exportables([folders[k] for k in ("train", "cv", "sweep", "search")])
    assert [r.identity for r in again] == [r.identity for r in runs]
    assert [g.identity for g in again_groups] == [g.identity for g in groups]


@pytest.mark.slow
def test_epoch_history_is_the_mean_over_models(folders: dict[str, Path]) -> None:
    import pandas as pd

    hist = pd.read_csv(folders["cv"] / "history.csv")
    got = dict(epoch_history(folders["cv"])["loss"])
    assert got[2] == pytest.approx(hist[hist["epoch"] == 2]["loss"].mean())


def test_a_folder_without_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no run folder"):
        exportables([tmp_path])
