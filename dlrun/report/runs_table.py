"""The index of runs as table rows: ``dlrun runs``, ``dlrun status`` and the many-runs page.

The run index (:mod:`dlrun.store.index`) finds runs and reads their files; this module says what
a person sees of each: its result with its interval, its progress, its durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.evaluation.summary import headline_block
from dlrun.reporting import fmt_duration
from dlrun.store.index import RunInfo, folder_progress, run_progress, wall_seconds


def headline(summary: dict[str, Any] | None) -> str:
    """``accuracy 0.861 [0.83, 0.89]`` or ``mae 0.52`` from a summary."""
    if not summary:
        return ""
    m = summary.get("main_metric")
    block = summary.get("metrics", {}).get(m)
    if isinstance(block, dict):
        d = headline_block(block)
        lo, hi = d.get("ci_low"), d.get("ci_high")
        interval = f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
        return f"{m} {d.get('mean', float('nan')):.4f}{interval}"
    if isinstance(block, (int, float)):
        return f"{m} {block:.4f}"
    return ""


def runs_rows(runs: list[RunInfo], root: Path) -> list[dict[str, Any]]:
    """One row per run for ``dlrun runs``."""
    rows = []
    for r in runs:
        secs = wall_seconds(r.state, live=r.live and r.status == "running")
        rows.append(
            {
                "run": str(r.path.relative_to(root)) if r.path != root and r.path.is_relative_to(root) else str(r.path),
                "name": r.state.get("name", ""),
                "command": r.state.get("command", ""),
                "mode": r.state.get("mode", ""),
                "result": headline(r.summary),
                "status": r.status,
                "duration": fmt_duration(secs) if secs is not None else "",
                "started": str(r.state.get("started", "")),
            }
        )
    return rows


def status_rows(runs: list[RunInfo], root: Path) -> list[dict[str, Any]]:
    """One row per run for ``dlrun status``: state, progress (epoch and models), elapsed time and ETA."""
    rows = []
    for r in runs:
        st = r.state
        p = run_progress(r)
        parts = []
        if st.get("command") in ("search", "sweep", "batch"):
            parts.append(folder_progress(r))
        elif r.status == "finished":
            parts.append("done")
        else:
            if p["epoch"] is not None and p["epochs"]:
                parts.append(f"epoch {p['epoch']}/{p['epochs']}")
            if st.get("command") != "train" and p["total"]:
                parts.append(f"{p['done']}/{p['total']} models")
            if st.get("phase") == "starting" and r.status in ("running", "dead"):
                parts.append("starting")
        rows.append(
            {
                "run": str(r.path.relative_to(root)) if r.path != root and r.path.is_relative_to(root) else str(r.path),
                "status": r.status,
                "progress": ", ".join(parts),
                "elapsed": fmt_duration(p["elapsed"]) if p["elapsed"] is not None else "",
                "eta": fmt_duration(p["eta"]) if p["eta"] is not None else "",
                "result": headline(r.summary),
                "error": str(st.get("error", ""))[:80],
            }
        )
    return rows
