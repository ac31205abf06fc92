"""Tests of dlrun.protocol.splits: fold invariants for every mode and task, seeds, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlrun.errors import InputError
from dlrun.protocol.splits import DEFAULT_SPLIT_SEED, Fold, fold_seed, make_folds, should_stratify, splits_digest
from dlrun.spec.schema import EvaluationSpec

N = 120
SEED = 11


def _labels(task: str) -> np.ndarray | None:
    """Imbalanced labels (so stratification matters), or None for regression."""
    rng = np.random.default_rng(0)
    if task == "binary":
        y = np.array(["neg"] * 84 + ["pos"] * 36)
    elif task == "multiclass":
        y = np.array(["a"] * 60 + ["b"] * 36 + ["c"] * 24)
    else:
        return None
    return rng.permutation(y)


def _ev(mode: str, **kw: Any) -> EvaluationSpec:
    base: dict[str, Any] = {"mode": mode}
    if mode == "validation_split":
        base["validation_split"] = 0.25
    if mode in ("kfold", "repeated_kfold"):
        base["folds"] = 4
    if mode in ("repeated_kfold", "repeated_split"):
        base["repeats"] = 3
    base.update(kw)
    return EvaluationSpec(**base)


# ----------------------------------------------------------------------------- invariant helpers
def assert_disjoint(fold: Fold) -> None:
    """train, val and test share no row, and no index repeats."""
    for part in (fold.train, fold.val, fold.test):
        assert len(np.unique(part)) == len(part)
    assert not set(fold.train) & set(fold.test), "train ∩ test must be empty"
    assert not set(fold.val) & set(fold.test), "val ∩ test must be empty"
    assert not set(fold.val) & set(fold.train), "val must be disjoint from the fit rows"


def assert_in_range(fold: Fold, n: int) -> None:
    for part in (fold.train, fold.val, fold.test):
        assert part.dtype.kind == "i"
        assert np.all((part >= 0) & (part < n))


def assert_partition_per_repeat(folds: list[Fold], n: int) -> None:
    """Within each repeat the test folds cover every row exactly once."""
    for r in sorted({f.repeat for f in folds}):
        tests = np.concatenate([f.test for f in folds if f.repeat == r])
        assert np.array_equal(np.sort(tests), np.arange(n)), f"repeat {r}: test rows are not a partition"


def assert_stratified(folds: list[Fold], labels: np.ndarray) -> None:
    """Each class's share of a test fold is within one row of its share of all rows."""
    classes, counts = np.unique(labels, return_counts=True)
    share = counts / len(labels)
    for f in folds:
        if not len(f.test):
            continue
        got = np.array([np.sum(labels[f.test] == c) for c in classes])
        assert np.all(np.abs(got - share * len(f.test)) <= 1.0), (f.key, got, share * len(f.test))


def assert_training_part(fold: Fold, n: int, mode: str) -> None:
    """train ∪ val is everything that is not test (the whole training part)."""
    if mode == "none":
        assert len(fold.test) == 0
    whole = np.sort(np.concatenate([fold.train, fold.val, fold.test]))
    assert np.array_equal(whole, np.arange(n))


