"""Loading the rows a spec names: named public sets, CSV files and URLs, scikit-learn sets,
generators and Keras images.

Every loader returns a :class:`~dlrun.data.dataset.Dataset` with the features, the target column(s)
in their ORIGINAL form (labels as read, e.g. ``'M'``/``'R'`` or ``"'-1'"``) and the task. Nothing here
scales or encodes anything: that is :mod:`dlrun.data.preprocessing`'s job, fitted on training rows only.

Keras is imported only inside the Keras loader, so ``dlrun validate`` and ``dlrun datasets`` stay
fast and work without it.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.data.dataset import Dataset, TaskName
from dlrun.data.registry import DATA_DIR_ENV, data_dir, lookup, resolve_named, sha256_of
from dlrun.data.task import MAX_AUTO_CLASSES, decide_task, some_values
from dlrun.errors import DataError
from dlrun.spec.dotted import suggest
from dlrun.spec.models import DataSpec


def _resolve_column(ref: int | str, columns: list[str], what: str, source: str) -> str:
    """Map a column reference (name, or integer index with -1 = last) to a column name."""
    if isinstance(ref, bool):
        raise DataError(f"{what} must be a column name or index, got {ref!r}")
    if isinstance(ref, int):
        n = len(columns)
        if not -n <= ref < n:
            raise DataError(
                f"{what} index {ref} is out of range: {source} has {n} columns (indices 0..{n - 1}, or -1 for "
                "the last); fix the index or use a column name."
            )
        return columns[ref]
    if ref in columns:
        return ref
    shown = ", ".join(columns[:30]) + (f", … ({len(columns)} in all)" if len(columns) > 30 else "")
    raise DataError(
        f"{what} column '{ref}' not found in {source}{suggest(str(ref), columns)}; available columns: {shown}"
    )


def _split_frame(
    df: pd.DataFrame, spec: DataSpec, default_target: list[str], source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a table into features (n, n_features) and targets (n, n_targets) per data.target / data.drop."""
    df = df.rename(columns=str)
    columns = list(df.columns)
    if spec.target is None:
        refs: list[int | str] = list(default_target)
    elif isinstance(spec.target, list):
        refs = list(spec.target)
    else:
        refs = [spec.target]
    if not refs:
        raise DataError("data.target is an empty list; name at least one target column")
    targets = list(dict.fromkeys(_resolve_column(r, columns, "data.target", source) for r in refs))
    dropped = list(dict.fromkeys(_resolve_column(r, columns, "data.drop", source) for r in spec.drop))
    both = [c for c in dropped if c in targets]
    if both:
        raise DataError(f"column(s) {', '.join(both)} are both the target and in data.drop; remove them from one")
    features = [c for c in columns if c not in targets and c not in dropped]
    if not features:
        raise DataError(f"no feature columns are left in {source} after taking the target and data.drop")
    y = df[targets].copy()
    missing = y.isna().any(axis=1)
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        raise DataError(
            f"the target {', '.join(targets)} is missing in {len(rows)} row(s) of {source} (rows "
            f"{some_values(rows.tolist())}, counting from 0); remove those rows or choose another data.target"
        )
    return df[features].copy(), y


def _subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Row indices of a uniform random subset (no stratification), kept in file order; None = all rows."""
    if max_rows is None or max_rows >= n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def _looks_like_data(columns: list[Any]) -> bool:
    """Whether header names read from a file's first row are all numbers (so the row was data)."""

    def number(text: Any) -> bool:
        try:
            float(str(text).strip().strip("'\""))
        except ValueError:
            return False
        return True

    names = [c for c in columns if not str(c).startswith("Unnamed:")]
    return bool(names) and sum(number(c) for c in names) >= max(2, len(names) - 1)


