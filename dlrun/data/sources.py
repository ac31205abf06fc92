"""Data loading: named public sets, CSV files and URLs, scikit-learn sets, generators and Keras images.

Every loader returns a :class:`Dataset` with the features, the target column(s) in their
ORIGINAL form (labels as read, e.g. ``'M'``/``'R'`` or ``"'-1'"``) and the task. Nothing here
scales or encodes anything: that is :mod:`dlrun.data.preprocessing`'s job, fitted on training rows only.

TensorFlow/Keras is imported only inside the Keras loader, so ``dlrun validate`` and
``dlrun datasets`` stay fast and work without it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from dlrun.errors import DataError
from dlrun.spec.dotted import suggest
from dlrun.spec.schema import DataSpec

TaskName = Literal["binary", "multiclass", "regression"]

BASE_URL = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"
DATA_DIR_ENV = "DLRUN_DATA_DIR"
CACHE_DIR_ENV = "DLRUN_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30.0
# More distinct integer values than this and an integer target is taken as a quantity, not a class.
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class NamedDataset:
    """One public CSV set the classic Keras tutorials use.

    Attributes:
        name: The name used in specs (``data.source: sonar``).
        filename: The file name in the mirror, in ``DLRUN_DATA_DIR`` and in the cache.
        url: Where to download it.
        sha256: The checksum every copy must match before it is used.
        task: The task the set is usually learned as.
        rows: Number of rows.
        n_features: Number of feature columns.
        columns: All column names in file order, target included (the files have no header row).
        target: The default target column name.
        description: One line about the set.
    """

    name: str
    filename: str
    url: str
    sha256: str
    task: TaskName
    rows: int
    n_features: int
    columns: list[str]
    target: str
    description: str


def _named(
    name: str,
    filename: str,
    sha256: str,
    task: TaskName,
    rows: int,
    features: list[str],
    target: str,
    description: str,
) -> NamedDataset:
    return NamedDataset(
        name=name,
        filename=filename,
        url=BASE_URL + filename,
        sha256=sha256,
        task=task,
        rows=rows,
        n_features=len(features),
        columns=[*features, target],
        target=target,
        description=description,
    )


_WINE_FEATURES = [
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "residual_sugar",
    "chlorides",
    "free_sulfur_dioxide",
    "total_sulfur_dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]

NAMED: dict[str, NamedDataset] = {
    d.name: d
    for d in (
        _named(
            "sonar",
            "sonar.csv",
            "3079c09b5d2789a0f96aff82c28e5164fafe2495c5f8da96c6c256c1bd25763f",
            "binary",
            208,
            [f"band_{i:02d}" for i in range(1, 61)],
            "class",
            "Sonar returns from metal cylinders (M) vs rocks (R): 60 band energies in [0, 1].",
        ),
        _named(
            "pima",
            "pima-indians-diabetes.csv",
            "6bfe5d0f379d17a0e0819b996407e3c09bf80febd4287f2ed212190dfff154af",
            "binary",
            768,
            [
                "pregnancies",
                "glucose",
                "blood_pressure",
                "skin_thickness",
                "insulin",
                "bmi",
                "diabetes_pedigree",
                "age",
            ],
            "class",
            "Pima Indians diabetes onset within five years (1) or not (0) from 8 medical measurements.",
        ),
        _named(
            "wine-quality-red",
            "winequality-red.csv",
            "c9614512e980f1cbd221c796daa97f00c4898c3cd1716863abac60f6cd1a522e",
            "regression",
            1599,
            _WINE_FEATURES,
            "quality",
            "Red vinho verde quality score (3..8) from 11 physicochemical measurements.",
        ),
        _named(
            "wine-quality-white",
            "winequality-white.csv",
            "659d419fff887f225bf977d20520bb64a64cae203e460087f809721d4430ba27",
            "regression",
            4898,
            _WINE_FEATURES,
            "quality",
            "White vinho verde quality score (3..9) from 11 physicochemical measurements.",
        ),
        _named(
            "mammography",
            "mammography.csv",
            "7d3dea3f075f30bbdbb8980e7725684059b4fe3d0f850fadd0f635f6993d8730",
            "binary",
            11183,
            [f"f{i}" for i in range(1, 7)],
            "class",
            "Microcalcifications in mammograms: labels '1' (260) vs '-1' (10923), quotes included; imbalanced.",
        ),
        _named(
            "housing",
            "housing.csv",
            "2682ca02e83b89467d7d0cdcbde7c0cc4d2566119be8ce8d84dad4f0fa20859a",
            "regression",
            506,
            ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"],
            "MEDV",
            "Boston housing: median home value MEDV (1000s USD) from 13 suburb attributes.",
        ),
        _named(
            "ionosphere",
            "ionosphere.csv",
            "fd6dd7864b55d56dac0a1e6e24af9ccc35bf2555ac79af8ab9f3d1daa065ab83",
            "binary",
            351,
            [f"a{i:02d}" for i in range(1, 35)],
            "class",
            "Radar returns from the ionosphere: good (g) vs bad (b) from 34 pulse attributes.",
        ),
        _named(
            "iris",
            "iris.csv",
            "f5d0c11e5c78a69a20dbb80baf2b24703f59a6687595752abb397d23732647c5",
            "multiclass",
            150,
            ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "species",
            "Fisher's iris: 3 species, 50 flowers each, from 4 measurements in cm.",
        ),
    )
}


@dataclass
class Dataset:
    """A loaded dataset, before any preprocessing.

    Attributes:
        X: Tabular features as a DataFrame of shape (n_rows, n_features) with string column names,
            or images as an ndarray of shape (n, height, width) or (n, height, width, channels).
        y: The target column(s), shape (n_rows, n_targets), with ORIGINAL values (labels as read).
        feature_names: Names of the feature columns of ``X`` (empty for images).
        target_names: Names of the columns of ``y``.
        task: What is learned.
        task_inferred: True when ``task`` was inferred from the target values (``data.task: auto``).
        description: One line saying what the data is.
        raw_columns: The full column layout of the source table, target included, so predictions can
            read files in the training layout; None for images.
        test_rows: Indices of the source's own test rows (Keras' official test sets), shape ``(n_test,)``,
            for ``evaluation.test_rows: source``; None when the source has no such division.
    """

    X: pd.DataFrame | np.ndarray
    y: pd.DataFrame
    feature_names: list[str]
    target_names: list[str]
    task: TaskName
    task_inferred: bool
    description: str
    raw_columns: list[str] | None = None
    test_rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows (samples)."""
        return len(self.y)


