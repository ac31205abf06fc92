"""The data layer's public names, kept at their first home for the modules that import them here.

Data lives in :mod:`dlrun.data.registry` (named sets, cache, download, checksums),
:mod:`dlrun.data.loaders` (CSV, scikit-learn sets, generators, Keras sets), :mod:`dlrun.data.task`
(task inference, usability checks) and :mod:`dlrun.data.dataset` (the loaded :class:`Dataset`).
"""

from __future__ import annotations

from dlrun.data.dataset import Dataset, TaskName
from dlrun.data.loaders import KERAS_FILES, load_dataset
from dlrun.data.registry import (
    BASE_URL,
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DOWNLOAD_TIMEOUT_S,
    NAMED,
    NamedDataset,
    cache_dir,
    data_dir,
    dataset_status,
    resolve_named,
    sha256_of,
)
from dlrun.data.task import MAX_AUTO_CLASSES, check_task, check_usable, infer_task, missing_listing

__all__ = [
    "BASE_URL",
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "DOWNLOAD_TIMEOUT_S",
    "KERAS_FILES",
    "MAX_AUTO_CLASSES",
    "NAMED",
    "Dataset",
    "NamedDataset",
    "TaskName",
    "cache_dir",
    "check_task",
    "check_usable",
    "data_dir",
    "dataset_status",
    "infer_task",
    "load_dataset",
    "missing_listing",
    "resolve_named",
    "sha256_of",
]
