"""``dlrun predict``: the saved model and preprocessing of a train run, applied to new rows.

Nothing from the run folder can execute code: the preprocessing is sealed JSON (its
scikit-learn objects through ``skops.io`` with an explicit list of trusted types), the model's
SHA-256 is checked against the one recorded beside it, and Keras loads it in safe mode. Every
check of the run folder and of the input CSV happens before Keras is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.errors import CorruptFileError, DataError, InputError
from dlrun.store import io as report


def load_bundle(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(preprocessing bundle, resolved spec)`` of a finished train run, verified; no Keras import.

    The bundle holds ``preprocessor`` (a fitted :class:`~dlrun.data.preprocessing.Preprocessor`),
    ``task``, ``data`` (feature/target names, classes) and ``model_sha256``.

    Raises:
        InputError: Not a train run folder.
        CorruptFileError: A file fails its checksum, is a pickle, or asks for an untrusted type.
    """
    from dlrun.data.preprocessing import preprocessor_from_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"RUN_DIR '{run_dir}' is not a folder; give a `dlrun train` run folder")
    report.refuse_legacy_pickles(run_dir)
    model_path = run_dir / report.MODEL
    bundle_path = run_dir / report.PREPROCESSOR
    if not model_path.exists() or not bundle_path.exists():
        raise InputError(
            f"RUN_DIR must be a finished `dlrun train` run with {report.MODEL} and {report.PREPROCESSOR}, "
            f"got '{run_dir}'"
        )
    try:
        bundle = json.loads(report.read_sealed(bundle_path))
        bundle["preprocessor"] = preprocessor_from_json(bundle["preprocessor"], bundle_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(bundle_path, f"is not a dlrun preprocessing file ({exc})") from None
    actual = report.sha256_file(model_path)
    if actual != bundle.get("model_sha256"):
        raise CorruptFileError(
            model_path,
            f"does not match the checksum recorded in {report.PREPROCESSOR} "
            f"(sha256 {actual[:12]}…, recorded {str(bundle.get('model_sha256'))[:12]}…); the model was changed",
        )
    try:
        spec = yaml.safe_load((run_dir / report.CONFIG).read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        spec = {}
    return bundle, spec


def load_model(run_dir: Path) -> Any:
    """The run's Keras model, loaded in safe mode (no arbitrary code from the file)."""
    import keras

    return keras.models.load_model(Path(run_dir) / report.MODEL, compile=False, safe_mode=True)


def load_run_model(run_dir: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(keras model, preprocessing bundle, resolved spec)`` of a finished train run."""
    bundle, spec = load_bundle(run_dir)
    return load_model(run_dir), bundle, spec


def read_rows(path: Path, meta: dict[str, Any], csv_opts: dict[str, Any]) -> pd.DataFrame:
    """Read rows in the training file's layout (target ignored) or as features only."""
    if not Path(path).is_file():
        raise InputError(f"input CSV not found: {path}")
    features: list[str] = meta["feature_names"]
    raw: list[str] | None = meta.get("raw_columns")
    try:
        df = pd.read_csv(path, sep=csv_opts.get("sep", ","), header=None, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"could not read {path} as CSV: {' '.join(str(exc).split())[:200]}") from None
    if df.empty:
        raise DataError(f"{path} has no rows to predict")
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
        raise DataError(f"{path} must be a CSV with {expect}{len(features)} feature columns, got {df.shape[1]} columns")
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks feature columns: {', '.join(missing[:8])}")
    out = df[features]
    numeric = set(meta.get("numeric_columns") or features)
    for c in features:
        if c in numeric and not pd.api.types.is_numeric_dtype(out[c]):
            values = pd.to_numeric(out[c], errors="coerce")
            bad = out[c][values.isna() & out[c].notna()]
            if len(bad):
                row = int(bad.index[0])
                raise DataError(
                    f"{path}: column '{c}' must be numeric, got {str(bad.iloc[0])[:40]!r} in data row {row + 1}"
                )
    return out


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(col)
    except (ValueError, TypeError):
        return col


def predict_file(run_dir: Path, input_csv: Path) -> pd.DataFrame:
    """Predictions for every row of ``input_csv``: ``pred`` (original labels/units) and class probabilities."""
    bundle, spec = load_bundle(run_dir)
    pre = bundle["preprocessor"]
    meta = {**bundle["data"], "numeric_columns": pre.numeric_columns_}
    rows = read_rows(input_csv, meta, (spec.get("data") or {}).get("csv") or {})
    x = pre.transform_x(rows)
    model = load_model(run_dir)  # the first Keras import: every input was checked before it
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