MODES = ["split", "validation_split", "none", "kfold", "repeated_kfold", "repeated_split"]
TASKS = ["binary", "multiclass", "regression"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_fold_invariants(mode: str, task: str) -> None:
    labels = _labels(task)
    ev = _ev(mode)
    folds = make_folds(ev, N, labels, task, SEED)
    expected = {"kfold": 4, "repeated_kfold": 4 * 3, "repeated_split": 3}.get(mode, 1)
    assert len(folds) == expected
    assert [f.key for f in folds] == sorted(f.key for f in folds), "repeat-major order"
    assert len({f.key for f in folds}) == len(folds)
    for f in folds:
        assert_disjoint(f)
        assert_in_range(f, N)
        assert_training_part(f, N, mode)
        assert f.seed == fold_seed(SEED, f.repeat, f.fold)
    if mode in ("kfold", "repeated_kfold"):
        assert_partition_per_repeat(folds, N)
        assert {f.fold for f in folds} == set(range(4))
    if labels is not None and mode not in ("validation_split", "none"):
        assert_stratified(folds, labels)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", ["split", "kfold", "repeated_kfold", "repeated_split", "none"])
def test_validation_rows_come_from_the_training_part(mode: str, task: str) -> None:
    labels = _labels(task)
    plain = make_folds(_ev(mode), N, labels, task, SEED)
    carved = make_folds(_ev(mode, validation_split=0.2), N, labels, task, SEED)
    assert len(plain) == len(carved)
    for p, c in zip(plain, carved):
        assert np.array_equal(p.test, c.test), "carving validation rows must not move the test rows"
        assert len(c.val) > 0
        assert set(c.val) <= set(p.train), "val ⊂ training part"
        assert set(c.train) | set(c.val) == set(p.train)
        assert not set(c.val) & set(c.train), "val is disjoint from the fit rows"
        assert len(c.val) == pytest.approx(0.2 * len(p.train), abs=1)


@pytest.mark.parametrize("fraction", [0.33, 0.25, 0.1])
def test_validation_split_is_the_last_fraction_unshuffled(fraction: float) -> None:
    labels = _labels("binary")
    (fold,) = make_folds(_ev("validation_split", validation_split=fraction), N, labels, "binary", SEED)
    cut = int(N * (1 - fraction))
    assert np.array_equal(fold.train, np.arange(cut)), "Keras' validation_split keeps the first rows in order"
    assert np.array_equal(fold.test, np.arange(cut, N)), "and validates on the last fraction"
    assert len(fold.val) == 0


def test_none_mode_trains_on_everything() -> None:
    (fold,) = make_folds(_ev("none"), N, _labels("binary"), "binary", SEED)
    assert np.array_equal(np.sort(fold.train), np.arange(N))
    assert len(fold.test) == 0 and len(fold.val) == 0


@pytest.mark.parametrize("test_size", [0.2, 0.33, 0.5])
def test_split_sizes(test_size: float) -> None:
    (fold,) = make_folds(_ev("split", test_size=test_size), N, None, "regression", SEED)
    assert len(fold.test) == int(np.ceil(test_size * N))


def test_repeated_split_repeats_share_one_split_with_new_seeds() -> None:
    folds = make_folds(_ev("repeated_split"), N, _labels("binary"), "binary", SEED)
    assert [f.key for f in folds] == [(0, 0), (1, 0), (2, 0)]
    for f in folds[1:]:
        assert np.array_equal(f.test, folds[0].test)
    assert len({f.seed for f in folds}) == 3


def test_repeated_kfold_repeats_differ() -> None:
    folds = make_folds(_ev("repeated_kfold"), N, _labels("binary"), "binary", SEED)
    first = [f.test.tolist() for f in folds if f.repeat == 0]
    second = [f.test.tolist() for f in folds if f.repeat == 1]
    assert first != second


def test_unshuffled_kfold_is_contiguous() -> None:
    folds = make_folds(_ev("kfold", shuffle=False), N, None, "regression", SEED)
    for i, f in enumerate(folds):
        assert np.array_equal(f.test, np.arange(i * 30, (i + 1) * 30))


# ----------------------------------------------------------------------------- seeds and determinism
def test_fold_seed_is_a_pure_31_bit_function() -> None:
    seeds = {fold_seed(7, r, f) for r in range(5) for f in range(10)}
    assert len(seeds) == 50, "every (repeat, fold) gets its own seed"
    assert all(0 <= s < 2**31 for s in seeds)
    assert fold_seed(7, 2, 3) == fold_seed(7, 2, 3)
    assert fold_seed(7, 2, 3) != fold_seed(8, 2, 3)
    assert fold_seed(7, 2, 3) != fold_seed(7, 3, 2)
    assert 0 <= fold_seed(-1, 0, 0) < 2**31
    assert 0 <= fold_seed(2**40, 0, 0) < 2**31


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_make_folds_is_deterministic(mode: str, task: str) -> None:
    labels = _labels(task)
    a = make_folds(_ev(mode, validation_split=0.2 if mode != "validation_split" else 0.25), N, labels, task, SEED)
    b = make_folds(_ev(mode, validation_split=0.2 if mode != "validation_split" else 0.25), N, labels, task, SEED)
    assert splits_digest(a) == splits_digest(b)
    for fa, fb in zip(a, b):
        assert fa.key == fb.key and fa.seed == fb.seed
        assert np.array_equal(fa.train, fb.train)
        assert np.array_equal(fa.val, fb.val)
        assert np.array_equal(fa.test, fb.test)


def test_split_seed_changes_rows_but_not_model_seeds() -> None:
    labels = _labels("binary")
    a = make_folds(_ev("kfold"), N, labels, "binary", SEED)
    b = make_folds(_ev("kfold", split_seed=99), N, labels, "binary", SEED)
    assert splits_digest(a) != splits_digest(b)
    assert [f.seed for f in a] == [f.seed for f in b]
    c = make_folds(_ev("kfold", split_seed=DEFAULT_SPLIT_SEED), N, labels, "binary", SEED)
    assert splits_digest(a) == splits_digest(c), "split_seed defaults to DEFAULT_SPLIT_SEED"


@pytest.mark.parametrize("mode", ["kfold", "repeated_kfold", "repeated_split"])
def test_changing_only_the_seed_keeps_the_splits(mode: str) -> None:
    """Two runs that differ only in ``seed`` share their folds (so compare pairs them) but not model seeds."""
    labels = _labels("binary")
    a = make_folds(_ev(mode), N, labels, "binary", SEED)
    b = make_folds(_ev(mode), N, labels, "binary", SEED + 1)
    assert splits_digest(a) == splits_digest(b)
    assert [f.seed for f in a] != [f.seed for f in b]


@pytest.mark.parametrize("task", TASKS)
def test_any_fold_can_be_rederived_alone(task: str) -> None:
    """Fold (r, f) of a long run equals fold (r, f) of a shorter run: its rows and its seed."""
    labels = _labels(task)
    long = make_folds(_ev("repeated_kfold", repeats=4), N, labels, task, SEED)
    short = make_folds(_ev("repeated_kfold", repeats=2), N, labels, task, SEED)
    by_key = {f.key: f for f in long}
    for f in short:
        g = by_key[f.key]
        assert np.array_equal(f.test, g.test) and np.array_equal(f.train, g.train)
        assert f.seed == g.seed == fold_seed(SEED, *f.key)


def test_splits_digest_sees_test_rows() -> None:
    folds = make_folds(_ev("kfold"), N, None, "regression", SEED)
    moved = [
        *folds[:-1],
        Fold(folds[-1].repeat, folds[-1].fold, folds[-1].seed, folds[-1].train, folds[-1].val, folds[-1].test[::-1]),
    ]
    assert splits_digest(folds) != splits_digest(moved)
    assert len(splits_digest(folds)) == 40


# ----------------------------------------------------------------------------- refusals
def test_stratify_true_on_regression_is_refused() -> None:
    with pytest.raises(InputError, match=r"evaluation\.stratify"):
        make_folds(_ev("kfold", stratify=True), N, None, "regression", SEED)


@pytest.mark.parametrize(
    ("stratify", "task", "expected"),
    [(None, "binary", True), (None, "multiclass", True), (None, "regression", False), (False, "binary", False)],
)
def test_should_stratify(stratify: bool | None, task: str, expected: bool) -> None:
    assert should_stratify(_ev("kfold", stratify=stratify), task) is expected


def test_too_few_rows_of_a_class_for_the_folds() -> None:
    labels = np.array(["a"] * 117 + ["b"] * 3)
    with pytest.raises(InputError, match="smallest class has 3"):
        make_folds(_ev("kfold", folds=4), N, labels, "binary", SEED)
    folds = make_folds(_ev("kfold", folds=4, stratify=False), N, labels, "binary", SEED)
    assert len(folds) == 4


def test_more_folds_than_rows() -> None:
    with pytest.raises(InputError, match="at most the number of rows"):
        make_folds(_ev("kfold", folds=10), 5, None, "regression", SEED)


def test_validation_split_leaving_no_rows() -> None:
    with pytest.raises(InputError, match="leaves no rows"):
        make_folds(_ev("validation_split", validation_split=0.6), 2, None, "regression", SEED)


def test_folds_text() -> None:
    (fold,) = make_folds(_ev("validation_split"), 8, None, "regression", SEED)
    assert fold.test_index_text() == "6 7"
    assert fold.key == (0, 0)


def test_auto_repeats_start_with_a_chunk_and_grow_by_prefix() -> None:
    from dlrun.protocol.splits import AUTO_CHUNK, concrete_repeats

    ev = _ev("kfold", repeats="auto", target_halfwidth=0.02)
    assert concrete_repeats(ev) == AUTO_CHUNK
    assert concrete_repeats(_ev("kfold", repeats="auto", target_halfwidth=0.02, max_repeats=2)) == 2
    labels = _labels("binary")
    first = make_folds(ev, N, labels, "binary", SEED)
    assert len(first) == 4 * AUTO_CHUNK
    more = make_folds(_ev("repeated_kfold", repeats=AUTO_CHUNK + 2), N, labels, "binary", SEED)
    assert splits_digest(more[: len(first)]) == splits_digest(first)
    # the first repeat of repeated k-fold is plain k-fold: a kfold run can grow into repeats
    single = make_folds(_ev("kfold"), N, labels, "binary", SEED)
    assert splits_digest(more[:4]) == splits_digest(single)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mode": "kfold", "repeats": "auto"}, "needs target_halfwidth"),
        ({"mode": "split", "repeats": "auto", "target_halfwidth": 0.02}, "repeats: auto needs mode"),
        ({"mode": "repeated_kfold", "repeats": 0}, "positive integer or 'auto'"),
    ],
)
def test_auto_repeats_spec_checks(kw: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        EvaluationSpec(**kw)
