"""Host-side arrays of a stacked program: padded per-model parts, batch orders, seeds, device copies."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlrun.engines.base import FitJob
from dlrun.engines.sequential import epoch_permutations


def put(a: Any) -> Any:
    """``a`` on the default device, without compiling: ``jnp.asarray`` of a host array stages it
    through a small program compiled once per shape and dtype (24 of them, about 0.3 s, before a
    Sonar run's first epoch)."""
    import jax

    return jax.device_put(np.asarray(a) if not hasattr(a, "devices") else a)


def bucket(rows: int) -> int:
    """Rows to pad a part to: a multiple of 8, so folds one row apart (187 and 188 training rows)
    run the same compiled program; padded rows carry zero weight."""
    return -(-rows // 8) * 8


def seed_pair(seed: int, salt: int) -> np.ndarray:
    """A per-model, per-purpose seed-generator state ``[s, 0]`` (uint32)."""
    s = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, salt]).generate_state(1)[0]
    return np.array([s, 0], np.uint32)


def class_weights(y: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray:
    """Per-row weights from ``{class_code: weight}``, as Keras derives them from ``class_weight``."""
    if not class_weight:
        return np.ones(len(y), np.float32)
    if y.ndim > 1 and y.shape[1] > 1:
        codes = np.argmax(y, axis=1)
    else:
        codes = np.round(y.reshape(len(y))).astype(int)
    return np.array([class_weight.get(int(c), 1.0) for c in codes], np.float32)


def chunk_data(jobs: list[FitJob], input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every model's training, validation and test rows, padded to one shape per part.

    Keys ``x_<part>``, ``y_<part>``, ``w_<part>`` (row weights: class weights on training
    rows, 0 on padding) and ``n_<part>`` (real rows) for ``train``, ``val`` and ``test``;
    ``start``: each model's first epoch (resume).
    """
    y_shape = tuple(jobs[0].y_train.shape[1:])
    out: dict[str, np.ndarray] = {}
    for part, xs, ys in (
        ("train", [j.x_train for j in jobs], [j.y_train for j in jobs]),
        ("val", [j.x_val for j in jobs], [j.y_val for j in jobs]),
        ("test", [j.x_test for j in jobs], [j.y_test for j in jobs]),
    ):
        have = [x is not None and y is not None and len(x) > 0 for x, y in zip(xs, ys)]
        counts = np.array([len(x) if h and x is not None else 0 for x, h in zip(xs, have)], np.int32)
        rows = bucket(max(1, int(counts.max())))
        # one spare zero row at the end: padded batch slots index it
        x = np.zeros((len(jobs), rows + 1, *input_shape), np.float32)
        y = np.zeros((len(jobs), rows + 1, *y_shape), np.float32)
        w = np.zeros((len(jobs), rows + 1), np.float32)
        for m, (xi, yi, h) in enumerate(zip(xs, ys, have)):
            if not h or xi is None or yi is None:
                continue
            k = len(xi)
            x[m, :k] = np.asarray(xi, np.float32).reshape((k, *input_shape))
            y[m, :k] = np.asarray(yi, np.float32).reshape((k, *y_shape))
            w[m, :k] = class_weights(np.asarray(yi), jobs[m].class_weight) if part == "train" else 1.0
        out[f"x_{part}"], out[f"y_{part}"], out[f"w_{part}"], out[f"n_{part}"] = x, y, w, counts
    out["start"] = np.array([max(0, int(j.initial_epoch)) for j in jobs], np.int32)
    return out


def batch_orders(
    jobs: list[FitJob], n_train: np.ndarray, epochs: range, steps: int, batch_size: int, shuffle: bool
) -> np.ndarray:
    """Row indices ``(M, E, steps, B)`` of each model's batches; padding slots index the spare row."""
    rows_pad = steps * batch_size
    spare = int(n_train.max())
    out = np.full((len(jobs), len(epochs), rows_pad), spare, np.int32)
    for m, job in enumerate(jobs):
        n = int(n_train[m])
        out[m, :, :n] = epoch_permutations(job.seed, epochs, n, shuffle)
    return out.reshape(len(jobs), len(epochs), steps, batch_size)


def predict_inputs(xs: list[np.ndarray | None], input_shape: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    """The models' rows of one part, padded to one shape, and each model's real row count."""
    counts = [0 if x is None else len(x) for x in xs]
    rows = bucket(max(1, max(counts)))
    x = np.zeros((len(xs), rows, *input_shape), np.float32)
    for m, xi in enumerate(xs):
        if xi is not None and len(xi):
            x[m, : len(xi)] = np.asarray(xi, np.float32).reshape((len(xi), *input_shape))
    return x, counts
