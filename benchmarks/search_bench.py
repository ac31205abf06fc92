"""Hyperparameter search on Sonar, three ways, each as its own process, one after another:

(a) ``dlrun search configs/sonar_search.yaml`` (trials asked in batches; trials sharing a shape
    train as one stacked program where the engine trains per-model hyperparameters),
(b) the same with ``--batch 1`` (one trial at a time: its 10 folds stacked, trials in series),
(c) the way users write it today: Optuna's ``study.optimize`` with an objective that builds a
    Keras model and calls ``model.fit`` for each of the 10 folds in a plain loop. It takes about
    an hour in full, so it runs ``--plain-trials`` trials and is extrapolated per trial (said so in
    the output).

Wall time of the whole process (imports, data, training, files) and the best trial's accuracy.
Do not time it while other jobs share the machine.

Usage:
    python benchmarks/search_bench.py [--trials 40] [--epochs 100] [--plain-trials 2] [--only a,b,c]
    python benchmarks/search_bench.py --no-dropout-search ...   # trials differing in lr/momentum/width only
    python benchmarks/search_bench.py --plain-loop N EPOCHS 1   # (c) alone, as the script runs it
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONFIG = ROOT / "configs" / "sonar_search.yaml"


def run(label: str, cmd: list[str]) -> tuple[float, str]:
    """Run ``cmd`` as its own process; print and return its wall seconds and output."""
    # each process starts with an empty compilation cache: no run reuses another's compiled programs
    cache = tempfile.mkdtemp(prefix="dlrun-bench-cache-")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "DLRUN_COMPILE_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    text = res.stdout + res.stderr
    if res.returncode != 0:
        print(f"{label}: exit {res.returncode}\n{text[-3000:]}", flush=True)
    return wall, text


def config_without_dropout_search(tmp: Path) -> Path:
    """configs/sonar_search.yaml without its dropout-rate entry (trials then differ in learning rate,
    momentum and width only; the dropout rate is a per-model scalar too, so this changes little)."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["search"].pop("model.layers[0].Dropout.rate")
    path = tmp / "sonar_search_no_dropout.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def dlrun_search(config: Path, out: Path, trials: int, epochs: int, batch: int | None) -> list[str]:
    cmd = [PY, "-m", "dlrun", "search", str(config), "--trials", str(trials), "--out", str(out)]
    cmd += ["--set", f"training.epochs={epochs}"]
    if batch is not None:
        cmd += ["--batch", str(batch)]
    return cmd


def best_of(out: Path) -> tuple[float | None, str]:
    summary = json.loads((out / "search.json").read_text())
    best = summary.get("best") or {}
    pk = summary["packing"]
    packing = f"{pk['programs']} programs, {pk['models_per_program']['mean']:.1f} models/program"
    return best.get("accuracy_mean"), packing


def plain_loop(n_trials: int, epochs: int, search_dropout: int) -> None:
    """(c): Optuna + Keras ``model.fit`` per fold, as a tutorial writes it; prints RESULT lines."""
    t0 = time.perf_counter()
    import keras
    import numpy as np
    import optuna
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    data_dir = Path(os.environ.get("DLRUN_DATA_DIR", ROOT.parent / "shared" / "data"))
    df = pd.read_csv(data_dir / "sonar.csv", header=None)
    x = df.iloc[:, :60].to_numpy("float32")
    y = LabelEncoder().fit_transform(df.iloc[:, 60]).astype("float32")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", 1e-3, 0.3, log=True)
        momentum = trial.suggest_float("momentum", 0.0, 0.95)
        units = trial.suggest_categorical("units", [30, 60, 90])
        rate = trial.suggest_float("dropout", 0.0, 0.5) if search_dropout else 0.2
        scores = []
        for train, test in StratifiedKFold(10, shuffle=True, random_state=7).split(x, y):
            scaler = StandardScaler().fit(x[train])
            model = keras.Sequential(
                [
                    keras.Input((60,)),
                    keras.layers.Dropout(rate),
                    keras.layers.Dense(units, activation="relu", kernel_constraint=keras.constraints.MaxNorm(3)),
                    keras.layers.Dense(30, activation="relu", kernel_constraint=keras.constraints.MaxNorm(3)),
                    keras.layers.Dense(1, activation="sigmoid"),
                ]
            )
            model.compile(
                optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=momentum),
                loss="binary_crossentropy",
                metrics=["accuracy"],
            )
            model.fit(scaler.transform(x[train]), y[train], epochs=epochs, batch_size=16, verbose=0)
            scores.append(model.evaluate(scaler.transform(x[test]), y[test], verbose=0)[1])
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=7))
    t1 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    per_trial = (time.perf_counter() - t1) / n_trials
    print(
        f"RESULT setup_s={t1 - t0:.2f} per_trial_s={per_trial:.2f} best_accuracy={study.best_value:.4f} "
        f"backend={keras.backend.backend()}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--plain-trials", type=int, default=2, help="trials of (c) actually run; the rest extrapolated")
    ap.add_argument("--only", default="a,b,c")
    ap.add_argument(
        "--no-dropout-search",
        action="store_true",
        help="search lr, momentum and width only (see config_without_dropout_search)",
    )
    ap.add_argument("--plain-loop", nargs=3, type=int, metavar=("TRIALS", "EPOCHS", "DROPOUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_loop:
        plain_loop(*args.plain_loop)
        return
    cases = set(args.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="dlrun-search-bench-"))
    config = config_without_dropout_search(tmp) if args.no_dropout_search else CONFIG
    print(
        f"{args.trials} trials x 10 folds x {args.epochs} epochs, Sonar ({config.name}); {os.cpu_count()} cores; "
        f"outputs in {tmp}"
    )
    rows: dict[str, float] = {}
    if "a" in cases:
        wall, _ = run("a", dlrun_search(config, tmp / "a", args.trials, args.epochs, None))
        acc, packing = best_of(tmp / "a")
        rows["a"] = wall
        print(f"(a) dlrun search (batched)      {wall:8.1f} s  best accuracy {acc}  {packing}", flush=True)
    if "b" in cases:
        wall, _ = run("b", dlrun_search(config, tmp / "b", args.trials, args.epochs, 1))
        acc, packing = best_of(tmp / "b")
        rows["b"] = wall
        print(f"(b) dlrun search --batch 1      {wall:8.1f} s  best accuracy {acc}  {packing}", flush=True)
    if "c" in cases:
        wall, text = run(
            "c",
            [
                PY,
                __file__,
                "--plain-loop",
                str(args.plain_trials),
                str(args.epochs),
                str(int(not args.no_dropout_search)),
            ],
        )
        m = re.search(r"setup_s=([0-9.]+) per_trial_s=([0-9.]+) best_accuracy=([0-9.]+)", text)
        if m:
            setup, per = float(m.group(1)), float(m.group(2))
            full = setup + per * args.trials
            rows["c"] = full
            print(
                f"(c) Optuna + model.fit loop     {full:8.1f} s  (extrapolated: {args.plain_trials} trials run in "
                f"{wall:.1f} s, {per:.1f} s per trial) best accuracy {m.group(3)} of {args.plain_trials}",
                flush=True,
            )
    if "a" in rows:
        for other in ("b", "c"):
            if other in rows:
                print(f"(a) is {rows[other] / rows['a']:.1f}x faster than ({other})")


if __name__ == "__main__":
    main()
