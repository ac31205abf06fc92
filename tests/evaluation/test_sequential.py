"""Stopping rules that look after every chunk of repeats: the fixed threshold and the study behind it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_script

from dlrun.evaluation import stats
from dlrun.evaluation.stats import sequential

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    return load_script(BENCHMARKS / f"{name}.py")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("start", "most", "chunk", "n_looks"), [(1, 10, 3, 4), (3, 10, 3, 4), (10, 10, 3, 1), (3, 30, 3, 10), (1, 2, 3, 2)]
)
def test_looks_and_threshold(start: int, most: int, chunk: int, n_looks: int) -> None:
    assert sequential.looks(start, most, chunk) == n_looks
    assert sequential.decision_threshold(start, most, chunk) == pytest.approx(1 - 0.05 / n_looks)


def test_decided_uses_the_threshold() -> None:
    b = {"p_a_better": 0.97, "p_equal": 0.02, "p_b_better": 0.01}
    assert sequential.decided(b, 0.95) == "a_better"
    assert sequential.decided(b, 0.9875) is None


def test_halfwidth_floor_of_a_headline() -> None:
    rng = np.random.default_rng(0)
    x = 0.7 + rng.normal(0, 0.05, 30)
    h = stats.nadeau_bengio(x, 180, 20, metric="accuracy", repeats=np.repeat(np.arange(3), 10))
    floor = sequential.halfwidth_floor(h)
    assert floor is not None and 0 < floor < max(h["mean"] - h["ci_low"], h["ci_high"] - h["mean"])
    assert sequential.halfwidth_floor({"mean": 0.7, "se_floor": None}) is None


def test_benchmark_quick_runs_every_rule(tmp_path: Path) -> None:
    bench = _load("sequential")
    section = bench.main(["--quick", "--datasets", "40", "--out", str(tmp_path / "r.json")])
    rows = section["rows"]
    decided = [r for r in rows if r["rule"] == "until_decided"]
    assert len(decided) == 5 * 3 and len([r for r in rows if r["rule"] == "repeats_auto"]) == 4 * 4
    assert {r["threshold"] for r in decided} == {0.95, 0.9875}
    assert all(0.0 <= r["rate"] <= 1.0 and r["datasets"] == 40 for r in rows)
    for r in decided:
        assert r["rate"] + r["right"] + r["undecided"] == pytest.approx(1.0)
