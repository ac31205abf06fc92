"""Compare fake run directories written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlrun.errors import InputError
from dlrun.evaluation import compare as cmp
from dlrun.evaluation import stats

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
    assert "p = 0.0301" in c.verdict and "on identical splits: significant at α = 0.05." in c.verdict
    assert "a true difference smaller than" in c.verdict and "would not be detected (80% power" in c.verdict
    assert "Bayesian correlated t-test, ROPE ±0.01: P(dropout better) = " in c.verdict
    assert c.bayes is not None
    assert c.bayes["p_a_better"] + c.bayes["p_equal"] + c.bayes["p_b_better"] == pytest.approx(1)
    assert c.reason.startswith("paired: identical test rows in all 10 folds")
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
        "label",
        "interval",
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
    assert "Welch" in c.verdict and "approximate" in c.verdict and "optimistic" not in c.verdict
    assert c.reason.startswith("unpaired: different test rows") and "split_seed" in c.reason
    assert c.bayes is None


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


def _three(tmp_path: Path) -> list[cmp.Run]:
    rng = np.random.default_rng(3)
    accs = {
        "weak": np.array(BASE) - 0.06 + rng.normal(0, 0.004, 10),
        "best": np.array(BASE) + 0.01,
        "close": np.array(BASE) + 0.008 + rng.normal(0, 0.01, 10),
    }
    return [cmp.load_run(_write_run(tmp_path / n, n, list(a), split_seed=1)) for n, a in accs.items()]


def test_three_runs_against_the_best_with_holm_over_all_pairs(tmp_path: Path) -> None:
    runs = _three(tmp_path)
    c = cmp.compare(runs)
    assert c.best == "best" and c.test is None
    assert [(p["a"], p["b"]) for p in c.pairwise] == [("best", "weak"), ("best", "close")]
    # The family is all three pairs, though only the two with the best are listed.
    everything = cmp.compare(_three(tmp_path / "again"), pairs="all")
    raw = [p["test"]["p"] for p in everything.pairwise]
    assert [p["p_holm"] for p in everything.pairwise] == pytest.approx(stats.shaffer(raw, 3))
    assert [p["p_holm"] for p in c.pairwise] == pytest.approx([p["p_holm"] for p in everything.pairwise[:2]])
    assert c.procedure == "shaffer_all_pairs" and c.n_tests == 3
    assert c.indistinguishable == ["best", "close"]
    assert "Cannot be told apart from it" in c.verdict and "close" in c.verdict
    assert "Holm's step-down adjustment with Shaffer's (1986) logical constraints over all 3 pairwise" in c.verdict
    assert all("adjusted over all 3 pairwise tests, Holm\u2013Shaffer" in p["verdict"] for p in c.pairwise)
    assert list(c.tests["p_holm"]) == [p["p_holm"] for p in c.pairwise] and c.details is c
    f = c.forest.set_index("label")
    assert list(f.index) == ["weak", "close"]
    d = np.mean(np.array(runs[0].scores["accuracy"]) - np.array(runs[1].scores["accuracy"]))
    assert f.loc["weak", "diff"] == pytest.approx(d)  # run − best: negative
    assert f.loc["weak", "ci_low"] < f.loc["weak", "diff"] < f.loc["weak", "ci_high"] < 0
    assert not f.loc["weak", "same_as_best"] and f.loc["close", "same_as_best"]


def test_all_pairs(tmp_path: Path) -> None:
    c = cmp.compare(_three(tmp_path), pairs="all")
    assert len(c.pairwise) == 3 and all(p["p_holm"] is not None for p in c.pairwise)
    with pytest.raises(InputError, match="pairs must be 'best' or 'all'"):
        cmp.compare(_three(tmp_path / "x"), pairs="some")


def test_runs_of_one_config_get_distinct_names(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "sonar" / "2024-01-01", "sonar", DROP, split_seed=1))
    b = cmp.load_run(_write_run(tmp_path / "sonar" / "2024-01-02", "sonar", BASE, split_seed=1))
    c = cmp.compare([a, b])
    assert c.verdict.startswith("2024-01-01 − 2024-01-02 = ")
    assert c.table["label"].tolist() == ["2024-01-01", "2024-01-02"]
    c = cmp.compare([a, b], labels=["dropout", "plain"])
    assert c.verdict.startswith("dropout − plain = ")
    with pytest.raises(InputError, match="--label must be given once per run"):
        cmp.compare([a, b], labels=["x"])
    with pytest.raises(InputError, match="distinct"):
        cmp.compare([a, b], labels=["x", "x"])
    x = cmp.load_run(_write_run(tmp_path / "p" / "t", "s", BASE, split_seed=1))
    y = cmp.load_run(_write_run(tmp_path / "q" / "t", "s", BASE, split_seed=1))
    assert cmp.unique_labels([x, y]) == ["p/t", "q/t"]


def test_rope_flag_and_default(tmp_path: Path) -> None:
    a = cmp.load_run(_write_run(tmp_path / "a", "a", DROP, split_seed=1))
    b = cmp.load_run(_write_run(tmp_path / "b", "b", BASE, split_seed=1))
    assert cmp.compare([a, b]).rope == 0.01
    wide = cmp.compare([a, b], rope=0.05)
    assert wide.bayes is not None and wide.bayes["rope"] == 0.05 and wide.bayes["decided"] == "equal"
    assert cmp.default_rope("mae", 0.5)[0] == pytest.approx(0.005)


def test_constant_difference_on_two_folds_is_not_significant(tmp_path: Path) -> None:
    global K, R
    old = K, R
    K, R = 2, 1
    try:
        a = cmp.load_run(_write_run(tmp_path / "a", "a", [0.8, 0.9], split_seed=1))
        b = cmp.load_run(_write_run(tmp_path / "b", "b", [0.7, 0.8], split_seed=1))
        c = cmp.compare([a, b])
    finally:
        K, R = old
    assert c.test is not None and c.test["p"] is None
    assert "no significance is claimed" in c.verdict and "significant at" not in c.verdict


def test_cli_compare_three_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_main

    runs = _three(tmp_path)
    code, out, err = run_main(
        ["compare", *[r.path for r in runs], "--rope", "0.02", "--plot", tmp_path / "forest.png"], capsys
    )
    assert code == 0, err
    assert "Best on accuracy: best. Cannot be told apart from it" in out
    assert "adjusted over all 3 pairwise tests, Holm\u2013Shaffer" in out
    assert "P(practically equal)" in out and "ROPE: ±0.02 accuracy, as given" in out
    assert "std (folds)" in out and "se (headline)" in out
    assert (tmp_path / "forest.png").exists()


def test_runs_with_more_repeats_are_paired_on_the_shared_ones(tmp_path: Path) -> None:
    global R
    a = cmp.load_run(_write_run(tmp_path / "long", "long", DROP, split_seed=1))  # 2 repeats
    old = R
    R = 1
    try:
        b = cmp.load_run(_write_run(tmp_path / "short", "short", BASE[:5], split_seed=1))
    finally:
        R = old
    assert cmp.shared_repeats(a, b) == [0]
    c = cmp.compare([a, b])
    assert c.paired and c.test is not None and c.test["n"] == 5
    assert c.test["mean_diff"] == pytest.approx(np.mean(np.array(DROP[:5]) - np.array(BASE[:5])))
    assert "the 1 repeat(s) both runs have" in c.reason
    other = cmp.load_run(_write_run(tmp_path / "other", "other", BASE, split_seed=2))
    assert cmp.shared_repeats(a, other) == []