# ----------------------------------------------------------------------------- named sets: files
def data_dir() -> Path | None:
    """The local data directory from ``DLRUN_DATA_DIR``, or None when unset."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: ``DLRUN_CACHE_DIR`` or ``~/.cache/dlrun``."""
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "dlrun"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, entry: NamedDataset, fix: str) -> Path:
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise DataError(
            f"checksum mismatch for {entry.filename} at {path}: expected sha256 {entry.sha256}, got {actual}; "
            f"the file is corrupt or a different version. {fix}"
        )
    return path


def _download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (raises ``urllib.error.URLError`` or ``OSError`` on failure)."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, dest.open("wb") as fh:
        while chunk := response.read(1 << 20):
            fh.write(chunk)


def _lookup(name: str) -> NamedDataset:
    if name not in NAMED:
        raise DataError(f"unknown named dataset '{name}'{suggest(name, list(NAMED))}; known sets: {', '.join(NAMED)}")
    return NAMED[name]


def resolve_named(name: str) -> Path:
    """Return a verified local copy of a named dataset, downloading it into the cache if needed.

    Looks in ``DLRUN_DATA_DIR`` first, then in the cache (``DLRUN_CACHE_DIR`` or
    ``~/.cache/dlrun``); otherwise downloads into the cache through a temporary file that is
    renamed into place only after its SHA-256 matches, so a partial download is never used.

    Raises:
        DataError: The name is unknown, a copy fails its checksum, or the file is not local and
            cannot be downloaded.
    """
    entry = _lookup(name)
    local = data_dir()
    if local is not None and (local / entry.filename).is_file():
        return _verify(
            local / entry.filename,
            entry,
            f"Replace it with a fresh copy of {entry.url}, or unset {DATA_DIR_ENV} to use the download cache.",
        )
    cache = cache_dir()
    cached = cache / entry.filename
    if cached.is_file():
        return _verify(cached, entry, f"Delete {cached} and run again to download it afresh.")
    tmp_name: str | None = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, prefix=f".{entry.filename}.", suffix=".part", delete=False) as t:
            tmp_name = t.name
        _download(entry.url, Path(tmp_name))
        _verify(Path(tmp_name), entry, f"The download from {entry.url} is not the expected file; nothing was saved.")
        os.replace(tmp_name, cached)
        tmp_name = None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        where = f"{DATA_DIR_ENV}={local}" if local is not None else f"{DATA_DIR_ENV} (unset)"
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"dataset '{name}' is not available locally and could not be downloaded from {entry.url} ({reason}). "
            f"Looked for {entry.filename} in {where} and in the cache {cache}. If this machine is offline, "
            f"download {entry.filename} elsewhere and put it in a folder named by {DATA_DIR_ENV}."
        ) from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return cached


