"""Calibration study on dlrun's own engine: does the headline cover the truth across learners, data and designs?

Each row of the grid (learner × process × n × design) simulates many data sets of n rows from a known
process, cross-validates a dlrun spec on each exactly as ``dlrun cv`` does — ``dlrun.protocol.jobs``
(the data set's task, stratified folds, preprocessing fitted on each fold's training rows), the
stacked engine (every fold of every data set of a row in one ``engine.fit`` call, so hundreds of
models train in one program) and ``dlrun.evaluation.stats.summarize_metric`` — and checks the
headline against the truth: the procedure's expected score over training sets of the folds' size,
estimated from ``--truth-models`` models each trained on fresh rows and scored on ``--truth-rows``
fresh rows (also through the engine). ``benchmarks/calibration.py`` is the earlier study (its own
JAX loop, one learner, 200 rows) that chose the headline rule; this one checks it where it was not
chosen.

Grid (``--learners``/``--processes``/``--sizes``/``--designs`` pick a slice):

* learners: ``small_adam`` (Dense(16, relu), Adam 0.01, 30 epochs, batch 32), ``wide_sgd``
  (Dense(64)–Dense(64), SGD 0.01 with momentum 0.9, 100 epochs, batch 16), ``dropout``
  (Dense(32)–Dropout(0.3)–Dense(32)–Dropout(0.3), Adam 0.005, 50 epochs), ``conv1d`` (the features
  as a sequence: Reshape–Conv1D(8, 3)–Flatten, Adam 0.01, 30 epochs);
* processes: ``logistic`` (10 features, interactions; binary: accuracy, ROC AUC), ``noise30`` (30
  features of which 3 matter; binary), ``regression`` (10 features, y = x0 + sin(2·x1) + x2·x3 +
  noise; MAE, R²);
* n: 100, 200, 1,000; designs: 5-fold, 10-fold, 5×10, 10×10, 30×10.

The full product is not needed: :func:`default_rows` takes every learner on every process and design
at n = 200, n = 100 and 1,000 for ``small_adam`` and ``wide_sgd``, and 30×10 for those two only.

``python benchmarks/calibration_grid.py`` runs it (``--datasets`` per row, default 300) and writes
the ``grid`` section of ``benchmarks/calibration_results.json``; ``--quick`` trains a handful of
tiny models to check that the whole path works (a test runs it) and writes nothing unless ``--out``
is given; ``--estimate`` prints the number of models each row trains.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrun.data.preprocessing import Preprocessor
from dlrun.data.sources import Dataset
from dlrun.engines.base import FitJob, make_engine
from dlrun.engines.runtime import quiet_tensorflow
from dlrun.evaluation import stats
from dlrun.evaluation.scoring import score
from dlrun.protocol.jobs import make_job, prepare, score_fold
from dlrun.spec.schema import validate

RESULTS = Path(__file__).with_name("calibration_results.json")
DESIGNS: dict[str, tuple[int, int]] = {
    "5-fold": (5, 1),
    "10-fold": (10, 1),
    "5x10": (10, 5),
    "10x10": (10, 10),
    "30x10": (10, 30),
}
METRICS = {"binary": ["accuracy", "roc_auc"], "regression": ["mae", "r2"]}
PROCESS_FEATURES = {"logistic": 10, "noise30": 30, "regression": 10}


def _out(task: str) -> dict[str, Any]:
    return {"Dense": {"units": 1, "activation": "sigmoid" if task == "binary" else "linear"}}


def learner(name: str, task: str, n_features: int) -> dict[str, Any]:
    """The spec sections (model, compile, training) of a learner."""
    loss = "binary_crossentropy" if task == "binary" else "mse"
    adam = {"Adam": {"learning_rate": 0.01}}
    if name == "small_adam":
        layers, opt, epochs, batch = [{"Dense": {"units": 16, "activation": "relu"}}], adam, 30, 32
    elif name == "wide_sgd":
        layers = [{"Dense": {"units": 64, "activation": "relu"}}, {"Dense": {"units": 64, "activation": "relu"}}]
        opt, epochs, batch = {"SGD": {"learning_rate": 0.01, "momentum": 0.9}}, 100, 16
    elif name == "dropout":
        layers = [
            {"Dense": {"units": 32, "activation": "relu"}},
            {"Dropout": {"rate": 0.3}},
            {"Dense": {"units": 32, "activation": "relu"}},
            {"Dropout": {"rate": 0.3}},
        ]
        opt, epochs, batch = {"Adam": {"learning_rate": 0.005}}, 50, 32
    elif name == "conv1d":
        layers = [
            {"Reshape": {"target_shape": [n_features, 1]}},
            {"Conv1D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
            {"Flatten": {}},
        ]
        opt, epochs, batch = adam, 30, 32
    else:
        raise ValueError(f"unknown learner {name!r}")
    return {
        "model": {"layers": [*layers, _out(task)]},
        "compile": {"optimizer": opt, "loss": loss},
        "training": {"epochs": epochs, "batch_size": batch},
    }


def sample(process: str, rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.Series]:
    """``n`` rows of a process: features and target."""
    d = PROCESS_FEATURES[process]
    x = rng.standard_normal((n, d))
    if process == "logistic":
        eta = 0.8 * (x[:, 0] + x[:, 1] - x[:, 2] + 0.5 * x[:, 3]) + 0.9 * (
            x[:, 0] * x[:, 1] - x[:, 2] * x[:, 3] + x[:, 4] * x[:, 5]
        )
        y: np.ndarray = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    elif process == "noise30":
        eta = 1.2 * (x[:, 0] - x[:, 1]) + 0.8 * x[:, 2]
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    else:
        y = x[:, 0] + np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3] + rng.standard_normal(n)
    cols = [f"x{i}" for i in range(d)]
    return pd.DataFrame(x.astype(np.float32), columns=cols), pd.Series(y, name="y")


def task_of(process: str) -> str:
    return "regression" if process == "regression" else "binary"


def dataset(process: str, x: pd.DataFrame, y: pd.Series) -> Dataset:
    return Dataset(
        X=x,
        y=y.to_frame(),
        feature_names=list(x.columns),
        target_names=["y"],
        task=task_of(process),  # type: ignore[arg-type]
        task_inferred=False,
        description=f"simulated {process}",
    )


def spec_for(learner_name: str, process: str, design: str, seed: int, epochs: int | None = None) -> Any:
    """A validated dlrun spec for one row (the data section names a placeholder; rows are passed in)."""
    task = task_of(process)
    k, r = DESIGNS[design]
    sections = learner(learner_name, task, PROCESS_FEATURES[process])
    if epochs is not None:
        sections["training"]["epochs"] = epochs
    raw = {
        "name": f"calibration_{learner_name}_{process}",
        "seed": seed,
        "data": {"source": "sonar", "target": "class", "task": task},
        "preprocessing": {"scaling": "standard"},
        **sections,
        "evaluation": {
            "mode": "repeated_kfold" if r > 1 else "kfold",
            "folds": k,
            "repeats": r,
            "metrics": METRICS[task],
            "split_seed": seed,
        },
        "runtime": {"engine": "stacked"},
    }
    return validate(raw)


@dataclass(frozen=True)
class Row:
    learner: str
    process: str
    n: int
    design: str


def default_rows() -> list[Row]:
    """The grid: every learner at n = 200; n = 100, 1,000 and 30×10 for two learners."""
    rows = []
    for lrn in ("small_adam", "wide_sgd", "dropout", "conv1d"):
        for proc in PROCESS_FEATURES:
            for n in (100, 200, 1000):
                for design in DESIGNS:
                    two = lrn in ("small_adam", "wide_sgd")
                    if (n != 200 or design == "30x10") and not two:
                        continue
                    rows.append(Row(lrn, proc, n, design))
    return rows


def _fit(spec: Any, task: str, input_shape: tuple[int, ...], n_outputs: int, jobs: list[FitJob]) -> list[Any]:
    """Train every job in one engine call; results in job order."""
    engine = make_engine("stacked", spec, task, input_shape, n_outputs)
    by_key = {(r.repeat, r.fold): r for r in engine.fit(jobs)}
    return [by_key[(j.repeat, j.fold)] for j in jobs]


def _truth_jobs(
    row: Row, spec: Any, rng: np.random.Generator, n_train: int, models: int, rows: int, first: int
) -> tuple[list[FitJob], list[Preprocessor], pd.Series]:
    """Jobs estimating the procedure's expected score over training sets of ``n_train`` rows: each
    model trains on fresh rows and is scored on the same ``rows`` fresh rows."""
    task = task_of(row.process)
    classes = np.array([0, 1]) if task == "binary" else None
    x_te, y_te = sample(row.process, rng, rows)
    jobs, pres = [], []
    for m in range(models):
        x, y = sample(row.process, rng, n_train)
        pre = Preprocessor(spec.preprocessing, task).fit(x, y.to_frame(), classes=classes)
        x_tr, y_tr = pre.transform_x(x), pre.transform_y(y.to_frame())
        jobs.append(
            FitJob(
                repeat=first + m,
                fold=0,
                seed=int(rng.integers(2**31)),
                x_train=x_tr,
                y_train=y_tr,
                x_test=pre.transform_x(x_te),
            )
        )
        pres.append(pre)
    return jobs, pres, y_te


def _truth(task: str, results: list[Any], pres: list[Preprocessor], y_te: pd.Series) -> dict[str, float]:
    classes = np.array([0, 1]) if task == "binary" else None
    scores: dict[str, list[float]] = {m: [] for m in METRICS[task]}
    for res, pre in zip(results, pres, strict=True):
        pred, proba = pre.decode(res.test_pred)
        for k, v in score(task, y_te.to_numpy(), pred, proba, METRICS[task], classes).items():
            scores[k].append(float(v))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def cross_validate(
    row: Row, datasets: int, seed: int, epochs: int | None, truth_models: int, truth_rows: int
) -> tuple[list[dict[str, Any]], dict[str, float], float, float]:
    """Every data set's ``summarize_metric`` blocks per metric, the truth, and the mean fold sizes.

    The folds of every data set and the truth's models train in one engine call.
    """
    rng = np.random.default_rng(seed)
    spec = spec_for(row.learner, row.process, row.design, seed, epochs)
    task = task_of(row.process)
    _, r = DESIGNS[row.design]
    preps, jobs, owners = [], [], []
    for i in range(datasets):
        x, y = sample(row.process, rng, row.n)
        prep = prepare(spec, data=dataset(row.process, x, y))
        preps.append(prep)
        for fold in prep.folds:
            job, pre = make_job(prep, fold)
            job = replace(job, repeat=i * r + fold.repeat)  # one engine call holds every data set's folds
            jobs.append(job)
            owners.append((i, fold, pre))
    n_train_mean = float(np.mean([len(f.train) for p in preps for f in p.folds]))
    t_jobs, t_pres, y_te = _truth_jobs(row, spec, rng, int(round(n_train_mean)), truth_models, truth_rows, datasets * r)
    results = _fit(spec, task, preps[0].input_shape, preps[0].n_outputs, jobs + t_jobs)
    true = _truth(task, results[len(jobs) :], t_pres, y_te)
    rows_by_set: list[list[dict[str, Any]]] = [[] for _ in range(datasets)]
    for (i, fold, pre), res in zip(owners, results[: len(jobs)], strict=True):
        res = replace(res, repeat=fold.repeat)
        rows_by_set[i].append(score_fold(preps[i], fold, pre, res)["scores"])
    out = []
    n_train = n_test = 0.0
    for part in rows_by_set:
        table = pd.DataFrame(part)
        n_train, n_test = float(table["n_train"].mean()), float(table["n_test"].mean())
        mode = "repeated_kfold" if r > 1 else "kfold"
        out.append(
            {
                m: stats.summarize_metric(
                    table, m, repeats=r, n_train=n_train, n_test=n_test, confidence=0.95, mode=mode
                )
                for m in METRICS[task]
            }
        )
    return out, true, n_train, n_test


def _wilson(k: int, n: int) -> tuple[float, float]:
    lo, hi = sps.binomtest(k, n).proportion_ci(method="wilson")
    return float(lo), float(hi)


def run_row(
    row: Row, datasets: int, seed: int, truth_models: int, truth_rows: int, epochs: int | None
) -> list[dict[str, Any]]:
    """Coverage of the truth by the headline for each metric of one grid row."""
    start = time.perf_counter()
    blocks, true, n_train, n_test = cross_validate(row, datasets, seed, epochs, truth_models, truth_rows)
    out = []
    for metric, value in true.items():
        heads = [b[metric]["corrected"] for b in blocks]
        hit = sum(h["ci_low"] is not None and h["ci_low"] <= value <= h["ci_high"] for h in heads)
        lo, hi = _wilson(hit, len(heads))
        k, r = DESIGNS[row.design]
        out.append(
            {
                "learner": row.learner,
                "process": row.process,
                "n": row.n,
                "design": row.design,
                "metric": metric,
                "truth": value,
                "coverage": hit / len(heads),
                "cov_low": lo,
                "cov_high": hi,
                "mean_width": float(np.mean([h["ci_high"] - h["ci_low"] for h in heads if h["ci_low"] is not None])),
                "studied": stats.studied(k, r),
                "datasets": len(heads),
                "n_train": n_train,
                "n_test": n_test,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return out


def models_per_row(row: Row, datasets: int, truth_models: int) -> int:
    k, r = DESIGNS[row.design]
    return datasets * k * r + truth_models


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny: 3 data sets, 2 epochs, one row; writes nothing")
    ap.add_argument("--datasets", type=int, default=300)
    ap.add_argument("--truth-models", type=int, default=200)
    ap.add_argument("--truth-rows", type=int, default=20_000)
    ap.add_argument("--learners", nargs="*", default=None)
    ap.add_argument("--processes", nargs="*", default=None)
    ap.add_argument("--sizes", nargs="*", type=int, default=None)
    ap.add_argument("--designs", nargs="*", default=None)
    ap.add_argument("--epochs", type=int, default=None, help="override every learner's epochs (for trials)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--estimate", action="store_true", help="print the models each row trains and stop")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    quiet_tensorflow()  # Keras on JAX, as the CLI runs it, before anything imports Keras
    rows = default_rows()
    if args.quick:
        rows = [Row("small_adam", "logistic", 60, "5-fold")]
        args.datasets, args.truth_models, args.truth_rows, args.epochs = 3, 3, 400, args.epochs or 2
    for attr, field in (("learners", "learner"), ("processes", "process"), ("sizes", "n"), ("designs", "design")):
        keep = getattr(args, attr)
        if keep:
            rows = [r for r in rows if getattr(r, field) in keep]
    if args.estimate:
        total = 0
        for r in rows:
            m = models_per_row(r, args.datasets, args.truth_models)
            total += m
            print(f"{r.learner:<11} {r.process:<10} n={r.n:<5} {r.design:<7} {m:>7} models")
        print(f"{len(rows)} rows, {total:,} models")
        return {"rows": [], "models": total}
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        results += run_row(row, args.datasets, args.seed + 1000 * i, args.truth_models, args.truth_rows, args.epochs)
        for res in results[-len(METRICS[task_of(row.process)]) :]:
            print(
                f"{res['learner']:<11} {res['process']:<10} n={res['n']:<5} {res['design']:<7} {res['metric']:<9} "
                f"coverage {res['coverage']:.3f} ({res['cov_low']:.3f}-{res['cov_high']:.3f}) {res['seconds']}s",
                flush=True,
            )
    section = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "datasets": args.datasets,
        "truth_models": args.truth_models,
        "truth_rows": args.truth_rows,
        "epochs_override": args.epochs,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": results,
    }
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        data = json.loads(out.read_text()) if out.is_file() else {}
        data["grid"] = section
        out.write_text(json.dumps(data, indent=1) + "\n")
    return section


if __name__ == "__main__":
    main()
