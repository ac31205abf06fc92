"""Which folder a sweep or search writes into, and the nested cross-validation both can run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dlrun.cli.output import out
from dlrun.engines.runtime import quiet_tensorflow
from dlrun.errors import InputError
from dlrun.reporting import Reporter
from dlrun.runs import search as search_runs
from dlrun.spec.schema import validate
from dlrun.store import io as report
from dlrun.store.index import holds_runs
from dlrun.store.lock import RunLock


def sweep_folder(base: Any, out_dir: Path | None, resume: bool) -> Path:
    """A sweep's folder: ``--out`` (to resume, or new), else a new one under the spec's output folder.

    Raises:
        InputError: ``--resume`` without ``--out``, or ``--out`` already holding a sweep without ``--resume``.
    """
    if resume:
        if out_dir is None:
            raise InputError("--resume needs --out SWEEP_DIR: the sweep folder to continue")
        return out_dir
    if out_dir is not None:
        if holds_runs(out_dir):
            raise InputError(f"--out '{out_dir}' already holds a sweep; add --resume to continue it")
        return out_dir
    return report.new_run_dir(base.output_dir, f"{base.name}_sweep")


def search_folder(spec: Any, out_dir: Path | None, resume: bool, kind: str, holds: str) -> Path:
    """The folder of a search (``kind`` search) or nested sweep: ``--out`` (to resume, or new), else a new one.

    Raises:
        InputError: ``--resume`` without ``--out``, or ``--out`` already holding ``holds`` without ``--resume``.
    """
    if resume:
        if out_dir is None:
            raise InputError(f"--resume needs --out {kind.upper()}_DIR: the {kind} folder to continue")
        return out_dir
    if out_dir is not None:
        if (out_dir / search_runs.SEARCH_STATE).exists() or (out_dir / "outer").exists():
            raise InputError(f"--out '{out_dir}' already holds {holds}; add --resume to continue it")
        return out_dir
    return report.new_run_dir(spec.output_dir, f"{spec.name}_{kind}")


def run_nested_cv(config: Path, raw: dict[str, Any], folder: Path, reporter: Reporter, kw: dict[str, Any]) -> None:
    """Nested cross-validation (``evaluation.outer``) into ``folder``, under its lock; print the verdict."""
    with RunLock(folder):
        # looked up on the module at call time, so a test (or a plug-in) that replaces it is honoured
        nested = search_runs.run_nested(raw, folder, reporter, source=str(config), argv=sys.argv, **kw)
    out.print(nested["text"], markup=False)
    out.print(f"outputs: {folder}", markup=False)


def nested_sweep(config: Path, raw: dict[str, Any], out_dir: Path | None, resume: bool, reporter: Reporter) -> None:
    """``dlrun sweep`` with ``evaluation.outer``: nested cross-validation of "the best grid point"."""
    spec = validate(raw, source=str(config))
    quiet_tensorflow()
    sweep_dir = search_folder(spec, out_dir, resume, "sweep", "a nested sweep")
    n = spec.search.trials if spec.search is not None else 0
    out.print(f"nested sweep of {n} point(s) (a grid search in each outer fold) into {sweep_dir}", markup=False)
    run_nested_cv(config, raw, sweep_dir, reporter, {})
