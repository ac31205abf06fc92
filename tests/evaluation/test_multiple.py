"""Many-run comparisons: Holm over every pair, and the simulation that chose it."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_script

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.evaluation.metrics import HIGHER_IS_BETTER, METRIC_SCALES, METRICS
from dlrun.evaluation.scoring import HIGHER_IS_BETTER as SCORING_TABLE

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    return load_script(BENCHMARKS / f"{name}.py")  # type: ignore[no-any-return]


def test_one_metric_table() -> None:
    assert SCORING_TABLE is HIGHER_IS_BETTER and stats.METRIC_SCALES is METRIC_SCALES
    assert set(HIGHER_IS_BETTER) == set(METRIC_SCALES) == set(METRICS)
    assert not HIGHER_IS_BETTER["mae"] and HIGHER_IS_BETTER["r2"] and METRIC_SCALES["roc_auc"] == "logit"


def test_holm_matches_the_step_down_rule() -> None:
    p = [0.01, 0.04, None, 0.03, 0.2]
    # sorted tested p: 0.01, 0.03, 0.04, 0.2 -> 4·0.01, 3·0.03, 2·0.04 (raised to 0.09), 0.2
    assert stats.holm(p) == pytest.approx([0.04, 0.09, None, 0.09, 0.2])
    assert stats.holm([]) == []


def _scores(rng: np.random.Generator, means: list[float], j: int = 20) -> np.ndarray:
    shared = rng.normal(0.0, 0.05, j)  # the fold's difficulty, common to every run
    return np.array([m + shared + rng.normal(0.0, 0.01, j) for m in means])


def test_compare_with_best_adjusts_over_every_pair() -> None:
    rng = np.random.default_rng(0)
    x = _scores(rng, [0.80, 0.70, 0.795, 0.60])
    t = stats.compare_with_best([10, 11, 12, 13], x, n_train=90, n_test=10, higher_is_better=True)
    assert list(t["label"]) == [10, 12, 11, 13]  # the best first, then by mean
    assert "Shaffer's (1986) logical constraints over all 6 pairwise tests of the 4 runs" in t.attrs["procedure"]
    best = t.iloc[0]
    assert best["diff"] == 0.0 and np.isnan(best["p"]) and best["tied_with_best"]
    rows = t.set_index("label")
    assert rows.loc[12, "tied_with_best"] and not rows.loc[11, "tied_with_best"]
    assert rows.loc[11, "diff"] == pytest.approx(x[1].mean() - x[0].mean())
    assert rows.loc[11, "ci_low"] < rows.loc[11, "diff"] < rows.loc[11, "ci_high"] < 0
    # The adjusted p of a pair is over all six raw p-values, not only the three with the best.
    raw = [stats.corrected_paired_ttest(x[i], x[j], 90, 10)["p"] for i, j in [(0, 1), (0, 2), (0, 3)]]
    assert rows.loc[11, "p_holm"] >= min(1.0, 3 * raw[0])
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    every = [stats.corrected_paired_ttest(x[i], x[j], 90, 10)["p"] for i, j in pairs]
    assert rows.loc[11, "p_holm"] == pytest.approx(stats.shaffer(every, 4)[0])


@pytest.mark.parametrize(
    ("runs", "multipliers"),
    [(2, [1]), (3, [3, 1, 1]), (4, [6, 3, 3, 3, 2, 1]), (5, [10, 6, 6, 6, 6, 4, 4, 3, 2, 1])],
)
def test_shaffer_multipliers_are_the_published_ones(runs: int, multipliers: list[int]) -> None:
    # Shaffer (1986), Table 1: the most pairwise equalities that can hold after i - 1 rejections.
    assert stats.multiple.shaffer_multipliers(runs) == multipliers


def test_shaffer_rejects_at_least_what_holm_rejects() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = list(rng.uniform(0, 0.1, 6))
        assert all(s <= h for s, h in zip(stats.shaffer(p, 4), stats.holm(p), strict=True))  # type: ignore[operator]


def test_compare_with_best_lower_is_better_and_failed_folds() -> None:
    rng = np.random.default_rng(1)
    x = _scores(rng, [0.5, 0.3, 0.45])
    x[2, :19] = np.nan  # one finite fold: no test with this run
    t = stats.compare_with_best(["a", "b", "c"], x, 90, 10, higher_is_better=False)
    assert t.iloc[0]["label"] == "b"
    c = t.set_index("label").loc["c"]
    assert np.isnan(c["p"]) and c["tied_with_best"]
    with pytest.raises(InputError, match="one row per run"):
        stats.compare_with_best(["a"], x, 90, 10)


def test_benchmark_quick_shows_the_old_rule_inflates_and_holm_holds(tmp_path: Path) -> None:
    bench = _load("multiple_comparisons")
    out = tmp_path / "results.json"
    section = bench.main(["--quick", "--reps", "300", "--out", str(out)])
    assert json.loads(out.read_text())["multiple_comparisons"]["replications"] == 300
    rows = {(r["design"], r["c"], r["runs"], r["procedure"]): r for r in section["rows"]}
    assert len(rows) == 2 * 2 * 3 * 4
    ten = ("10-fold", 1.0, 10)
    assert rows[(*ten, "best_vs_rest_holm")]["fwer"] > rows[(*ten, "holm_all_pairs")]["fwer"]
    assert all(r["fwer"] <= 0.09 for k, r in rows.items() if k[3] in ("holm_all_pairs", "shaffer_all_pairs"))
    three = ("5x10", 1.0, 3)
    assert rows[(*three, "shaffer_all_pairs")]["power_all"] >= rows[(*three, "holm_all_pairs")]["power_all"]
    assert rows[(*ten, "mcb")]["fwer"] > 0.2  # MCB's own claim allows ties; "worse than j" does not hold
