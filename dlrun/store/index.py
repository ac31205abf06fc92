"""The run index: find runs under a folder and read their own files (``dlrun runs``, ``status``, ``clean``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.errors import CorruptFileError, InputError
from dlrun.store import io as report
from dlrun.store.layout import (
    BATCH_CSV,
    FINGERPRINT,
    NESTED_JSON,
    SEARCH_STATE,
    SWEEP_CSV,
    SWEEP_STATE,
    TRIALS_CSV,
    TRIALS_DIR,
)
from dlrun.store.lock import is_locked


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


_NOT_RUNS = (SWEEP_STATE, SWEEP_CSV, BATCH_CSV, SEARCH_STATE, TRIALS_CSV)  # they hold a lock too


def _is_run_dir(p: Path) -> bool:
    if (p / report.STATE).exists():
        return True
    # a run killed during start-up by an older dlrun: a lock and folds.csv or config.yaml, no state;
    # sweep, batch and search folders hold a lock of their own but are not runs
    if not (p / report.LOCK).exists() or any((p / n).exists() for n in _NOT_RUNS):
        return False
    return (p / report.FOLDS).exists() or (p / report.CONFIG).exists()


def holds_runs(p: Path) -> bool:
    """Whether a folder has run folders directly under it (a sweep's points, a batch's configs)."""
    return any(p.glob(f"*/{report.STATE}"))


def runs_folder_kind(p: Path) -> str | None:
    """``search``, ``sweep`` or ``batch`` for a folder of runs (a nested search too), else None."""
    if (p / SEARCH_STATE).exists() or (p / NESTED_JSON).exists() or (p / "outer").is_dir():
        return "search"
    if (p / SWEEP_STATE).exists():
        return "sweep"
    if (p / BATCH_CSV).exists():
        return "batch"
    return None


def _runs_folder_state(p: Path, kind: str) -> dict[str, Any]:
    """What a folder of runs says about itself, as a run's state: from its status file, or (batch,
    nested search) from its table and whether a live process holds it."""
    state: dict[str, Any] = {"command": kind, "name": p.name}
    status_file = p / (SEARCH_STATE if kind == "search" else SWEEP_STATE)
    try:
        if kind != "batch" and status_file.exists():
            data = report.read_json(status_file)
            if isinstance(data, dict):
                state.update({k: data[k] for k in ("name", "status", "error") if k in data})
                if data.get("updated"):  # its last write: the end of a finished one, a dead one's last sign of life
                    state["updated"] = data["updated"]
                    if state.get("status") in ("finished", "failed", "interrupted"):
                        state["ended"] = data["updated"]
                best, metric = data.get("best"), data.get("metric")
                if isinstance(best, dict) and metric and best.get(f"{metric}_mean") is not None:
                    # the best trial's estimate (optimistic: the best of many), for the result column
                    estimate = {k: best.get(f"{metric}_{k}") for k in ("mean", "ci_low", "ci_high")}
                    block = {"headline": "best", "best": estimate}
                    state["summary"] = {"main_metric": metric, "metrics": {metric: block}}
                state["points"] = data.get("points")
                trials = data.get("trials")  # how many were asked for; once finished, the count of each end
                if isinstance(trials, dict):
                    trials = sum(int(v) for k, v in trials.items() if k != "interrupted")
                state["trials"] = trials
        elif kind == "batch":
            statuses = set(pd.read_csv(p / BATCH_CSV)["status"].astype(str))
            state["status"] = (
                "finished" if statuses == {"finished"} else "failed" if "failed" in statuses else "interrupted"
            )
        elif (p / NESTED_JSON).exists():
            state["status"] = "finished"
    except (OSError, CorruptFileError, ValueError, KeyError) as exc:
        state["error"] = f"{status_file.name} unreadable: {exc}"
    state.setdefault("status", "running")  # a search killed before its first write: dead unless held
    return state


def folder_progress(r: RunInfo) -> str:
    """``3/6 trials`` or ``2/4 points``: the runs of a folder of runs that finished."""
    kind = r.state.get("command")
    if kind == "search":
        total = r.state.get("trials")
        done = sum(1 for s in (r.path / TRIALS_DIR).glob(f"*/{report.STATE}") if _status_of(s.parent) == "finished")
        return f"{done}/{total} trials" if total else f"{done} trials"
    if kind == "sweep" and isinstance(r.state.get("points"), list):
        points = r.state["points"]
        done = sum(1 for pt in points if _status_of(r.path / str(pt.get("folder", ""))) == "finished")
        return f"{done}/{len(points)} points"
    return ""


def _status_of(path: Path) -> str | None:
    try:
        state = report.read_json(path / report.STATE)
    except (OSError, CorruptFileError):
        return None
    return state.get("status") if isinstance(state, dict) else None


def find_runs(root: Path, *, folders: bool = False) -> list[RunInfo]:
    """Every run directory under ``root`` (one with ``state.json``, or a run's lock), oldest first.

    A run whose ``state.json`` cannot be read (truncated by a full disk) is still listed, as
    ``running`` (so ``dead`` unless a live process holds it), with the problem as its error.

    Args:
        root: The folder to search.
        folders: List the folders of runs too (search, sweep, batch: ``command`` names the kind), for
            ``dlrun status`` and ``dlrun runs``; the exports and pages that read runs leave them out.

    Raises:
        InputError: ``root`` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise InputError(f"'{root}' {what}; give a run folder or a folder of runs (default: outputs)")
    candidates = {root, *(p.parent for p in root.rglob(report.STATE)), *(p.parent for p in root.rglob(report.LOCK))}
    paths = sorted(p for p in candidates if _is_run_dir(p))
    out = []
    # folders of runs (search, sweep, batch) are listed too, from their own status: from the moment
    # they hold their lock, so a search killed before (or while) its first trial trains is seen
    for p in sorted(p for p in candidates if folders and not _is_run_dir(p) and p.is_dir()):
        kind = runs_folder_kind(p)
        if kind is None and (p / report.LOCK).exists() and (p / FINGERPRINT).exists():
            kind = "search"  # locked and fingerprinted, nothing written yet: a folder of runs starting
        if kind is not None:
            own = _runs_folder_state(p, kind)
            # fingerprint.json is written once, when the folder starts (the lock is rewritten on every resume)
            first = next((p / n for n in (FINGERPRINT, report.LOCK) if (p / n).exists()), p)
            own.setdefault("started", _mtime_iso(first))
            out.append(RunInfo(p, own, own.pop("summary", None), is_locked(p)))
    for p in paths:
        try:
            state = report.read_json(p / report.STATE) if (p / report.STATE).exists() else None
            if state is not None and not isinstance(state, dict):
                raise CorruptFileError(p / report.STATE, "does not hold a mapping")
        except (OSError, CorruptFileError) as exc:
            state = {"status": "running", "error": f"{report.STATE} unreadable: {exc}"}
        if state is None:
            state = {"status": "running", "phase": "starting", "error": "killed during start-up"}
        if "started" not in state:
            state["started"] = _mtime_iso(p)
        summary = None
        if (p / report.SUMMARY_JSON).exists():
            try:
                summary = report.read_json(p / report.SUMMARY_JSON)
            except (OSError, CorruptFileError):
                summary = None
        out.append(RunInfo(p, state, summary, is_locked(p)))
    out.sort(key=lambda r: str(r.state.get("started", "")))
    return out


def _mtime_iso(p: Path) -> str:
    try:
        return dt.datetime.fromtimestamp(p.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    except OSError:
        return ""


def wall_seconds(state: dict[str, Any], last_event: str | None = None, live: bool = False) -> float | None:
    """Wall time of a run: to its end, to now while a live process runs it, else to its last sign of life."""
    try:
        start = dt.datetime.fromisoformat(state["started"])
        if state.get("ended") and state.get("status") != "running":
            end = dt.datetime.fromisoformat(state["ended"])
        elif live:
            end = dt.datetime.now().astimezone()
        else:
            end = dt.datetime.fromisoformat(last_event or state.get("updated") or state["started"])
    except (KeyError, ValueError, TypeError):
        return None
    return max(0.0, (end - start).total_seconds())


def _last_progress(path: Path) -> list[dict[str, Any]]:
    p = path / report.PROGRESS
    if not p.exists():
        return []
    events = []
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now, or cut by a kill
        if isinstance(event, dict):
            events.append(event)
    return events


def _time(event: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(event["time"]))
    except (KeyError, ValueError):
        return None


def run_progress(r: RunInfo) -> dict[str, Any]:
    """Progress of one run from its own files: models done (counted on disk for a run no process
    holds), the epoch of the models in flight, the fraction done and, while it runs, an ETA.

    Returns:
        ``{done, total, epoch, epochs, fraction, elapsed, eta}`` (None where unknown).
    """
    st, events = r.state, _last_progress(r.path)
    command = st.get("command")
    epochs = int(st.get("epochs", 0) or 0)
    starts = [i for i, e in enumerate(events) if e.get("event") == "start"]
    last_start = starts[-1] if starts else None
    since = events[last_start:] if last_start is not None else events
    epoch_events = [e for e in since if e.get("event") in ("epoch", "checkpoint")]
    epoch = max((int(e.get("epoch", 0) or 0) for e in epoch_events), default=None)
    total = int(st.get("total_models", 0) or 0) or (1 if command == "train" else 0)
    done = int(st.get("finished_models", 0) or 0)
    if command == "cv":
        if r.status != "finished":  # the parts on disk are the record; state.json is rewritten at most 2/s
            done = max(done, report.count_saved_folds(r.path))
        if total == 0 and (r.path / report.FOLDS).exists():
            try:
                total = sum(1 for _ in (r.path / report.FOLDS).open()) - 1
            except OSError:
                total = 0
    if r.status == "finished":
        done = total
    fraction: float | None = None
    in_flight = 0
    if command == "train":
        if r.status == "finished":
            fraction = 1.0
        elif epoch is not None and epochs:
            fraction = min(1.0, epoch / epochs)
    elif total:
        last_epoch = next((e for e in reversed(since) if e.get("event") == "epoch"), None)
        fraction = done / total
        if last_epoch is not None and epochs and r.status != "finished":
            in_flight = min(int(last_epoch.get("models", 1) or 1), max(0, total - done))
            fraction = min(1.0, (done + in_flight * int(last_epoch.get("epoch", 0) or 0) / epochs) / total)
    last_time = next((str(e["time"]) for e in reversed(events) if "time" in e), None)
    elapsed = wall_seconds(st, last_time, r.live and r.status == "running")
    eta = None
    if r.live and r.status == "running" and fraction is not None and last_start is not None:
        t0 = _time(events[last_start])
        # the fraction done when this process started: folds saved before it, or the checkpoint epoch
        if command == "train":
            first = min((int(e.get("epoch", 0) or 0) for e in epoch_events), default=1)
            f0 = max(0, first - 1) / epochs if epochs else 0.0
        else:
            before = sum(1 for e in events[:last_start] if e.get("event") == "fold")
            f0 = min(before, total) / total if total else 0.0
        if t0 is not None and fraction > f0:
            run_s = (dt.datetime.now().astimezone() - t0).total_seconds()
            eta = max(0.0, run_s / (fraction - f0) * (1.0 - fraction))
    return {
        "done": done,
        "total": total,
        "epoch": epoch,
        "epochs": epochs,
        "fraction": fraction,
        "elapsed": elapsed,
        "eta": eta,
    }


def cleanable(runs: list[RunInfo]) -> list[RunInfo]:
    """Runs that failed, were interrupted, or died (and no live process holds)."""
    victims = [r for r in runs if r.status in ("failed", "interrupted", "dead") and not r.live]
    # a run inside a folder that goes too goes with it (removing it first would break the folder)
    return [r for r in victims if not any(v.path in r.path.parents for v in victims)]
