"""The named public sets: what each one is, where a verified copy lives, and downloading it.

A named set is used only after its SHA-256 matches: from ``DLRUN_DATA_DIR`` first, then the
download cache (``DLRUN_CACHE_DIR`` or ``~/.cache/dlrun``), else downloaded into the cache through a
temporary file renamed into place once verified.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.data.dataset import TaskName
from dlrun.errors import DataError
from dlrun.spec.dotted import suggest

BASE_URL = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"
DATA_DIR_ENV = "DLRUN_DATA_DIR"
CACHE_DIR_ENV = "DLRUN_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30.0


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


def lookup(name: str) -> NamedDataset:
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
    entry = lookup(name)
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
