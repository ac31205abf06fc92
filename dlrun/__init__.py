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


class _Compare:
    """``dlrun.compare``: the API's ``compare(*run_dirs)``, and the module ``dlrun/compare.py``.

    Both have one name until the comparison module moves into a subpackage; calls go to
    :func:`dlrun.api.compare`, attributes to the module (``from dlrun import compare as cmp``
    keeps working). Loading the module puts it under this name, so the bridge puts itself back.
    """

    def _module(self) -> Any:
        module = importlib.import_module("dlrun.compare")
        globals()["compare"] = self
        return module

    def __call__(self, *run_dirs: Any, **options: Any) -> Any:
        self._module()
        return importlib.import_module("dlrun.api").compare(*run_dirs, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module(), name)

    def __setattr__(self, name: str, value: Any) -> None:  # monkeypatching reaches the module
        setattr(self._module(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._module(), name)

    def __dir__(self) -> list[str]:
        return dir(self._module())


if not TYPE_CHECKING:
    compare = _Compare()
