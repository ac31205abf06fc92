"""``dlrun predict``: the saved model and preprocessing of a train run, applied to new rows.

Nothing from the run folder can execute code: the preprocessing is sealed JSON (its
scikit-learn objects through ``skops.io`` with an explicit list of trusted types), the model's
SHA-256 is checked against the one recorded beside it, and Keras loads it in safe mode. Every
check of the run folder and of the input CSV happens before Keras is imported.
"""

from __future__ import annotations

import json
import re
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


# Files that are plainly not a table of rows (a spec given in place of the rows, say), by suffix.
_NOT_TABLES = {
    ".yaml": "a YAML file",
    ".yml": "a YAML file",
    ".json": "a JSON file",
    ".jsonl": "a JSON Lines file",
    ".toml": "a TOML file",
    ".parquet": "a Parquet file",
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".pkl": "a pickle",
    ".pickle": "a pickle",
    ".npy": "a NumPy array",
    ".npz": "a NumPy archive",
    ".keras": "a Keras model",
    ".h5": "an HDF5 file",
}


def _names(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", … ({len(columns) - limit} more)" if len(columns) > limit else "")


def _not_rows(path: Path, what: str, features: list[str]) -> DataError:
    return DataError(
        f"{path} is not a CSV of rows ({what}); give a CSV whose columns are the {len(features)} features "
        f"{_names(features)} (a header row naming them is optional), as in the training file"
    )


def _looks_like_yaml_or_json(path: Path) -> str | None:
    """``'a YAML file'``/``'a JSON file'`` when the text reads as one, else None."""
    try:
        text = Path(path).read_text(errors="replace")[:20_000]
    except OSError:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return None
    if lines[0].lstrip()[:1] in ("{", "["):
        return "a JSON file"
    keyed = sum(1 for ln in lines if re.match(r"^\s*(- )?[\w.\-\[\]]+:(\s|$)", ln))
    return "a YAML file" if keyed >= max(1, len(lines) // 2) else None


def _binary(path: Path) -> str | None:
    """``'a binary file'`` when the file's start holds a NUL byte (no text table does), else None."""
    with open(path, "rb") as fh:
        return "a binary file" if b"\0" in fh.read(8192) else None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def read_rows(path: Path, meta: dict[str, Any], csv_opts: dict[str, Any]) -> pd.DataFrame:
    """Read rows in the training file's layout (target ignored) or as features only.

    Raises:
        InputError: The file does not exist.
        DataError: Not a CSV of rows (a YAML/JSON/binary file: the message lists the columns
            expected), a header row that lacks feature columns (named, with the unexpected
            ones), a column count that fits no layout, or a non-numeric value in a numeric column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input CSV not found: {path}")
    features: list[str] = meta["feature_names"]
    raw: list[str] | None = meta.get("raw_columns")
    targets: list[str] = list(meta.get("target_names") or [])
    kind = _NOT_TABLES.get(path.suffix.lower()) or _binary(path)
    if kind:
        raise _not_rows(path, kind, features)
    try:
        df = pd.read_csv(path, sep=csv_opts.get("sep", ","), header=None, skipinitialspace=True)
    except UnicodeDecodeError:
        raise _not_rows(path, "a binary file", features) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        kind = _looks_like_yaml_or_json(path)
        if kind:
            raise _not_rows(path, kind, features) from None
        raise DataError(f"could not read {path} as CSV: {' '.join(str(exc).split())[:200]}") from None
    if df.empty:
        raise DataError(f"{path} has no rows to predict")
    first = [str(v).strip() for v in df.iloc[0].tolist()]
    known = set(features) | set(raw or [])
    named = set(first) & known
    text_only = not any(_is_number(v) for v in first if v and v != "nan")
    if set(features) <= set(first) or (raw and set(first) >= set(raw) - set(targets)):
        df.columns = first
        df = df.iloc[1:].reset_index(drop=True)
        df = df.apply(_numeric_if_possible)
    elif named or (text_only and len(df) > 1 and any(_is_number(str(v)) for v in df.iloc[1].tolist())):
        missing = [c for c in features if c not in first]
        unexpected = [c for c in first if c not in known]
        extra = f"; unexpected column(s): {_names(unexpected)}" if unexpected else ""
        raise DataError(
            f"{path} has a header row but lacks feature column(s): {_names(missing)}{extra}; "
            f"expected the columns {_names(features)}"
        )
    elif raw and df.shape[1] == len(raw):
        df.columns = raw
    elif df.shape[1] == len(features):
        df.columns = features
    else:
        kind = _looks_like_yaml_or_json(path)
        if kind:
            raise _not_rows(path, kind, features)
        expect = f"{len(raw)} columns (training layout) or " if raw else ""
        raise DataError(
            f"{path} must be a CSV with {expect}{len(features)} feature columns ({_names(features)}), "
            f"got {df.shape[1]} columns"
        )
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
