"""The Ray executor against the local one: same files, same scores; retries; Ctrl-C; missing Ray.

cv, sweep and batch each have one orchestration; these run it on :class:`RayExecutor` and compare
with :class:`LocalExecutor`. One local Ray instance (2 CPUs) serves the whole module; models are
tiny (100 rows, 2 epochs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray")

from dlrun.errors import InputError, Interrupted, RunError  # noqa: E402
from dlrun.execution import executors  # noqa: E402
from dlrun.execution.executors import LocalExecutor  # noqa: E402
from dlrun.reporting import NullReporter  # noqa: E402
from dlrun.runs import cv as runner  # noqa: E402
from dlrun.runs.batch import run_batch  # noqa: E402
from dlrun.spec.schema import validate  # noqa: E402
from dlrun.store import io as report  # noqa: E402

pytestmark = pytest.mark.ray

TIMING = {"seconds", "duration_s", "train_s", "path"}


def raw_spec(mode: str = "kfold", **runtime: Any) -> dict[str, Any]:
    return {
        "name": "ray_tiny",
        "seed": 5,
        "data": {
            "source": "make_classification",
            "params": {"n_samples": 100, "n_features": 5, "n_informative": 3, "n_redundant": 0},
            "task": "binary",
        },
        "model": {
            "layers": [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}]
        },
        "training": {"epochs": 2, "batch_size": 16},
        "evaluation": {"mode": mode, "folds": 3},
        "runtime": {"engine": "sequential", **runtime},
    }


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in df.columns if c in TIMING])


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    executors.init_ray(None, num_cpus_local=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_cv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local cv run of the 3-fold spec, to compare Ray runs with."""
    path = tmp_path_factory.mktemp("local_cv") / "run"
    runner.run_cv(validate(raw_spec()), path)
    return path


def test_chunked_cv_matches_local(tmp_path: Path, local_cv: Path) -> None:
    spec = validate(raw_spec(executor="ray", max_models_per_chunk=2))
    remote = runner.run_cv(spec, tmp_path / "ray")  # runtime.executor: ray
    assert remote.engine == "sequential"
    assert files(tmp_path / "ray") == files(local_cv)
    for name in ("scores.csv", "folds.csv", "history.csv", "predictions.csv"):
        pd.testing.assert_frame_equal(table(tmp_path / "ray" / name), table(local_cv / name))
    local_summary = json.loads((local_cv / "summary.json").read_text())
    assert json.loads((tmp_path / "ray" / "summary.json").read_text()) == {
        **local_summary,
        "seconds_per_model": remote.summary["seconds_per_model"],
    }
    state = json.loads((tmp_path / "ray" / "state.json").read_text())
    assert state["status"] == "finished" and state["finished_models"] == 3 and state["executor"] == "ray"