def _read_csv(source: str, spec: DataSpec) -> pd.DataFrame:
    remote = source.startswith(("http://", "https://"))
    if not remote and not source.startswith("file://") and not Path(source).expanduser().is_file():
        raise DataError(
            f"CSV file not found: {source} (resolved to {Path(source).expanduser().resolve()}); check data.source "
            "(a relative path is read from the config's folder when the file is there, else from the current folder)"
        )
    opts = spec.csv
    try:
        return pd.read_csv(
            source if remote or source.startswith("file://") else Path(source).expanduser(),
            header=opts.header,
            sep=opts.sep,
            names=opts.names,
            na_values=opts.na_values,
            skipinitialspace=True,
        )
    except (urllib.error.URLError, TimeoutError) as exc:
        raise DataError(
            f"could not download {source} ({getattr(exc, 'reason', exc)}); a URL source needs network access. "
            "Download the file and point data.source at the local copy."
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(
            f"could not read {source} as CSV: {exc}; check data.csv (sep: {opts.sep!r}, header: {opts.header!r})"
        ) from None


def _check_subset_classes(full: pd.DataFrame, y: pd.DataFrame, spec: DataSpec, default_target: list[str]) -> None:
    """``max_rows`` must not drop a class: a multiclass task would silently turn binary."""
    if y.shape[1] != 1:
        return
    _, y_full = _split_frame(full, spec, default_target, _source_label(spec))
    col_full, col = y_full.iloc[:, 0], y.iloc[:, 0]
    n_full = col_full.nunique()
    numeric = pd.api.types.is_numeric_dtype(col_full) and not pd.api.types.is_bool_dtype(col_full)
    if (numeric and n_full > MAX_AUTO_CLASSES) or (numeric and pd.api.types.is_float_dtype(col_full)):
        return  # a quantity, not classes
    lost = sorted(set(col_full.unique().tolist()) - set(col.unique().tolist()), key=str)
    if lost:
        raise DataError(
            f"data.max_rows {spec.max_rows} keeps {len(col)} of {len(col_full)} rows and drops every row of class(es) "
            f"{some_values(lost)} ({n_full} classes in all); raise max_rows or remove it"
        )


def _load_table(spec: DataSpec) -> tuple[pd.DataFrame, list[str], str, TaskName | None]:
    """Read the whole source table: (frame, default target columns, description, registry task)."""
    kind = spec.kind
    if kind == "named":
        entry = lookup(spec.source)
        path = resolve_named(spec.source)
        df = pd.read_csv(path, header=None, names=entry.columns)
        return df, [entry.target], entry.description, entry.task
    if kind == "csv":
        df = _read_csv(spec.source, spec)
        if df.empty:
            raise DataError(
                f"{spec.source} has no data rows (only {'a header' if df.shape[1] else 'nothing'}); "
                "check data.source, or data.csv.header if the file's only row is data"
            )
        if spec.csv.header == "infer" and spec.csv.names is None and _looks_like_data(list(df.columns)):
            shown = ", ".join(str(c) for c in list(df.columns)[:4])
            raise DataError(
                f"the first row of {spec.source} looks like data, not column names ({shown}, …), and data.csv.header "
                "is 'infer', so it would be read as the header and lost; set data.csv.header: null (columns are then "
                "numbered; name them with data.csv.names)"
            )
        if df.shape[1] < 2:
            raise DataError(
                f"{spec.source} was read as {df.shape[1]} column(s); a dataset needs features and a target. "
                f"Is data.csv.sep right (now {spec.csv.sep!r})?"
            )
        df = df.rename(columns=str)
        return df, [str(df.columns[-1])], f"CSV {spec.source} ({len(df)} rows, {df.shape[1]} columns)", None
    if kind == "sklearn":
        return _load_sklearn(spec.source.partition(":")[2])
    if kind == "synthetic":
        return _load_synthetic(spec)
    raise DataError(f"cannot read data.source '{spec.source}' as a table")  # pragma: no cover


def _load_sklearn(name: str) -> tuple[pd.DataFrame, list[str], str, TaskName | None]:
    from sklearn import datasets as skd

    loaders = {
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
        "iris": skd.load_iris,
        "diabetes": skd.load_diabetes,
        "digits": skd.load_digits,
        "linnerud": skd.load_linnerud,
    }
    if name not in loaders:
        raise DataError(
            f"unknown scikit-learn dataset '{name}'{suggest(name, list(loaders))}; known: {', '.join(loaders)}"
        )
    bunch = loaders[name](as_frame=True)
    target = bunch.target
    targets = [str(c) for c in target.columns] if isinstance(target, pd.DataFrame) else [str(target.name)]
    descr = str(getattr(bunch, "DESCR", "") or "")
    # DESCR opens with an RST label (".. _x:") and then the title line
    first = next((ln.strip() for ln in descr.splitlines() if ln.strip(" =-*") and not ln.startswith("..")), name)
    return bunch.frame, targets, f"scikit-learn {name}: {first}", None


def _load_synthetic(spec: DataSpec) -> tuple[pd.DataFrame, list[str], str, TaskName | None]:
    from sklearn import datasets as skd

    params = dict(spec.params)
    generator = skd.make_regression if spec.source == "make_regression" else skd.make_classification
    try:
        X, y = generator(**params)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{spec.source} rejected data.params {params}: {exc}; see the scikit-learn docs of "
            f"sklearn.datasets.{spec.source} for valid arguments"
        ) from None
    y2 = np.asarray(y).reshape(len(X), -1)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    targets = [f"y{j}" for j in range(y2.shape[1])]
    for j, name in enumerate(targets):
        frame[name] = y2[:, j]
    desc = f"{spec.source}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    return frame, targets, desc, None


