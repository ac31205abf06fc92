"""The floor under the stacked engine: the bare arithmetic of Sonar-sized training, nothing else.

One XLA program per epoch that does only what any trainer of these models must do: gather each
model's mini-batches, forward and backward through a 60-60-30-1 MLP, and an SGD-with-momentum
update, for ``--models`` models split over ``--groups`` threads (one program per thread, as the
engine runs them). No masks, metrics, class weights, shuffling or early stopping. Whatever this
takes per epoch, the real engine cannot beat; the gap between the two is the engine's overhead.

Usage: python benchmarks/stacked_floor.py [--models 300] [--groups 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROWS, FEATURES, BATCH = 187, 60, 16  # one Sonar training fold
SHAPES = [(60, 60), (60,), (60, 30), (30,), (30, 1), (1,)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()

    from dlrun.engines.runtime import import_tensorflow

    tf = import_tensorflow()  # with dlrun's XLA flags
    from dlrun.engines.stacked import _batched_dense

    steps = -(-ROWS // BATCH)
    per = args.models // args.groups
    rng = np.random.default_rng(0)

    def step(params: list[Any], vel: list[Any], xb: Any, yb: Any) -> tuple[list[Any], list[Any]]:
        with tf.GradientTape() as tape:
            tape.watch(params)
            h = tf.nn.relu(_batched_dense(xb, params[0]) + params[1][:, None, :])
            h = tf.nn.relu(_batched_dense(h, params[2]) + params[3][:, None, :])
            logit = tf.reduce_sum(h * tf.transpose(params[4], [0, 2, 1]), axis=-1, keepdims=True)
            p = tf.clip_by_value(tf.sigmoid(logit + params[5][:, None, :]), 1e-7, 1 - 1e-7)
            loss = -tf.reduce_mean(yb * tf.math.log(p) + (1 - yb) * tf.math.log(1 - p), axis=[1, 2])
            total = tf.reduce_sum(loss)
        grads = tape.gradient(total, params)
        vel = [0.8 * v - 0.01 * g for v, g in zip(vel, grads)]
        return [w + v for w, v in zip(params, vel)], vel

    @tf.function(jit_compile=True, autograph=False)
    def epoch(params: Any, vel: Any, x: Any, y: Any, perm: Any) -> Any:
        def body(s: Any, params: Any, vel: Any) -> Any:
            idx = perm[:, s]
            p, v = step(list(params), list(vel), tf.gather(x, idx, batch_dims=1), tf.gather(y, idx, batch_dims=1))
            return s + 1, tuple(p), tuple(v)

        _, params, vel = tf.while_loop(lambda s, *_: s < steps, body, (tf.constant(0), tuple(params), tuple(vel)))
        return params, vel

    groups = []
    for _ in range(args.groups):
        x = tf.constant(rng.normal(size=(per, ROWS, FEATURES)).astype(np.float32))
        y = tf.constant((rng.random(size=(per, ROWS, 1)) > 0.5).astype(np.float32))
        perm = np.stack([rng.permutation(steps * BATCH) % ROWS for _ in range(per)]).reshape(per, steps, BATCH)
        params = tuple(tf.constant(rng.normal(size=(per, *s)).astype(np.float32) * 0.05) for s in SHAPES)
        groups.append([params, tuple(tf.zeros_like(p) for p in params), x, y, tf.constant(perm.astype(np.int32))])

    def run(g: list[Any]) -> None:
        g[0], g[1] = epoch(*g)
        g[0][0].numpy()

    with ThreadPoolExecutor(max_workers=args.groups) as pool:
        list(pool.map(run, groups))  # compile
        times = []
        for _ in range(args.epochs):
            t = time.perf_counter()
            list(pool.map(run, groups))
            times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    print(
        f"{args.models} models in {args.groups} group(s): min {ms.min():.1f} ms, median {np.median(ms):.1f} ms "
        f"per epoch of {steps} steps; 300 epochs at the median: {np.median(ms) * 0.3:.1f} s"
    )


if __name__ == "__main__":
    main()
