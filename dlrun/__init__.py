"""dlrun: an experiment runner for Keras driven by YAML specs, from the command line or Python.

The Python API (see :mod:`dlrun.api`): :func:`run`, :func:`load`, :func:`compare`.
Importing dlrun is light: Keras and its backend load only when a run trains.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Comparison", "RunResult", "__version__", "compare", "load", "run"]

if TYPE_CHECKING:
    from dlrun.api import Comparison, RunResult, load, run


def __getattr__(name: str) -> Any:
    # The API pulls in pandas and the spec models: load it on first use, so `import dlrun`
    # (and `dlrun --help`) stays fast.
    if name in ("run", "load", "RunResult", "Comparison"):
        return getattr(importlib.import_module("dlrun.api"), name)
    raise AttributeError(f"module 'dlrun' has no attribute {name!r}")


def compare(*run_dirs: Any, **options: Any) -> Any:
    """Compare finished runs: :func:`dlrun.api.compare`."""
    return importlib.import_module("dlrun.api").compare(*run_dirs, **options)
