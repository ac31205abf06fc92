"""The calibration grid runs dlrun's own engine, folds and statistics end to end (its --quick form)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from conftest import load_script

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    return load_script(BENCHMARKS / f"{name}.py")  # type: ignore[no-any-return]


def test_default_grid_is_the_issues() -> None:
    grid = _load("calibration_grid")
    rows = grid.default_rows()
    at_200 = {(r.learner, r.process, r.design) for r in rows if r.n == 200 and r.design != "30x10"}
    assert len(at_200) == 4 * 3 * 4  # every learner on every process and design at n = 200 (30x10: two)
    assert {r.learner for r in rows if r.n != 200} == {"small_adam", "wide_sgd"}
    assert {r.learner for r in rows if r.design == "30x10"} == {"small_adam", "wide_sgd"}
    spec = grid.spec_for("conv1d", "noise30", "5x10", 1)
    assert spec.evaluation.folds == 10 and spec.evaluation.repeats == 5 and spec.evaluation.stratify is not False


def test_quick_run_scores_every_metric(tmp_path: Path) -> None:
    grid = _load("calibration_grid")
    out = tmp_path / "r.json"
    section = grid.main(["--quick", "--out", str(out)])
    rows = section["rows"]
    assert [r["metric"] for r in rows] == ["accuracy", "roc_auc"]
    for r in rows:
        assert r["datasets"] == 3 and 0.0 <= r["coverage"] <= 1.0 and r["cov_low"] <= r["coverage"] <= r["cov_high"]
        assert 0.0 < r["truth"] < 1.0 and r["mean_width"] > 0 and r["n_train"] == 48.0
        assert r["studied"]  # 5-fold is a design the first study covers
    assert json.loads(out.read_text())["grid"]["rows"] == rows