def dataset_status() -> list[dict[str, Any]]:
    """Describe every named dataset and where a local copy is, without downloading anything.

    Returns:
        One dict per named set with keys ``name``, ``task``, ``rows``, ``features``,
        ``location`` (``"DLRUN_DATA_DIR"``, ``"cache"`` or ``"not downloaded"``), ``path``
        (str or None) and ``description``. Files are not checksummed here; use happens through
        :func:`resolve_named`, which does.
    """
    local = data_dir()
    cache = cache_dir()
    rows: list[dict[str, Any]] = []
    for entry in NAMED.values():
        location, path = "not downloaded", None
        if local is not None and (local / entry.filename).is_file():
            location, path = DATA_DIR_ENV, local / entry.filename
        elif (cache / entry.filename).is_file():
            location, path = "cache", cache / entry.filename
        rows.append(
            {
                "name": entry.name,
                "task": entry.task,
                "rows": entry.rows,
                "features": entry.n_features,
                "location": location,
                "path": str(path) if path is not None else None,
                "description": entry.description,
            }
        )
    return rows


# ----------------------------------------------------------------------------- task inference
def infer_task(y: pd.DataFrame) -> TaskName:
    """Guess the task from the target values.

    Rules: more than one target column → regression; floats with non-integer values →
    regression; two distinct values → binary; non-numeric (or boolean) with more → multiclass;
    integers with 3..20 distinct values → multiclass, more than 20 → regression.

    Args:
        y: Target values, shape (n_rows, n_targets).

    Raises:
        DataError: The target has fewer than two distinct values.
    """
    if y.shape[1] > 1:
        return "regression"
    col = y.iloc[:, 0].dropna()
    n_unique = col.nunique()
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if numeric and pd.api.types.is_float_dtype(col) and not np.all(np.mod(col.to_numpy(dtype=float), 1.0) == 0):
        return "regression"
    if n_unique < 2:
        raise DataError(
            f"the target '{y.columns[0]}' has {n_unique} distinct value(s) ({_some(col.unique())}); "
            "a model needs at least two classes or a varying quantity. Choose another data.target."
        )
    if n_unique == 2:
        return "binary"
    if not numeric or n_unique <= MAX_AUTO_CLASSES:
        return "multiclass"
    return "regression"


def check_task(y: pd.DataFrame, task: TaskName) -> None:
    """Check that a task set in the spec fits the target values.

    Args:
        y: Target values, shape (n_rows, n_targets).
        task: The task from the spec.

    Raises:
        DataError: The number of classes or the kind of values does not fit the task.
    """
    names = ", ".join(str(c) for c in y.columns)
    if task in ("binary", "multiclass") and y.shape[1] > 1:
        raise DataError(
            f"task '{task}' needs one target column, got {y.shape[1]} ({names}); "
            "multi-output targets are learned as regression: set data.task: regression or pick one data.target."
        )
    col = y.iloc[:, 0].dropna()
    if task == "regression":
        bad = [c for c in y.columns if not pd.api.types.is_numeric_dtype(y[c]) or pd.api.types.is_bool_dtype(y[c])]
        if bad:
            raise DataError(
                f"task 'regression' needs numeric targets, but {', '.join(map(str, bad))} holds labels such as "
                f"{_some(y[bad[0]].dropna().unique())}; set data.task: binary/multiclass or auto."
            )
        return
    n_unique = col.nunique()
    if task == "binary" and n_unique != 2:
        few = "too few" if n_unique < 2 else "too many"
        raise DataError(
            f"task 'binary' needs exactly 2 classes, but the target '{names}' has {n_unique} ({few} classes: "
            f"{_some(col.unique())}); set data.task: {'multiclass' if n_unique > 2 else 'auto'} or choose another "
            "data.target."
        )
    if task == "multiclass":
        if n_unique < 2:
            raise DataError(
                f"task 'multiclass' needs at least 2 classes, but the target '{names}' has {n_unique} (too few "
                f"classes: {_some(col.unique())}); choose another data.target."
            )
        if pd.api.types.is_float_dtype(col) and not np.all(np.mod(col.to_numpy(dtype=float), 1.0) == 0):
            raise DataError(
                f"task 'multiclass' needs class labels, but the target '{names}' has non-integer values such as "
                f"{_some(col.unique())}; set data.task: regression or auto."
            )