def test_cli_sweep_with_ray_matches_local_sweep(tmp_path: Path, spec_path: Path) -> None:
    """`dlrun sweep --executor ray` against the same sweep on the local executor."""
    from typer.testing import CliRunner

    from dlrun.cli.app import app
    from dlrun.runs.sweep import SWEEP_CSV, expand, run_sweep

    args = ["sweep", str(spec_path), "--grid", "training.batch_size=16,32", "--set", "evaluation.folds=2"]
    res = CliRunner().invoke(app, [*args, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert res.exit_code == 0, res.output
    remote = pd.read_csv(tmp_path / "ray" / SWEEP_CSV)
    assert list(remote["status"]) == ["finished", "finished"]
    assert remote["accuracy_mean"].notna().all()

    base, points = expand(spec_path, ["evaluation.folds=2"], ["training.batch_size=16,32"])
    run_sweep(base, points, tmp_path / "local", LocalExecutor())
    pd.testing.assert_frame_equal(table(tmp_path / "ray" / SWEEP_CSV), table(tmp_path / "local" / SWEEP_CSV))
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    for p in points:
        for name in ("scores.csv", "history.csv", "predictions.csv"):
            pd.testing.assert_frame_equal(
                table(tmp_path / "ray" / p.folder / name), table(tmp_path / "local" / p.folder / name)
            )


def test_batch_records_a_failed_config_and_runs_the_other(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw_spec(mode="split")))
    bad_raw = raw_spec(mode="split")
    bad_raw["data"] = {"source": str(tmp_path / "missing.csv"), "target": "y"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(bad_raw))
    items = run_batch([good, bad], tmp_path / "batch", [], "ray")
    assert [i.status for i in items] == ["finished", "failed"]
    assert "missing.csv" in items[1].error
    assert (tmp_path / "batch" / "good" / "model.keras").is_file()
    csv = pd.read_csv(tmp_path / "batch" / "batch.csv")
    assert list(csv["status"]) == ["finished", "failed"]


# Killing and cancelling tasks kills workers: these run last, so the tests above reuse warm ones.
@pytest.mark.slow  # kills and restarts Ray workers: each new worker imports Keras again
def test_dead_worker_fails_its_folds_only_and_a_retry_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_cv: Path
) -> None:
    run_dir = tmp_path / "run"
    # no retries: the first task's worker dies, its fold is reported, the others are saved
    monkeypatch.setenv(executors.FAULT_ENV, str(tmp_path / "killed-1"))
    spec = validate(raw_spec(executor="ray", max_models_per_chunk=1, max_retries=0))
    with pytest.raises(RunError, match=r"1 of 3 fold\(s\) failed on Ray \(repeat 0 fold \d\): the Ray worker died"):
        runner.run_cv(spec, run_dir)
    assert (tmp_path / "killed-1").exists()
    assert json.loads((run_dir / "state.json").read_text())["status"] == "failed"
    assert report.count_saved_folds(run_dir) == 2
    # resume with one retry: the remaining fold's worker dies once more, Ray retries it, the run completes
    monkeypatch.setenv(executors.FAULT_ENV, str(tmp_path / "killed-2"))
    out = runner.run_cv(
        spec.model_copy(update={"runtime": spec.runtime.model_copy(update={"max_retries": 1})}), run_dir
    )
    assert (tmp_path / "killed-2").exists(), "the fault hook never fired"
    assert out.summary["n_models"] == 3
    pd.testing.assert_frame_equal(table(run_dir / "scores.csv"), table(local_cv / "scores.csv"))


class _StopAfterFirstFold(NullReporter):
    def model_done(self, key: tuple[int, int], scores: dict[str, float], seconds: float) -> None:
        raise KeyboardInterrupt


@pytest.mark.slow  # kills and restarts Ray workers: each new worker imports Keras again
def test_ctrl_c_cancels_marks_interrupted_and_resume_finishes(tmp_path: Path, local_cv: Path) -> None:
    # two tasks (2 folds + 1 fold): Ctrl-C when the first returns force-cancels the other
    spec = validate(raw_spec(executor="ray", max_models_per_chunk=2))
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted, match=r"resume with: dlrun cv .*--resume"):
        runner.run_cv(spec, run_dir, _StopAfterFirstFold())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "interrupted"
    saved = report.count_saved_folds(run_dir)
    assert 1 <= saved < 3
    again = runner.run_cv(spec, run_dir, executor="ray")
    assert again.summary["n_models"] == 3
    assert json.loads((run_dir / "state.json").read_text())["resumed"] is True
    pd.testing.assert_frame_equal(table(run_dir / "scores.csv"), table(local_cv / "scores.csv"))


def test_missing_ray_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(InputError) as exc:
        runner.run_cv(validate(raw_spec(executor="ray")), tmp_path / "run")
    assert str(exc.value) == "the Ray executor needs Ray: pip install 'dlrun[ray]'"
    assert not (tmp_path / "run").exists()


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw_spec()))
    return path
