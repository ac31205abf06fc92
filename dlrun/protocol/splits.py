"""Train/test splits for every evaluation mode, as ``(train, test)`` row indices.

Splitting is scikit-learn's (``train_test_split``, ``StratifiedKFold``,
``RepeatedStratifiedKFold`` …); this module only chooses the splitter, derives the
per-fold seeds and carves an optional validation part out of each training part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.errors import InputError
from dlrun.spec.schema import EvaluationSpec

#: The split seed when ``evaluation.split_seed`` is unset. Fixed, not the run's ``seed``: two
#: runs of the same data that differ only in ``seed`` (or in anything but the evaluation
#: section) then share their folds, so ``dlrun compare`` can pair them fold by fold, which is
#: far more powerful than comparing two unrelated sets of folds.
DEFAULT_SPLIT_SEED = 0

#: Repeats added at a time with ``evaluation.repeats: auto`` (the first chunk too): each chunk
#: is trained at once by the engine, and 3 repeats of 10 folds is one stacked run of 30 models.
AUTO_CHUNK = 3


def concrete_repeats(ev: EvaluationSpec) -> int:
    """The number of repeats a spec asks for now: ``repeats``, or the first chunk when it is ``auto``."""
    return ev.repeats if isinstance(ev.repeats, int) else min(AUTO_CHUNK, ev.max_repeats)


@dataclass(frozen=True)
class Fold:
    """One model's rows.

    Attributes:
        repeat: Repeat index (0-based).
        fold: Fold index within the repeat (0-based).
        seed: The model's seed (weights, shuffles, dropout), from :func:`fold_seed`.
        train: Row indices the model is fit on (validation rows excluded), ``(n_train,)``.
        val: Row indices for ``val_`` curves and early stopping, ``(n_val,)``; may be empty.
        test: Held-out row indices that are scored, ``(n_test,)``; empty in mode ``none``.
    """

    repeat: int
    fold: int
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def key(self) -> tuple[int, int]:
        """``(repeat, fold)``."""
        return (self.repeat, self.fold)

    def test_index_text(self) -> str:
        """The test rows as one space-separated string (for ``folds.csv``)."""
        return " ".join(map(str, self.test.tolist()))


def fold_seed(run_seed: int, repeat: int, fold: int) -> int:
    """A 31-bit seed that depends only on ``(run_seed, repeat, fold)``.

    Any single fold can therefore be re-run alone with the same weights and batches.
    """
    return int(np.random.SeedSequence([run_seed & 0xFFFFFFFF, repeat, fold]).generate_state(1)[0] & 0x7FFFFFFF)


def should_stratify(ev: EvaluationSpec, task: str) -> bool:
    """Stratify classification splits unless ``evaluation.stratify`` is false."""
    if ev.stratify is None:
        return task in ("binary", "multiclass")
    if ev.stratify and task == "regression":
        raise InputError("evaluation.stratify must be false or unset for a regression target, got true")
    return ev.stratify


def _check_counts(labels: np.ndarray, n_splits: int, what: str) -> None:
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < n_splits:
        raise InputError(
            f"{what}: stratified splitting needs at least {n_splits} rows of every class, "
            f"the smallest class has {counts.min()}; lower evaluation.folds or set evaluation.stratify: false"
        )


def make_folds(ev: EvaluationSpec, n_rows: int, labels: np.ndarray | None, task: str, run_seed: int) -> list[Fold]:
    """All folds of a run, in order (repeat-major).

    Args:
        ev: The evaluation section.
        n_rows: Number of rows in the dataset.
        labels: Class labels ``(n_rows,)`` for stratification, or None.
        task: ``binary``, ``multiclass`` or ``regression``.
        run_seed: The spec's seed (models' seeds). The split seed is ``evaluation.split_seed``,
            or :data:`DEFAULT_SPLIT_SEED` when unset, independent of ``run_seed``.

    Returns:
        ``folds × repeats`` folds for the k-fold modes, ``repeats`` for
        ``repeated_split``, one otherwise.
    """
    split_seed = ev.split_seed if ev.split_seed is not None else DEFAULT_SPLIT_SEED
    strat = should_stratify(ev, task) and labels is not None
    rows = np.arange(n_rows)
    y = labels if strat else None
    out: list[Fold] = []
    for repeat, fold, train, test in _splits(ev, rows, y, split_seed):
        seed = fold_seed(run_seed, repeat, fold)
        train, val = _carve_validation(ev, train, labels if strat else None, seed)
        out.append(Fold(repeat, fold, seed, np.asarray(train), np.asarray(val), np.asarray(test)))
    return out


def _splits(
    ev: EvaluationSpec, rows: np.ndarray, y: np.ndarray | None, split_seed: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    # scikit-learn's splitters import in about a second: only runs that split pay it
    from sklearn.model_selection import (
        KFold,
        RepeatedKFold,
        RepeatedStratifiedKFold,
        StratifiedKFold,
        train_test_split,
    )

    empty = np.array([], dtype=int)
    if ev.mode == "none":
        yield 0, 0, rows, empty
    elif ev.mode == "validation_split":
        # Keras' semantics: the last fraction of the rows, before any shuffling
        cut = int(len(rows) * (1.0 - ev.validation_split))
        if cut <= 0 or cut >= len(rows):
            raise InputError(f"evaluation.validation_split leaves no rows on one side, got {ev.validation_split}")
        yield 0, 0, rows[:cut], rows[cut:]
    elif ev.mode in ("split", "repeated_split"):
        if y is not None:
            _check_counts(y, 2, "evaluation.mode split")
        train, test = train_test_split(rows, test_size=ev.test_size, random_state=split_seed, stratify=y, shuffle=True)
        for r in range(concrete_repeats(ev) if ev.mode == "repeated_split" else 1):
            yield r, 0, np.asarray(train), np.asarray(test)
    else:
        k = ev.folds
        if k > len(rows):
            raise InputError(f"evaluation.folds must be at most the number of rows ({len(rows)}), got {k}")
        if y is not None:
            _check_counts(y, k, f"evaluation.folds={k}")
        repeats = concrete_repeats(ev) if ev.mode == "repeated_kfold" or ev.repeats == "auto" else 1
        splitter: Any
        if repeats == 1:
            rs = split_seed if ev.shuffle else None
            splitter = (StratifiedKFold if y is not None else KFold)(n_splits=k, shuffle=ev.shuffle, random_state=rs)
        else:
            splitter = (RepeatedStratifiedKFold if y is not None else RepeatedKFold)(
                n_splits=k, n_repeats=repeats, random_state=split_seed
            )
        dummy = np.zeros(len(rows)) if y is None else y
        for i, (train, test) in enumerate(splitter.split(rows, dummy)):
            yield i // k, i % k, train, test


def source_test_fold(
    ev: EvaluationSpec, n_rows: int, test_rows: np.ndarray, labels: np.ndarray | None, task: str, run_seed: int
) -> Fold:
    """The one fold of ``evaluation.test_rows: source``: the data source's own test rows, the rest to train.

    Args:
        ev: The evaluation section (mode ``split``).
        n_rows: Rows in the dataset.
        test_rows: Indices of the source's test rows, shape ``(n_test,)``.
        labels: Class labels ``(n_rows,)`` for a stratified validation part, or None.
        task: ``binary``, ``multiclass`` or ``regression``.
        run_seed: The spec's seed.

    Raises:
        InputError: The source's test rows leave no rows on one side.
    """
    test = np.unique(np.asarray(test_rows, dtype=int))
    train = np.setdiff1d(np.arange(n_rows), test)
    if len(test) == 0 or len(train) == 0:
        raise InputError(
            f"evaluation.test_rows: source needs training and test rows; the source has {len(train)} training and "
            f"{len(test)} test rows (after data.max_rows)"
        )
    seed = fold_seed(run_seed, 0, 0)
    strat = labels if should_stratify(ev, task) and labels is not None else None
    fit, val = _carve_validation(ev, train, strat, seed)
    return Fold(0, 0, seed, np.asarray(fit), np.asarray(val), test)


def _carve_validation(
    ev: EvaluationSpec, train: np.ndarray, labels: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a validation part off a training part (not in mode ``validation_split``, which is the test part)."""
    if ev.mode == "validation_split" or ev.validation_split <= 0:
        return train, np.array([], dtype=int)
    from sklearn.model_selection import train_test_split

    strat = labels[train] if labels is not None else None
    fit, val = train_test_split(train, test_size=ev.validation_split, random_state=seed, stratify=strat, shuffle=True)
    return np.asarray(fit), np.asarray(val)


def splits_digest(folds: list[Fold]) -> str:
    """SHA-1 over every fold's key and test rows: equal digests mean identical splits."""
    h = hashlib.sha1()
    for f in folds:
        h.update(f"{f.repeat}:{f.fold}:{f.test_index_text()};".encode())
    return h.hexdigest()