def _some(values: Any, k: int = 6) -> str:
    vals = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in vals[:k])
    return text + (f", … ({len(vals)} in all)" if len(vals) > k else "")


# ----------------------------------------------------------------------------- column selection
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
            f"{_some(rows.tolist())}, counting from 0); remove those rows or choose another data.target"
        )
    return df[features].copy(), y


def _subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Row indices of a uniform random subset (no stratification), kept in file order; None = all rows."""
    if max_rows is None or max_rows >= n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


# ----------------------------------------------------------------------------- loaders
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
            f"{_some(lost)} ({n_full} classes in all); raise max_rows or remove it"
        )


def _load_table(spec: DataSpec) -> tuple[pd.DataFrame, list[str], str, TaskName | None]:
    """Read the whole source table: (frame, default target columns, description, registry task)."""
    kind = spec.kind
    if kind == "named":
        entry = _lookup(spec.source)
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
    task, inferred = _decide_task(y, spec, None)
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


def _decide_task(y: pd.DataFrame, spec: DataSpec, registry_task: TaskName | None) -> tuple[TaskName, bool]:
    if spec.task != "auto":
        task = cast(TaskName, spec.task)
        check_task(y, task)
        return task, False
    if registry_task is not None:
        check_task(y, registry_task)
        return registry_task, False
    return infer_task(y), True


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
    task, inferred = _decide_task(y, spec, registry_task)
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


# ----------------------------------------------------------------------------- checks before training
def check_usable(data: Dataset, *, impute: str = "none", loss: str | None = None, task: str | None = None) -> None:
    """Problems with the loaded rows that would otherwise surface mid-training or silently.

    Counts come from ALL rows (not a sample). Checked: missing values without ``preprocessing.impute``,
    infinite values (named by column), and a classification loss on a regression target.

    Args:
        data: The loaded dataset.
        impute: ``preprocessing.impute``.
        loss: The ``compile.loss`` name, if the spec sets one.
        task: The resolved task.

    Raises:
        DataError: Missing or infinite values.
        SpecError: A loss that does not fit the task.
    """
    from dlrun.errors import SpecError
    from dlrun.spec.schema import CLASSIFICATION_LOSSES

    if loss is not None and task == "regression" and loss in CLASSIFICATION_LOSSES:
        raise SpecError(
            [
                (
                    "compile.loss",
                    f"'{loss}' is a classification loss, but the target {', '.join(data.target_names)} is a regression "
                    "target (numbers); use mse, mae or huber, or set data.task if the target holds class labels",
                )
            ]
        )
    if not isinstance(data.X, pd.DataFrame):
        return
    numeric = data.X.select_dtypes(include="number")
    if not numeric.empty:
        values = numeric.to_numpy(dtype=np.float64)
        inf = np.isinf(values).sum(axis=0)
        if inf.any():
            cols = [f"{c} ({int(n)} row{'s' if n != 1 else ''})" for c, n in zip(numeric.columns, inf) if n]
            raise DataError(
                f"infinite values (inf) in column(s) {', '.join(cols[:8])}; a network cannot learn from them: "
                "remove or replace those values in the file, or drop the column(s) with data.drop"
            )
    if impute == "none":
        listing = missing_listing(data.X)
        if listing:
            raise DataError(
                f"missing values (NaN) in {listing} of {data.n_rows} rows; set preprocessing.impute: median (or mean, "
                "most_frequent) to fill them from each fold's training rows, or drop those columns with data.drop"
            )


def missing_listing(X: pd.DataFrame) -> str:
    """``"col (n missing), …"`` for the columns of ``X`` with NaNs; empty when there are none."""
    counts = X.isna().sum()
    return ", ".join(f"{c} ({int(n)} missing)" for c, n in counts[counts > 0].items())
