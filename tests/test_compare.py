"""Compare fake run directories written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlrun import compare as cmp
from dlrun import stats
from dlrun.errors import InputError

N_ROWS = 50
K, R = 5, 2


def _folds(seed: int) -> pd.DataFrame:
    """R repeats of K-fold over N_ROWS rows; the seed fixes the permutation."""
    rows = []
    for r in range(R):
        perm = np.random.default_rng(seed * 100 + r).permutation(N_ROWS)
        for f, test in enumerate(np.array_split(perm, K)):
            rows.append(
                {
                    "repeat": r,
                    "fold": f,
                    "seed": seed,
                    "n_train": N_ROWS - len(test),
                    "n_test": len(test),
                    "test_index": " ".join(map(str, sorted(test))),
                }
            )
    return pd.DataFrame(rows)


def _write_run(root: Path, name: str, acc: list[float], *, split_seed: int, mode: str = "repeated_kfold") -> Path:
    root.mkdir(parents=True)
    scores = pd.DataFrame(
        {"repeat": np.repeat(range(R), K), "fold": np.tile(range(K), R), "accuracy": acc, "loss": np.ones(R * K)}
    )
    scores.to_csv(root / "scores.csv", index=False)
    _folds(split_seed).to_csv(root / "folds.csv", index=False)
    summ = {
        m: stats.summarize_metric(scores, m, repeats=R, n_train=40, n_test=10, confidence=0.95, mode=mode)
        for m in ("accuracy", "loss")
    }
    summary: dict[str, Any] = {
        "name": name,
        "mode": mode,
        "task": "classification",
        "confidence": 0.95,
        "folds": K,
        "repeats": R,
        "n_train": 40.0,
        "n_test": 10.0,
        "main_metric": "accuracy",
        "metrics": summ,
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


BASE = [0.80, 0.82, 0.84, 0.86, 0.88, 0.81, 0.83, 0.85, 0.79, 0.87]
DROP = [0.81, 0.84, 0.84, 0.88, 0.89, 0.83, 0.83, 0.87, 0.80, 0.88]


def test_identical_splits_use_corrected_paired_test(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "dropout" / "t1", "dropout", DROP, split_seed=1))
    b = cmp.load_run(_write_run(tmp_path / "baseline" / "t1", "baseline", BASE, split_seed=1))
    ok, why = cmp.same_splits(a, b)
    assert ok and "identical" in why
    c = cmp.compare([a, b])
    assert c.metric == "accuracy" and c.paired
    assert c.test is not None and c.test["test"] == "nadeau_bengio_paired"
    d = np.array(DROP) - np.array(BASE)
    se = np.sqrt((1 / 10 + 10 / 40) * np.var(d, ddof=1))
    assert c.test["p"] == pytest.approx(2 * sps.t.sf(abs(d.mean() / se), 9))
    assert c.verdict.startswith("dropout − baseline = +")
    assert "Nadeau–Bengio corrected paired t-test over 10 folds on identical splits" in c.verdict
    assert c.verdict.endswith("significant at α = 0.05.")
    assert list(c.table.columns) == [
        "run",
        "name",
        "mode",
        "metric",
        "n",
        "mean",
        "std",
        "se",
        "ci_low",
        "ci_high",
        "estimate",
        "path",
    ]
    assert c.table["estimate"].tolist() == ["corrected", "corrected"]


def test_different_splits_fall_back_to_welch(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "a", "a", DROP, split_seed=1))
    b = cmp.load_run(_write_run(tmp_path / "b", "b", BASE, split_seed=2))
    ok, why = cmp.same_splits(a, b)
    assert not ok and why == "different test rows in repeat 0 fold 0"
    c = cmp.compare([a, b], metric="accuracy")
    assert not c.paired and c.test is not None and c.test["test"] == "welch"
    assert c.test["warning"].startswith("runs are not on identical splits")
    assert c.test["p"] == pytest.approx(sps.ttest_ind(DROP, BASE, equal_var=False).pvalue)
    assert "Welch" in c.verdict


def test_same_splits_reports_missing_folds_and_counts(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "a", "a", DROP, split_seed=1))
    b = cmp.load_run(_write_run(tmp_path / "b", "b", BASE, split_seed=1))
    b.folds = b.folds.query("repeat == 0") if b.folds is not None else None
    assert cmp.same_splits(a, b) == (False, "different number of repeats (2 in 'a' vs 1 in 'b')")
    (tmp_path / "b" / "folds.csv").unlink()
    ok, why = cmp.same_splits(a, cmp.load_run(tmp_path / "b"))
    assert not ok and "has no folds.csv" in why


def test_glob_and_folder_expansion(tmp_path: Path) -> None:
    r1 = _write_run(tmp_path / "sonar_a" / "2024-01-01", "sonar_a", BASE, split_seed=1)
    r2 = _write_run(tmp_path / "sonar_a" / "2024-01-02", "sonar_a", BASE, split_seed=1)
    r3 = _write_run(tmp_path / "sonar_b" / "2024-01-01", "sonar_b", DROP, split_seed=1)
    assert cmp.expand_run_dirs([str(tmp_path / "sonar_*" / "*")]) == [r1, r2, r3]
    assert cmp.expand_run_dirs([str(tmp_path / "sonar_a")]) == [r1, r2]  # a run-name folder
    assert cmp.expand_run_dirs([str(tmp_path)]) == [r1, r2, r3]  # folder of folders
    assert cmp.expand_run_dirs([str(r3), str(tmp_path / "sonar_b")]) == [r3]  # no duplicates
    with pytest.raises(InputError, match="nothing_here"):
        cmp.expand_run_dirs([str(tmp_path / "nothing_here*")])


def test_missing_metric_names_available(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "a", "a", DROP, split_seed=1))
    with pytest.raises(InputError, match=r"metric must be one of the metrics of run 'a' \(accuracy, loss\); got 'f1'"):
        cmp.compare([a], metric="f1")


def test_single_train_run_shows_without_test(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "cv", "cv", DROP, split_seed=1))
    d = tmp_path / "single"
    d.mkdir()
    (d / "summary.json").write_text(
        json.dumps({"name": "single", "mode": "split", "main_metric": "accuracy", "metrics": {"accuracy": 0.83}})
    )
    c = cmp.compare([a, cmp.load_run(d)])
    row = c.table.iloc[1]
    assert row["n"] == 1 and row["mean"] == pytest.approx(0.83) and row["estimate"] == "single"
    assert c.test is None and not c.paired and c.verdict.startswith("No test")


def test_more_than_two_runs_pairwise_vs_first(tmp_path: Path) -> None:
    runs = [cmp.load_run(_write_run(tmp_path / n, n, BASE if n == "a" else DROP, split_seed=1)) for n in "abc"]
    c = cmp.compare(runs)
    assert len(c.table) == 3 and c.test is None
    assert [(p["a"], p["b"]) for p in c.pairwise] == [("a", "b"), ("a", "c")]
    assert all(p["paired"] for p in c.pairwise)
