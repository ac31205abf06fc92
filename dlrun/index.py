"""The run index: find runs under a folder and read their own files (``dlrun runs``, ``status``, ``clean``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun import report
from dlrun.locking import is_locked
from dlrun.progress import fmt_duration


@dataclass
class RunInfo:
    """What a run directory says about itself."""

    path: Path
    state: dict[str, Any]
    summary: dict[str, Any] | None
    live: bool

    @property
    def status(self) -> str:
        """The recorded status; a ``running`` run whose lock is free is reported ``dead``."""
        s = str(self.state.get("status", "?"))
        if s == "running" and not self.live:
            return "dead"
        return s


def find_runs(root: Path) -> list[RunInfo]:
    """Every run directory (one with ``state.json``) under ``root``, oldest first."""
    root = Path(root)
    paths = [root] if (root / report.STATE).exists() else []
    paths += sorted(p.parent for p in root.rglob(report.STATE) if p.parent != root)
    out = []
    for p in paths:
        try:
            state = report.read_json(p / report.STATE)
        except (OSError, json.JSONDecodeError):
            continue
        summary = None
        if (p / report.SUMMARY_JSON).exists():
            try:
                summary = report.read_json(p / report.SUMMARY_JSON)
            except (OSError, json.JSONDecodeError):
                summary = None
        out.append(RunInfo(p, state, summary, is_locked(p)))
    out.sort(key=lambda r: str(r.state.get("started", "")))
    return out


def _seconds(state: dict[str, Any]) -> float | None:
    try:
        start = dt.datetime.fromisoformat(state["started"])
        end = dt.datetime.fromisoformat(state.get("ended") or state.get("updated") or report.now_iso())
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def headline(summary: dict[str, Any] | None) -> str:
    """``accuracy 0.861 [0.83, 0.89]`` or ``mae 0.52`` from a summary."""
    if not summary:
        return ""
    m = summary.get("main_metric")
    block = summary.get("metrics", {}).get(m)
    if isinstance(block, dict):
        d = block.get(block.get("headline", "folds")) or block.get("folds") or {}
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
        secs = _seconds(r.state)
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


def _last_progress(path: Path) -> list[dict[str, Any]]:
    p = path / report.PROGRESS
    if not p.exists():
        return []
    events = []
    for line in p.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return events


def status_rows(runs: list[RunInfo], root: Path) -> list[dict[str, Any]]:
    """One row per run for ``dlrun status``: state, progress and ETA (also while a job runs)."""
    rows = []
    for r in runs:
        st = r.state
        total = int(st.get("total_models", 0) or 0)
        done = int(st.get("finished_models", 0) or 0)
        secs = _seconds(st)
        eta = ""
        events = _last_progress(r.path)
        if r.status == "running" and secs:
            since_start = [e for e in events if e.get("event") == "start"]
            t0 = dt.datetime.fromisoformat(since_start[-1]["time"]) if since_start else None
            done_now = [e for e in events if e.get("event") in ("fold", "epoch", "checkpoint")]
            if t0 and done_now:
                elapsed = (dt.datetime.now().astimezone() - t0).total_seconds()
                if st.get("command") == "train":
                    epoch = max((int(e.get("epoch", 0)) for e in done_now), default=0)
                    total_e = int(st.get("epochs", 1))
                    first = min((int(e.get("epoch", 0)) for e in done_now), default=1) - 1
                    if epoch > first:
                        eta = fmt_duration(elapsed / (epoch - first) * (total_e - epoch))
                else:
                    folds_now = sum(
                        1 for e in done_now if e.get("event") == "fold" and dt.datetime.fromisoformat(e["time"]) >= t0
                    )
                    if folds_now:
                        eta = fmt_duration(elapsed / folds_now * (total - done))
        progress = f"{done}/{total} models" if st.get("command") != "train" else ""
        if st.get("command") == "train":
            epochs_seen = [int(e.get("epoch", 0)) for e in events if e.get("event") in ("epoch", "checkpoint")]
            progress = (
                f"epoch {max(epochs_seen, default=0)}/{st.get('epochs', '?')}" if r.status != "finished" else "done"
            )
        rows.append(
            {
                "run": str(r.path.relative_to(root)) if r.path != root and r.path.is_relative_to(root) else str(r.path),
                "status": r.status,
                "progress": progress,
                "elapsed": fmt_duration(secs) if secs is not None else "",
                "eta": eta,
                "result": headline(r.summary),
                "error": str(st.get("error", ""))[:80],
            }
        )
    return rows


def cleanable(runs: list[RunInfo]) -> list[RunInfo]:
    """Runs that failed, were interrupted, or died (and no live process holds)."""
    return [r for r in runs if r.status in ("failed", "interrupted", "dead") and not r.live]
