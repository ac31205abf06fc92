"""Time the stacked engine on a Sonar-sized problem: 30 repeats x 10 folds of a 60-30-1 MLP.

Usage: python benchmarks/stacked_microbench.py [--models 300] [--epochs 300] [--threads 2] [--block 10]

Runs on Keras 3 + JAX (dlrun's default backend). Per-epoch time = (fit time - first call) / epochs;
progress arrives once per ``EPOCHS_PER_CALL`` epochs, since epochs run inside the program.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-jit", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--optimizer", default="SGD")
    ap.add_argument("--block", type=int, default=None, help="models per program (default: the engine's)")
    args = ap.parse_args()

    t_import = time.perf_counter()
    from dlrun.engines.runtime import quiet_tensorflow

    quiet_tensorflow()  # dlrun's XLA flags
    from sklearn.datasets import make_classification

    from dlrun.engines.base import FitJob
    from dlrun.engines.stacked import StackedEngine
    from dlrun.spec.schema import validate

    opt = {"SGD": {"learning_rate": 0.01, "momentum": 0.8}} if args.optimizer == "SGD" else args.optimizer
    spec = validate(
        {
            "data": {"source": "sonar"},
            "model": {
                "layers": [
                    {"Dense": {"units": 60, "activation": "relu", "kernel_initializer": "normal"}},
                    {"Dense": {"units": 30, "activation": "relu", "kernel_initializer": "normal"}},
                    {"Dense": {"units": 1, "activation": "sigmoid", "kernel_initializer": "normal"}},
                ]
            },
            "compile": {"optimizer": opt, "loss": "binary_crossentropy", "metrics": ["accuracy"]},
            "training": {"batch_size": args.batch, "epochs": args.epochs},
            "evaluation": {"mode": "repeated_kfold", "folds": 10, "repeats": 30},
        }
    )
    x, y = make_classification(n_samples=208, n_features=60, n_informative=20, random_state=0)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = y.astype(np.float32)
    jobs = []
    rng = np.random.default_rng(0)
    for m in range(args.models):
        idx = rng.permutation(208)
        k = m % 10
        test = idx[k * 21 : (k + 1) * 21] if k < 8 else idx[168 + (k - 8) * 20 : 168 + (k - 7) * 20]
        train = np.setdiff1d(idx, test)
        jobs.append(FitJob(m // 10, k, 1000 + m, x[train], y[train], x_test=x[test], y_test=y[test]))
    print(f"setup (imports) {time.perf_counter() - t_import:.2f}s")
    eng = StackedEngine(spec, "binary", (60,), 1, jit=not args.no_jit, threads=args.threads, block_models=args.block)
    stamps: list[float] = []
    t0 = time.perf_counter()
    res = list(eng.fit(jobs, on_epoch=lambda ev: stamps.append(time.perf_counter())))
    dt = time.perf_counter() - t0
    first = stamps[0] - t0
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    deltas = np.diff(stamps)
    if len(deltas):
        print(f"per epoch: min {deltas.min() * 1000:.1f} ms, median {np.median(deltas) * 1000:.1f} ms")
    print(
        f"first epoch (init + compile) {first:.2f}s, then {steady * 1000:.1f} ms/epoch, "
        f"tail {t0 + dt - stamps[-1]:.2f}s"
    )
    print(f"{len(jobs)} models x {args.epochs} epochs: fit {dt:.2f}s  ({dt / len(jobs) * 1000:.1f} ms/model)")
    print("final train loss mean", float(np.mean([r.history["loss"][-1] for r in res])))


if __name__ == "__main__":
    main()
