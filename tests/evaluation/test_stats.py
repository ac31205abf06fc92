"""Statistics against hand computations and scipy on fixed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlrun.errors import InputError
from dlrun.evaluation import stats

# Fixed scores: mean 0.84, sum of squared deviations 0.004, so s² = 0.001 (ddof=1).
X = [0.80, 0.82, 0.84, 0.86, 0.88]
# Paired partner: d = X - B = [0.01, 0.02, 0.01, 0.03, 0.02], mean 0.018, s_d² = 280e-6 / 4 = 70e-6.
B = [0.79, 0.80, 0.83, 0.83, 0.86]


def test_describe_hand_values() -> None:
    r = stats.describe(X)
    assert r["n"] == 5 and r["n_nan"] == 0
    assert r["mean"] == pytest.approx(0.84)
    assert r["std"] == pytest.approx(math.sqrt(0.001))
    assert r["se"] == pytest.approx(math.sqrt(0.001 / 5))
    assert r["df"] == 4
    assert r["min"] == pytest.approx(0.80) and r["max"] == pytest.approx(0.88)
    half = 2.7764451051977987 * math.sqrt(0.0002)  # t_{0.975, 4} from tables
    assert r["ci_low"] == pytest.approx(0.84 - half)
    assert r["ci_high"] == pytest.approx(0.84 + half)
    assert "5 values" in r["method"] and "ddof=1" in r["method"] and "95% Student-t interval with 4 df" in r["method"]


def test_describe_matches_scipy_interval() -> None:
    x = np.array([3.1, 2.7, 3.9, 3.3, 2.8, 3.0, 3.6])
    for conf in (0.9, 0.95, 0.99):
        r = stats.describe(x, confidence=conf)
        lo, hi = sps.t.interval(conf, df=x.size - 1, loc=x.mean(), scale=sps.sem(x))
        assert r["ci_low"] == pytest.approx(lo)
        assert r["ci_high"] == pytest.approx(hi)
        assert r["std"] == pytest.approx(np.std(x, ddof=1))
        assert r["se"] == pytest.approx(sps.sem(x))


def test_describe_single_value_is_null_not_nan() -> None:
    r = stats.describe([0.7])
    assert r["n"] == 1 and r["mean"] == pytest.approx(0.7)
    for key in ("std", "se", "ci_low", "ci_high", "df"):
        assert r[key] is None
    assert "single value" in r["method"]
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN anywhere


def test_describe_drops_and_counts_nan() -> None:
    r = stats.describe([*X, float("nan"), float("nan")])
    assert r["n"] == 5 and r["n_nan"] == 2
    assert r["mean"] == pytest.approx(0.84)
    assert "2 non-finite values" in r["method"]
    allnan = stats.describe([float("nan")])
    assert allnan["n"] == 0 and allnan["mean"] is None
    json.dumps(allnan, allow_nan=False)


def test_describe_zero_variance_gives_zero_width_interval() -> None:
    r = stats.describe([0.5, 0.5, 0.5])
    assert r["std"] == 0.0 and r["ci_low"] == 0.5 and r["ci_high"] == 0.5
    assert "zero width" in r["method"]


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, "x"])
def test_bad_confidence_is_input_error(bad: object) -> None:
    with pytest.raises(InputError, match="confidence must be"):
        stats.describe(X, confidence=bad)  # type: ignore[arg-type]


def test_empty_values_is_input_error() -> None:
    with pytest.raises(InputError, match="values must contain at least one value"):
        stats.describe([])


@pytest.mark.parametrize(("rho_factor", "factor"), [(stats.FOLD_RHO_FACTOR, 0.2 + 0.5 * 0.25), (1.0, 0.45)])
def test_nadeau_bengio_hand_values(rho_factor: float, factor: float) -> None:
    # J = k = 5, n_test/n_train = 20/80: factor 1/5 + c/4 (c = 1/2 calibrated; c = 1 is the published 0.45).
    r = stats.nadeau_bengio(X, n_train=80, n_test=20, rho_factor=rho_factor)
    assert stats.FOLD_RHO_FACTOR == 0.5
    assert r["correction"] == pytest.approx(factor)
    assert r["se"] == pytest.approx(math.sqrt(factor * 0.001))
    assert r["std"] == pytest.approx(math.sqrt(0.001))  # plain sample std of the scores
    half = sps.t.ppf(0.975, 4) * math.sqrt(factor * 0.001)
    assert r["ci_low"] == pytest.approx(0.84 - half)
    assert r["ci_high"] == pytest.approx(0.84 + half)
    assert r["df"] == 4 and r["se_floor"] == pytest.approx(r["se"])  # one partition: nothing to average away
    assert "Nadeau & Bengio (2003)" in r["method"] and f"c = {rho_factor:g}" in r["method"]
    assert r["n_train"] == 80.0 and r["n_test"] == 20.0


def test_nadeau_bengio_accepts_float_sizes_and_is_wider_than_naive() -> None:
    r = stats.nadeau_bengio(X, n_train=83.3, n_test=20.8)
    naive = stats.describe(X)
    assert r["correction"] == pytest.approx(0.2 + 0.5 * 20.8 / 83.3)
    assert r["ci_high"] - r["ci_low"] > naive["ci_high"] - naive["ci_low"]


def test_repeats_remove_only_the_split_to_split_variance() -> None:
    # 2 repeats x 5 folds: repeat 0 = X (mean 0.84), repeat 1 = B (mean 0.822).
    ids = [0] * 5 + [1] * 5
    r = stats.nadeau_bengio(X + B, n_train=80, n_test=20, repeats=ids)
    s_w2 = (np.var(X, ddof=1) * 4 + np.var(B, ddof=1) * 4) / 8  # pooled within-repeat variance
    s_r2 = np.var([np.mean(X), np.mean(B)], ddof=1)  # variance of the per-repeat means
    base = (1 / 5 + 0.5 * 20 / 80) * s_w2
    assert r["se"] == pytest.approx(math.sqrt(base - 0.5 * s_r2))
    assert r["se_floor"] == pytest.approx(math.sqrt(base - s_r2))
    assert r["df"] == 8  # r(k - 1)
    half = sps.t.ppf(0.975, 8) * r["se"]
    lo, hi = r["ci_low"], r["ci_high"]
    assert (lo, hi) == pytest.approx((np.mean(X + B) - half, np.mean(X + B) + half))
    # Far wider than the published rule's 1/J = 1/10, which assumes repeats test new rows.
    published = stats.nadeau_bengio(X + B, n_train=80, n_test=20, rho_factor=1.0)
    assert published["correction"] == pytest.approx(0.1 + 0.25)
    assert r["se"] > math.sqrt(0.1 + 0.125) * published["std"]
    assert "split-to-split" in r["method"] and "re-test the same rows" in r["se_method"]


def test_repeats_with_a_failed_fold_keep_the_split_variance_and_never_go_below_naive() -> None:
    ids = [0] * 5 + [1] * 5
    failed = stats.nadeau_bengio([*X, *B[:4], float("nan")], n_train=80, n_test=20, repeats=ids)
    assert failed["n"] == 9 and failed["df"] == 4 + 3
    assert "not subtracted" in failed["method"]
    # Repeats whose means differ far more than their folds: the naive s²/J is the floor.
    shifted = stats.nadeau_bengio([*X, *(np.array(X) + 0.5)], n_train=80, n_test=20, repeats=ids)
    assert shifted["se"] == pytest.approx(shifted["std"] / math.sqrt(10))
    assert "naive" in shifted["method"]
    with pytest.raises(InputError, match="one repeat id per score"):
        stats.nadeau_bengio(X, n_train=80, n_test=20, repeats=[0, 1])


@pytest.mark.parametrize(("metric", "n_test", "adjusted"), [("r2", 20, True), ("r2", 8, True), ("accuracy", 20, False)])
def test_fold_r2_is_adjusted_for_its_own_mean(metric: str, n_test: int, adjusted: bool) -> None:
    vals = [0.30, 0.45, 0.38, 0.52, 0.41]
    x, note = stats.adjust_fold_scores(vals, metric, n_test)
    r = stats.nadeau_bengio(vals, n_train=80, n_test=n_test, metric=metric)
    m = n_test
    if adjusted:  # 1 − (1 − R²)(m − 1)/m: SS_tot/(m − 1) estimates the variance of y without bias
        assert x == pytest.approx([1 - (1 - v) * (m - 1) / m for v in vals])
        assert r["mean"] == pytest.approx(1 - (1 - np.mean(vals)) * (m - 1) / m)
        assert "m \u2212 1" in note and note in r["method"]
    else:
        assert list(x) == vals and note == "" and r["mean"] == pytest.approx(np.mean(vals))


def test_nadeau_bengio_rejects_bad_sizes_and_handles_one_value() -> None:
    with pytest.raises(InputError, match="n_train must be a positive number"):
        stats.nadeau_bengio(X, n_train=0, n_test=20)
    r = stats.nadeau_bengio([0.8], n_train=80, n_test=20)
    assert r["se"] is None and r["correction"] is None
    json.dumps(r, allow_nan=False)


def _scores() -> pd.DataFrame:
    # 2 repeats x 5 folds; repeat 0 = X, repeat 1 = B.
    return pd.DataFrame({"repeat": [0] * 5 + [1] * 5, "fold": list(range(5)) * 2, "accuracy": X + B})


def test_summarize_metric_repeated_kfold() -> None:
    s = _scores()
    r = stats.summarize_metric(s, "accuracy", repeats=2, n_train=80, n_test=20, confidence=0.95, mode="repeated_kfold")
    assert set(r) == {"folds", "repeats", "corrected", "headline", "headline_text"}
    assert r["headline"] == "corrected"
    # Only the headline's interval is called ci_; the others are named for what they are. 2x5-fold is
    # not a design the calibration study covers, so it is not called a confidence interval.
    assert r["corrected"]["kind"] == "corrected_interval" and "ci_low" in r["corrected"]
    assert "not calibrated at 2\u00d75-fold" in r["corrected"]["label"]
    assert "(95% interval " in r["headline_text"] and "CI" not in r["headline_text"]
    assert r["folds"]["kind"] == "naive_fold_interval" and "ci_low" not in r["folds"]
    assert "ignores the dependence between folds" in r["folds"]["label"]
    assert r["repeats"]["kind"] == "split_precision" and "ci_low" not in r["repeats"]
    assert "precision of the CV estimate" in r["repeats"]["label"]
    assert stats.interval_of(r["repeats"]) == (r["repeats"]["precision_low"], r["repeats"]["precision_high"])
    assert stats.interval_of(r["folds"]) == (r["folds"]["naive_low"], r["folds"]["naive_high"])
    assert "not std/" in r["corrected"]["se_method"]
    assert r["folds"]["n"] == 10
    assert r["repeats"]["n"] == 2
    assert r["repeats"]["mean"] == pytest.approx(np.mean([np.mean(X), np.mean(B)]))
    assert r["corrected"]["df"] == 8 and r["corrected"]["scale"] == "logit"
    assert (
        "interval corrected for correlated folds (not calibrated at this design) over 2×5 folds" in r["headline_text"]
    )
    assert r["headline_text"].startswith("accuracy ")
    json.dumps(r, allow_nan=False)


def test_summarize_metric_kfold_single_repeat() -> None:
    s = _scores().query("repeat == 0")
    r = stats.summarize_metric(s, "accuracy", repeats=1, n_train=80, n_test=20, confidence=0.95, mode="kfold")
    assert r["repeats"] is None and r["headline"] == "corrected"
    assert "over 5 folds" in r["headline_text"]


def test_summarize_metric_repeated_split_has_no_correction() -> None:
    s = pd.DataFrame({"repeat": range(5), "fold": [0] * 5, "accuracy": X})
    r = stats.summarize_metric(s, "accuracy", repeats=5, n_train=80, n_test=20, confidence=0.95, mode="repeated_split")
    assert r["corrected"] is None and r["headline"] == "folds"
    assert "seeds on one fixed split" in r["headline_text"]


def test_summarize_metric_bad_input() -> None:
    with pytest.raises(InputError, match="missing 'f1'"):
        stats.summarize_metric(_scores(), "f1", repeats=2, n_train=8, n_test=2, confidence=0.95, mode="kfold")
    with pytest.raises(InputError, match="mode must be one of"):
        stats.summarize_metric(_scores(), "accuracy", repeats=2, n_train=8, n_test=2, confidence=0.95, mode="x")


def test_corrected_paired_ttest_against_direct_computation() -> None:
    r = stats.corrected_paired_ttest(X, B, n_train=80, n_test=20)
    se = math.sqrt(0.45 * 70e-6)  # (1/5 + 20/80) * s_d²
    t = 0.018 / se
    assert r["mean_diff"] == pytest.approx(0.018)
    assert r["std_diff"] == pytest.approx(math.sqrt(70e-6))
    assert r["se"] == pytest.approx(se)
    assert r["t"] == pytest.approx(t)
    assert r["df"] == 4
    assert r["p"] == pytest.approx(2 * sps.t.sf(t, 4))
    half = sps.t.ppf(0.975, 4) * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.018 - half, 0.018 + half))
    # The correction shrinks the naive paired t (scipy.ttest_rel) by sqrt((1/J) / (1/J + n_test/n_train)).
    naive = sps.ttest_rel(X, B)
    assert r["t"] == pytest.approx(naive.statistic * math.sqrt(0.2 / 0.45))
    assert "Nadeau & Bengio (2003)" in r["method"] and r["note"] is None


def test_corrected_paired_ttest_zero_variance_guard() -> None:
    same = stats.corrected_paired_ttest(X, X, n_train=80, n_test=20)
    assert same["p"] == 1.0 and same["t"] is None and "p set to 1" in same["note"]
    shifted = stats.corrected_paired_ttest([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], n_train=80, n_test=20)
    assert shifted["p"] is None and "no significance is claimed" in shifted["note"]
    json.dumps(same, allow_nan=False)
    json.dumps(shifted, allow_nan=False)


@pytest.mark.parametrize("test", ["corrected", "paired"])
def test_constant_difference_in_floating_point_is_not_significant(test: str) -> None:
    # 0.8 − 0.7 and 0.9 − 0.8 differ by ~1e-16: a "t" of 1e15 for what is a constant.
    a, b = [0.8, 0.9], [0.7, 0.8]
    r = stats.corrected_paired_ttest(a, b, 80, 20) if test == "corrected" else stats.paired_ttest(a, b)
    assert r["p"] is None and r["t"] is None
    assert r["mean_diff"] == pytest.approx(0.1)
    assert "not informative" in r["note"] or test == "paired"


def test_corrected_paired_ttest_bad_input() -> None:
    with pytest.raises(InputError, match="same length"):
        stats.corrected_paired_ttest(X, B[:3], n_train=80, n_test=20)
    with pytest.raises(InputError, match="at least 2"):
        stats.corrected_paired_ttest([0.1, float("nan")], [0.2, 0.3], n_train=80, n_test=20)


def test_paired_ttest_matches_scipy() -> None:
    r = stats.paired_ttest(X, B)
    ref = sps.ttest_rel(X, B)
    assert r["t"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)


def test_welch_against_scipy() -> None:
    a = [0.81, 0.79, 0.85, 0.88, 0.83, 0.80]
    b = [0.75, 0.78, 0.74, 0.80]
    r = stats.welch_ttest(a, b, confidence=0.9)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert r["t"] == pytest.approx(ref.statistic)
    assert r["p"] == pytest.approx(ref.pvalue)
    assert r["df"] == pytest.approx(ref.df)
    ci = ref.confidence_interval(0.9)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert r["mean_diff"] == pytest.approx(np.mean(a) - np.mean(b))
    # Welch–Satterthwaite df by hand.
    va, vb = np.var(a, ddof=1) / 6, np.var(b, ddof=1) / 4
    assert r["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 5 + vb**2 / 3))
    assert r["warning"].startswith("runs are not on identical splits")
    assert r["n_a"] == 6 and r["n_b"] == 4


def test_running_stats() -> None:
    rs = stats.running_stats(X)
    assert list(rs.columns) == ["n", "mean", "std", "se", "ci_low", "ci_high"]
    assert list(rs["n"]) == [1, 2, 3, 4, 5]
    assert rs["mean"].tolist() == pytest.approx([0.80, 0.81, 0.82, 0.83, 0.84])
    assert np.isnan(rs["std"].iloc[0]) and np.isnan(rs["ci_low"].iloc[0])
    last = stats.describe(X)
    assert rs.iloc[-1]["std"] == pytest.approx(last["std"])
    assert rs.iloc[-1]["ci_low"] == pytest.approx(last["ci_low"])
    assert rs.iloc[1]["std"] == pytest.approx(np.std([0.80, 0.82], ddof=1))


def test_format_helpers() -> None:
    assert stats.format_number(-0.0001, 3) == "0.000"
    assert stats.format_number(-0.02, 2, signed=True) == "\u22120.02"
    assert stats.format_p(0.0004) == "p < 0.001"
    assert stats.decimals_for(0.015) == 3


# --------------------------------------------------------------------------- bounded intervals


@pytest.mark.parametrize(
    ("metric", "values", "low", "high"),
    [
        ("accuracy", [1.0, 1.0, 0.9, 1.0, 0.6], 0.0, 1.0),  # iris-like: the plain interval passes 1
        ("roc_auc", [0.99, 1.0, 0.97, 1.0, 0.98, 1.0, 0.96, 1.0, 1.0, 0.99], 0.0, 1.0),
        ("f1", [0.0, 0.1, 0.0, 0.3], 0.0, 1.0),
        ("r2", [0.99, 0.2, 0.98, 0.97], None, 1.0),
        ("mae", [0.01, 0.5, 0.02, 0.01], 0.0, None),
    ],
)
def test_intervals_of_bounded_metrics_stay_in_range(
    metric: str, values: list[float], low: float | None, high: float | None
) -> None:
    r = stats.nadeau_bengio(values, n_train=40, n_test=10, metric=metric)
    plain = stats.nadeau_bengio(values, n_train=40, n_test=10)
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    # the plain interval leaves the range; the bounded one does not
    assert (high is not None and plain["ci_high"] > high) or (low is not None and plain["ci_low"] < low)
    if high is not None:
        assert r["ci_high"] <= high
    if low is not None:
        assert r["ci_low"] >= low
    assert r["scale"] == stats.metric_scale(metric)
    s = pd.DataFrame({"repeat": [0] * len(values), "fold": range(len(values)), metric: values})
    block = stats.summarize_metric(s, metric, repeats=1, n_train=40, n_test=10, confidence=0.95, mode="kfold")
    lo, hi = stats.interval_of(block["folds"])
    assert (high is None or hi <= high) and (low is None or lo >= low)


def test_bounded_interval_is_the_delta_method_on_the_logit_scale() -> None:
    lo, hi, scale = stats.bounded_interval(0.8, 0.02, 9, 0.95, "logit")
    t = sps.t.ppf(0.975, 9)
    g, dg = math.log(0.8 / 0.2), 1 / (0.8 * 0.2)
    assert scale == "logit"
    assert lo == pytest.approx(1 / (1 + math.exp(-(g - t * 0.02 * dg))))
    assert hi == pytest.approx(1 / (1 + math.exp(-(g + t * 0.02 * dg))))
    # Near the middle it is almost the plain interval; identity is the plain one.
    assert (lo, hi) == pytest.approx((0.8 - t * 0.02, 0.8 + t * 0.02), abs=5e-3)
    assert 0.8 - lo > hi - 0.8  # asymmetric: longer away from the bound
    assert stats.bounded_interval(0.8, 0.02, 9, 0.95, "identity")[:2] == pytest.approx((0.8 - t * 0.02, 0.8 + t * 0.02))
    # On the bound itself with no spread: a zero-width interval at the bound.
    assert stats.bounded_interval(1.0, 0.0, 4, 0.95, "logit") == (1.0, 1.0, "identity")


@pytest.mark.parametrize(("folds", "informative"), [(2, False), (3, False), (4, True), (10, True)])
def test_few_degrees_of_freedom_are_called_not_informative(folds: int, informative: bool) -> None:
    vals = [0.7, 0.9, 0.8, 0.75, 0.85, 0.8, 0.7, 0.9, 0.82, 0.78][:folds]
    s = pd.DataFrame({"repeat": 0, "fold": range(folds), "accuracy": vals})
    r = stats.summarize_metric(s, "accuracy", repeats=1, n_train=40, n_test=10, confidence=0.95, mode="kfold")
    assert r["corrected"]["informative"] is informative
    assert ("not informative" in r["headline_text"]) is not informative
    assert 0.0 <= r["corrected"]["ci_low"] and r["corrected"]["ci_high"] <= 1.0


def test_per_repeat_means_do_not_skip_a_failed_fold() -> None:
    s = pd.DataFrame({"repeat": [0] * 5 + [1] * 5 + [2] * 5, "fold": list(range(5)) * 3, "accuracy": X + B + X})
    s.loc[7, "accuracy"] = float("nan")  # repeat 1 lost a fold
    r = stats.summarize_metric(s, "accuracy", repeats=3, n_train=80, n_test=20, confidence=0.95, mode="repeated_kfold")
    assert r["repeats"]["n"] == 2 and r["repeats"]["n_nan"] == 1
    assert r["repeats"]["mean"] == pytest.approx(np.mean(X))  # repeats 0 and 2, not a 4-fold mean of repeat 1
    assert "1 repeat with a failed fold left out" in r["repeats"]["method"]
    json.dumps(r, allow_nan=False)


# --------------------------------------------------------------------------- Bayesian test, Holm, power


def test_bayesian_correlated_ttest_matches_baycomp() -> None:
    baycomp = pytest.importorskip("baycomp")
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.03, 10)
    b = a - 0.01 + rng.normal(0, 0.01, 10)
    r = stats.bayesian_correlated_ttest(a, b, 0.01, n_train=90, n_test=10)
    # baycomp's rho = 1/folds gives rho/(1 − rho) = 1/9 = n_test/n_train; it returns (left, rope, right).
    left, rope, right = baycomp.two_on_single(a, b, rope=0.01, runs=1)
    # baycomp works on y − x, so its "left" is P(first better).
    assert (r["p_a_better"], r["p_equal"], r["p_b_better"]) == pytest.approx((left, rope, right))
    assert r["p_a_better"] + r["p_equal"] + r["p_b_better"] == pytest.approx(1.0)
    assert r["scale"] == pytest.approx(stats.corrected_paired_ttest(a, b, 90, 10)["se"])


def test_bayesian_test_sides_and_decisions() -> None:
    a = np.array([0.80, 0.82, 0.84, 0.86, 0.88, 0.81, 0.83, 0.85, 0.79, 0.87])
    better = stats.bayesian_correlated_ttest(a + 0.05 + np.linspace(0, 0.002, 10), a, 0.01, n_train=90, n_test=10)
    assert better["decided"] == "a_better" and better["p_a_better"] > 0.95
    loss = stats.bayesian_correlated_ttest(
        a + 0.05 + np.linspace(0, 0.002, 10), a, 0.01, n_train=90, n_test=10, higher_is_better=False
    )
    assert loss["decided"] == "b_better"
    equal = stats.bayesian_correlated_ttest(a + np.linspace(-1e-3, 1e-3, 10), a, 0.05, n_train=90, n_test=10)
    assert equal["decided"] == "equal"
    with pytest.raises(InputError, match="rope must be a non-negative number"):
        stats.bayesian_correlated_ttest(a, a, -1.0, n_train=90, n_test=10)


def test_holm_by_hand() -> None:
    # sorted: 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert stats.holm([]) == []


def test_min_detectable_difference() -> None:
    mdd = stats.min_detectable_difference(0.01, 9, 0.05)
    assert mdd == pytest.approx((sps.t.ppf(0.975, 9) + sps.t.ppf(0.8, 9)) * 0.01)
    # At that true difference a noncentral t gives about 80% power.
    power = sps.nct.sf(sps.t.ppf(0.975, 9), 9, mdd / 0.01)
    assert 0.75 < power < 0.85
    assert stats.min_detectable_difference(0.0, 9, 0.05) is None


# --------------------------------------------------------------------------- adaptive repeats


def _fake_summary(repeats: int, std: float, split: float, k: int = 10) -> dict[str, object]:
    """A cv summary with fold spread ``std`` whose repeat means alternate by ``±split``: averaging
    repeats removes only that split-to-split variance, so the interval narrows a little with repeats."""
    vals = 0.8 + std * np.tile(np.linspace(-1.5, 1.5, k), repeats) + np.repeat(split * (-1.0) ** np.arange(repeats), k)
    scores = pd.DataFrame(
        {"repeat": np.repeat(range(repeats), k), "fold": np.tile(range(k), repeats), "accuracy": vals}
    )
    block = stats.summarize_metric(
        scores, "accuracy", repeats=repeats, n_train=180, n_test=20, confidence=0.95, mode="repeated_kfold"
    )
    from dlrun.runs.summarize import headline

    return {
        "name": "fake",
        "command": "cv",
        "mode": "repeated_kfold",
        "main_metric": "accuracy",
        "metrics": {"accuracy": block},
        "headline": headline(block, "accuracy"),
        "repeats": repeats,
        "folds": k,
        "n_models": repeats * k,
        "engine": "stacked",
        "task": "binary",
        "confidence": 0.95,
        "baseline": {"model": "dummy", "metrics": {"accuracy": block}},
    }


@pytest.mark.parametrize(
    ("std", "split", "target", "most", "stopped", "runs"),
    [
        (0.01, 0.0, 0.02, 20, "target", [3]),  # narrow from the start (half-width 0.008)
        (0.05, 0.0, 0.02, 20, "unreachable", [3]),  # no split variance to remove: floor 0.039 > 0.02
        (0.03, 0.0092, 0.016, 20, "target", [3, 6]),  # 0.0167 at 3 repeats (floor 0.0105), 0.0151 at 6
        (0.03, 0.0092, 0.0145, 4, "max_repeats", [3, 4]),  # 0.0153 at 4: the maximum comes first
    ],
)
def test_adaptive_repeats_stop_and_say_why(
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
    std: float,
    split: float,
    target: float,
    most: int,
    stopped: str,
    runs: list[int],
) -> None:
    from pathlib import Path

    from dlrun.runs import cv as runner
    from dlrun.runs.result import RunResult

    calls: list[int] = []

    def fake_run_cv(spec: object, run_dir: Path, *args: object, **kwargs: object) -> RunResult:
        r = spec.evaluation.repeats  # type: ignore[attr-defined]
        assert spec.evaluation.mode == "repeated_kfold"  # type: ignore[attr-defined]
        calls.append(r)
        return RunResult(run_dir, _fake_summary(r, std, split), "stacked")

    monkeypatch.setattr(runner, "run_cv", fake_run_cv)
    monkeypatch.setattr(runner, "extend_repeats", lambda *a, **k: None)
    from dlrun.spec.schema import load_spec

    spec = load_spec(
        "configs/sonar_baseline.yaml",
        [
            "evaluation.repeats=auto",
            f"evaluation.target_halfwidth={target}",
            f"evaluation.max_repeats={most}",
        ],
    )
    out = runner.run_cv_auto(spec, Path(str(tmp_path)))
    assert calls == runs
    a = out.summary["adaptive"]
    assert a["stopped"] == stopped and a["repeats_run"] == runs[-1]
    assert "stopped because" in out.summary["headline"]["text"]
    assert (Path(str(tmp_path)) / "summary.md").read_text().count("stopped because") >= 1
    if stopped == "unreachable":
        assert a["floor"] > target and "cannot be reached" in a["text"]
    if stopped == "target":
        assert a["halfwidth"] <= target


def test_bounded_interval_never_overflows() -> None:
    # a mean near 0 on the log scale with a huge se: exp() would overflow; the plain interval, clipped, is used
    lo, hi, scale = stats.bounded_interval(1e-6, 0.5, 9, 0.95, "log")
    assert scale == "identity" and lo == 0.0 and math.isfinite(hi)
    json.dumps(stats.nadeau_bengio([1e-9, 1e3, 1e-9, 1e-9], 40, 10, metric="mse"), allow_nan=False)
