"""``dlrun predict``: the saved model and preprocessing of a train run, applied to new rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun import report
from dlrun.errors import DataError, InputError


def load_run_model(run_dir: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(keras model, preprocessing bundle, resolved spec)`` of a finished train run."""
    run_dir = Path(run_dir)
    model_path = run_dir / report.MODEL
    bundle_path = run_dir / report.PREPROCESSOR
    if not model_path.exists() or not bundle_path.exists():
        raise InputError(
            f"RUN_DIR must be a finished `dlrun train` run with {report.MODEL} and {report.PREPROCESSOR}, "
            f"got '{run_dir}'"
        )
    import keras

    model = keras.models.load_model(model_path, compile=False)
    bundle = report.read_pickle(bundle_path)
    spec = yaml.safe_load((run_dir / report.CONFIG).read_text())
    return model, bundle, spec


def read_rows(path: Path, meta: dict[str, Any], csv_opts: dict[str, Any]) -> pd.DataFrame:
    """Read rows in the training file's layout (target ignored) or as features only."""
    if not Path(path).is_file():
        raise InputError(f"input CSV not found: {path}")
    features: list[str] = meta["feature_names"]
    raw: list[str] | None = meta.get("raw_columns")
    df = pd.read_csv(path, sep=csv_opts.get("sep", ","), header=None, skipinitialspace=True)
    first = [str(v).strip() for v in df.iloc[0].tolist()]
    if set(features) <= set(first) or (raw and set(first) >= set(raw) - set(meta["target_names"])):
        df.columns = first
        df = df.iloc[1:].reset_index(drop=True)
        df = df.apply(_numeric_if_possible)
    elif raw and df.shape[1] == len(raw):
        df.columns = raw
    elif df.shape[1] == len(features):
        df.columns = features
    else:
        expect = f"{len(raw)} columns (training layout) or " if raw else ""
        raise DataError(f"input CSV must have {expect}{len(features)} feature columns, got {df.shape[1]} columns")
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"input CSV lacks feature columns: {', '.join(missing[:8])}")
    return df[features]


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(col)
    except (ValueError, TypeError):
        return col


def predict_file(run_dir: Path, input_csv: Path) -> pd.DataFrame:
    """Predictions for every row of ``input_csv``: ``pred`` (original labels/units) and class probabilities."""
    model, bundle, spec = load_run_model(run_dir)
    pre = bundle["preprocessor"]
    meta = bundle["data"]
    rows = read_rows(input_csv, meta, (spec.get("data") or {}).get("csv") or {})
    x = pre.transform_x(rows)
    raw = np.asarray(model.predict(x, batch_size=1024, verbose=0))
    pred, proba = pre.decode(raw)
    out = pd.DataFrame(index=range(len(rows)))
    names = meta["target_names"]
    pred2 = np.asarray(pred).reshape(len(rows), -1)
    for j, name in enumerate(names):
        out[f"pred_{name}" if len(names) > 1 else "pred"] = pred2[:, j]
    if proba is not None and meta.get("classes") is not None:
        for j, c in enumerate(meta["classes"]):
            out[f"proba_{c}"] = proba[:, j]
    return out