#: Keras' own files that dlrun reads itself (``np.load``, no pickles) from ``DLRUN_DATA_DIR`` before
#: asking Keras to download: name -> (file name, SHA-256 Keras checks the download against).
KERAS_FILES: dict[str, tuple[str, str]] = {
    "mnist": ("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
}


def _keras_local(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(x_train, y_train, x_test, y_test)`` from Keras' own file in ``DLRUN_DATA_DIR``, or None if absent.

    Raises:
        DataError: The file fails Keras' checksum or lacks the four arrays.
    """
    local = data_dir()
    if local is None or name not in KERAS_FILES:
        return None
    filename, sha256 = KERAS_FILES[name]
    path = local / filename
    if not path.is_file():
        return None
    actual = sha256_of(path)
    if actual != sha256:
        raise DataError(
            f"checksum mismatch for {filename} at {path}: expected Keras' sha256 {sha256}, got {actual}; the file is "
            f"corrupt or not Keras' {filename}. Replace it, or unset {DATA_DIR_ENV} to let Keras download it."
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            x_train, y_train, x_test, y_test = (np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(
            f"{path} must be Keras' {filename}: an .npz with arrays x_train, y_train, x_test, y_test; "
            f"reading it failed: {exc}"
        ) from None
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{path} must hold as many labels as images and images of one shape; got x_train {x_train.shape}, "
            f"y_train {y_train.shape}, x_test {x_test.shape}, y_test {y_test.shape}"
        )
    return x_train, y_train, x_test, y_test


def _load_keras(spec: DataSpec, seed: int) -> Dataset:
    name = spec.source.partition(":")[2]
    if spec.drop:
        raise DataError(f"data.drop does not apply to the image set keras:{name}; remove it")
    if spec.target not in (None, "label", 0, -1, ["label"]):
        raise DataError(f"keras:{name} has one target column 'label'; remove data.target (got {spec.target!r})")
    local = _keras_local(name)
    where = f"{data_dir()}/{KERAS_FILES[name][0]}" if local is not None else "keras.datasets"
    if local is not None:
        x_train, y_train, x_test, y_test = local
    else:
        import keras  # deferred: only image runs pay for importing the framework

        module = getattr(keras.datasets, name, None)
        if module is None:
            raise DataError(f"keras.datasets has no '{name}'; use one of mnist, fashion_mnist, cifar10")
        try:
            (x_train, y_train), (x_test, y_test) = module.load_data()
        except Exception as exc:  # Keras reports fetch failures as a bare Exception
            own = f" or put Keras' {KERAS_FILES[name][0]} in {DATA_DIR_ENV}" if name in KERAS_FILES else ""
            raise DataError(
                f"could not load keras:{name} ({exc}); the first use downloads it and needs network access. "
                f"Run once on a connected machine to fill ~/.keras/datasets{own}, or use a local CSV instead."
            ) from None
    n_train = len(x_train)
    X = np.concatenate([x_train, x_test])
    labels = np.concatenate([np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)])
    is_test = np.arange(len(X)) >= n_train
    keep = _subsample(len(X), spec.max_rows, seed)
    if keep is not None:
        X, labels, is_test = X[keep], labels[keep], is_test[keep]
    y = pd.DataFrame({"label": labels})
    task, inferred = decide_task(y, spec, None)
    return Dataset(
        X=X,
        y=y,
        feature_names=[],
        target_names=["label"],
        task=task,
        task_inferred=inferred,
        description=(
            f"keras {name} from {where}: {len(X)} images of shape {X.shape[1:]} "
            f"({int((~is_test).sum())} training then {int(is_test.sum())} test)"
        ),
        raw_columns=None,
        test_rows=np.flatnonzero(is_test),
    )


def load_dataset(spec: DataSpec, seed: int = 0) -> Dataset:
    """Load the data a spec names, choose the target column(s) and the task.

    ``max_rows`` keeps a uniform random subset of that many rows (no stratification), drawn with
    ``seed`` and kept in source order, so the same seed always gives the same rows.

    Args:
        spec: The ``data`` section.
        seed: Seed for the ``max_rows`` subset and the default ``random_state`` of generators.

    Returns:
        The dataset with features (n_rows, n_features) or images (n, h, w[, c]) and the ORIGINAL
        target values (n_rows, n_targets).

    Raises:
        DataError: The source cannot be found or read, a column does not exist, or the task does
            not fit the target.
    """
    if spec.kind == "keras":
        return _load_keras(spec, seed)
    if spec.kind == "synthetic" and "random_state" not in spec.params:
        spec = spec.model_copy(update={"params": {**spec.params, "random_state": seed}})
    df, default_target, description, registry_task = _load_table(spec)
    df = df.rename(columns=str)
    raw_columns = list(df.columns)
    keep = _subsample(len(df), spec.max_rows, seed)
    full = df
    if keep is not None:
        df = df.iloc[keep].reset_index(drop=True)
    X, y = _split_frame(df, spec, default_target, _source_label(spec))
    if keep is not None:
        _check_subset_classes(full, y, spec, default_target)
    # The registry's task describes the registry's target; another target must be inferred afresh.
    if registry_task is not None and list(y.columns) != default_target:
        registry_task = None
    task, inferred = decide_task(y, spec, registry_task)
    return Dataset(
        X=X,
        y=y,
        feature_names=list(X.columns),
        target_names=list(y.columns),
        task=task,
        task_inferred=inferred,
        description=description,
        raw_columns=raw_columns,
    )


def _source_label(spec: DataSpec) -> str:
    return f"'{spec.source}'"
