"""Batches: several configs in turn, going on after a failure, with a closing table."""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun import report
from dlrun.errors import DlrunError, InputError, Interrupted

BATCH_CSV = "batch.csv"


def expand_configs(patterns: list[str]) -> list[Path]:
    """Config files from paths and globs, in the order given (each glob sorted), without repeats.

    Raises:
        InputError: A pattern matches no file.
    """
    out: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat)) if any(c in pat for c in "*?[") else ([pat] if Path(pat).exists() else [])
        if not hits:
            raise InputError(f"CONFIGS must name existing YAML files or globs that match some, got '{pat}'")
        for h in hits:
            p = Path(h)
            if p not in out:
                out.append(p)
    return out


@dataclass
class BatchItem:
    """One config's outcome in a batch."""

    config: Path
    folder: Path
    status: str = "pending"
    error: str = ""
    seconds: float = 0.0
    headline: str = ""


RunConfig = Callable[[Path, Path, bool], dict[str, Any]]


def plan_items(configs: list[Path], batch_dir: Path) -> list[BatchItem]:
    """One item per config, in ``batch_dir/<stem>`` (``<parent>_<stem>`` where two stems clash)."""
    items = [BatchItem(c, batch_dir / c.stem) for c in configs]
    stems = [i.folder.name for i in items]
    for i in items:
        if stems.count(i.folder.name) > 1:
            i.folder = batch_dir / f"{i.config.parent.name}_{i.config.stem}"
    return items


def previous_status(item: BatchItem, n: int, total: int, resume: bool, note: Callable[[str], None]) -> str | None:
    """The status a config's folder already records; a finished one is marked skipped under ``resume``.

    Raises:
        InputError: The folder holds a run and ``resume`` was not asked for.
    """
    state_path = item.folder / report.STATE
    status = report.read_json(state_path).get("status") if state_path.exists() else None
    if status == "finished" and resume:
        item.status = "finished"
        item.headline = "finished earlier, skipped"
        note(f"[{n + 1}/{total}] {item.config}: finished earlier, skipped")
    elif status is not None and not resume:
        raise InputError(f"{item.folder} already holds a run; add --resume to continue the batch, or use another --out")
    return None if status is None else str(status)


def run_batch(
    configs: list[Path],
    batch_dir: Path,
    run_config: RunConfig,
    *,
    resume: bool = False,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
) -> list[BatchItem]:
    """Run each config into ``batch_dir/<config stem>``; record failures and go on.

    Args:
        configs: Config files.
        batch_dir: Where each config's run directory goes.
        run_config: Runs one config into a folder (third argument: resume) and returns its summary.
        resume: Skip configs whose run finished; continue unfinished ones.
        fail_fast: Stop at the first failure.
        note: Where one-line remarks go.
    """
    items = plan_items(configs, batch_dir)
    for n, item in enumerate(items):
        status = previous_status(item, n, len(items), resume, note)
        if item.status == "finished":
            continue
        note(f"[{n + 1}/{len(items)}] {item.config} -> {item.folder}")
        t0 = time.perf_counter()
        try:
            summary = run_config(item.config, item.folder, status is not None)
            item.status = "finished"
            item.headline = str((summary.get("headline") or {}).get("text", ""))
        except Interrupted as exc:
            item.status = "interrupted"
            item.error = str(exc)
            item.seconds = time.perf_counter() - t0
            _write(batch_dir, items)
            raise Interrupted(
                f"batch interrupted at {item.config}; resume with: dlrun batch --resume --out {batch_dir} ..."
            ) from None
        except DlrunError as exc:
            item.status = "failed"
            item.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # a bug in one config's run must not lose the others
            item.status = "failed"
            item.error = f"{type(exc).__name__}: {exc}"
        item.seconds = time.perf_counter() - t0
        if item.status == "failed":
            note(f"{item.config}: failed: {item.error}")
            if fail_fast:
                break
        _write(batch_dir, items)
    _write(batch_dir, items)
    return items


def _write(batch_dir: Path, items: list[BatchItem]) -> None:
    df = pd.DataFrame(
        [
            {
                "config": str(i.config),
                "status": i.status,
                "seconds": round(i.seconds, 2),
                "headline": i.headline,
                "error": i.error,
                "path": str(i.folder),
            }
            for i in items
        ]
    )
    report.write_csv(batch_dir / BATCH_CSV, df)
