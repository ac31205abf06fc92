"""Wall time of whole processes: plain Keras, scikit-learn's MLP, and `dlrun cv` with each engine.

Each command runs as its own process, one after another in this session, and the script prints
wall seconds, mean accuracy and ratios. Long: the full set takes the better part of an hour on
2 cores; pick cases with --only.

Usage:
    python benchmarks/run_benchmarks.py [--only sonar1,sonar30,mammo,train] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DLRUN = [PY, "-m", "dlrun"]


def run(label: str, cmd: list[str]) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - t0
    text = res.stdout + res.stderr
    acc = None
    m = re.search(r"RESULT accuracy=([0-9.]+)", text) or re.search(r"accuracy ([0-9.]+)", text)
    if m:
        acc = float(m.group(1))
    status = "ok" if res.returncode == 0 else f"exit {res.returncode}"
    print(f"{label:55s} {wall:8.1f} s  accuracy {acc if acc is not None else float('nan'):.4f}  {status}", flush=True)
    if res.returncode != 0:
        print(text[-2000:], flush=True)
    return wall, acc


def dlrun_cv(config: str, engine: str, repeats: int, epochs: int, out: str) -> list[str]:
    sets = ["--set", f"training.epochs={epochs}", "--engine", engine, "--log-every", "0", "--out", out]
    if repeats > 1:
        sets += ["--set", "evaluation.mode=repeated_kfold", "--set", f"evaluation.repeats={repeats}"]
    return [*DLRUN, "cv", config, *sets]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="sonar1,sonar30,mammo,train")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--skip-slow", action="store_true", help="skip the sequential 30x10 and keras mammography cases")
    args = ap.parse_args()
    cases = set(args.only.split(","))
    e = args.epochs
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"dlrun-bench-{os.getpid()}"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"{'case':55s} {'wall':>10s}")
    if "sonar1" in cases:
        k, _ = run(
            "sonar 1x10 plain Keras loop", [PY, "benchmarks/workers.py", "keras", "sonar", "1", "10", str(e), "16"]
        )
        s, _ = run(
            "sonar 1x10 sklearn MLPClassifier n_jobs=-1",
            [PY, "benchmarks/workers.py", "sklearn", "sonar", "1", "10", str(e), "16"],
        )
        q, _ = run(
            "sonar 1x10 dlrun cv --engine sequential",
            dlrun_cv("configs/sonar_baseline.yaml", "sequential", 1, e, f"{tmp}/s1q"),
        )
        t, _ = run(
            "sonar 1x10 dlrun cv --engine stacked",
            dlrun_cv("configs/sonar_baseline.yaml", "stacked", 1, e, f"{tmp}/s1t"),
        )
        print(f"  ratios: keras/stacked {k / t:.1f}x  sklearn/stacked {s / t:.1f}x  sequential/stacked {q / t:.1f}x")
    if "sonar30" in cases:
        s, _ = run(
            "sonar 30x10 sklearn MLPClassifier n_jobs=-1",
            [PY, "benchmarks/workers.py", "sklearn", "sonar", "30", "10", str(e), "16"],
        )
        if not args.skip_slow:
            run(
                "sonar 30x10 dlrun cv --engine sequential",
                dlrun_cv("configs/sonar_baseline.yaml", "sequential", 30, e, f"{tmp}/s30q"),
            )
        t, _ = run(
            "sonar 30x10 dlrun cv --engine stacked",
            dlrun_cv("configs/sonar_baseline.yaml", "stacked", 30, e, f"{tmp}/s30t"),
        )
        print(f"  ratios: sklearn/stacked {s / t:.1f}x")
    if "mammo" in cases:
        if not args.skip_slow:
            k, _ = run(
                "mammography 1x10 plain Keras loop",
                [PY, "benchmarks/workers.py", "keras", "mammography", "1", "10", str(e), "32"],
            )
        s, _ = run(
            "mammography 1x10 sklearn MLPClassifier n_jobs=-1",
            [PY, "benchmarks/workers.py", "sklearn", "mammography", "1", "10", str(e), "32"],
        )
        q, _ = run(
            "mammography 1x10 dlrun cv --engine sequential",
            dlrun_cv("configs/mammography_cv.yaml", "sequential", 1, e, f"{tmp}/mq"),
        )
        t, _ = run(
            "mammography 1x10 dlrun cv --engine stacked",
            dlrun_cv("configs/mammography_cv.yaml", "stacked", 1, e, f"{tmp}/mt"),
        )
        print(f"  ratios: sklearn/stacked {s / t:.1f}x  sequential/stacked {q / t:.1f}x")
    if "train" in cases:
        k, _ = run("mammography train: plain Keras tutorial script", [PY, "benchmarks/keras_mammography.py", str(e)])
        d, _ = run(
            "mammography train: dlrun train",
            [
                *DLRUN,
                "train",
                "configs/mammography.yaml",
                "--set",
                f"training.epochs={e}",
                "--log-every",
                "0",
                "--out",
                f"{tmp}/tr",
            ],
        )
        print(f"  ratio: keras/dlrun {k / d:.2f}x")


if __name__ == "__main__":
    main()
