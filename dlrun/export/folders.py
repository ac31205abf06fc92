"""What an export reads from run folders, as plain data: parameters, metrics, per-epoch history,
artifacts and the identity that makes an export idempotent. No tracking client is imported here.

A folder given to an export is a run (``state.json``), a sweep (``sweep.json``) or a search
(``search.json``) folder, or any folder above them (a batch, ``outputs``): :func:`exportables` turns
it into the runs and groups (a sweep or search with one child run per point or trial) found there.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dlrun.errors import InputError
from dlrun.evaluation.summary import headline_block
from dlrun.store.index import RunInfo, find_runs
from dlrun.store.io import read_json
from dlrun.store.layout import (
    BEST_CONFIG,
    CONFIG,
    FINGERPRINT,
    HISTORY,
    PLOTS,
    REPORT_HTML,
    SEARCH_MD,
    SEARCH_STATE,
    SUMMARY_JSON,
    SWEEP_CSV,
    SWEEP_STATE,
    TOP_CSV,
    TRIALS_CSV,
)

# the tag that holds an exported folder's identity (see :func:`run_identity`)
FINGERPRINT_TAG = "dlrun.fingerprint"


@dataclass
class RunExport:
    """One finished run folder, ready to log."""

    path: Path
    name: str
    identity: str
    params: dict[str, str]
    metrics: dict[str, float]
    history: dict[str, list[tuple[int, float]]]
    artifacts: list[Path]
    tags: dict[str, str]


@dataclass
class GroupExport:
    """A sweep or search folder: a parent run, one child per point or trial."""

    path: Path
    kind: str  # "sweep" or "search"
    name: str
    identity: str
    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: list[Path]
    children: list[RunExport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """A nested mapping as dotted keys (``compile.optimizer.SGD.learning_rate``); lists as JSON text."""
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v if isinstance(v, str) else json.dumps(v, default=str)
    return out


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Each metric's headline estimate and interval bounds (and std, se), the baseline and training scores."""
    out: dict[str, Any] = {}
    for m, block in (summary.get("metrics") or {}).items():
        if isinstance(block, dict):
            d = headline_block(block)
            for key, name in (("mean", m), ("ci_low", f"{m}_ci_low"), ("ci_high", f"{m}_ci_high")):
                out[name] = d.get(key)
            out[f"{m}_std"], out[f"{m}_se"] = d.get("std"), d.get("se")
        else:
            out[m] = block
    for m, block in ((summary.get("baseline") or {}).get("metrics") or {}).items():
        out[f"baseline_{m}"] = headline_block(block).get("mean") if isinstance(block, dict) else block
    for m, value in (summary.get("train_metrics") or {}).items():
        out[f"train_{m}"] = headline_block(value).get("mean") if isinstance(value, dict) else value
    return {k: f for k, v in out.items() if (f := _finite(v)) is not None}


def epoch_history(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch means over the run's models (``history.csv``): ``{"loss": [(1, 0.69), (2, 0.68)], ...}``."""
    file = path / HISTORY
    if not file.is_file():
        return {}
    df = pd.read_csv(file)
    if "epoch" not in df:
        return {}
    values = [c for c in df.columns if c not in ("repeat", "fold", "epoch") and pd.api.types.is_numeric_dtype(df[c])]
    means = df.groupby("epoch")[values].mean()
    epochs = [int(e) for e in means.index]
    return {
        str(c): [(e, float(v)) for e, v in zip(epochs, means[c].to_numpy()) if math.isfinite(float(v))] for c in values
    }


def run_identity(path: Path, state: dict[str, Any]) -> str:
    """What identifies a run folder across exports: its fingerprint (what determines its results) and when
    it started. The same folder, even moved, is recognised; an identical re-run in another folder is not."""
    fp = (path / FINGERPRINT).read_bytes() if (path / FINGERPRINT).is_file() else b""
    digest = hashlib.sha256(
        fp + b"\0" + str(state.get("started", "")).encode() + b"\0" + str(state.get("name", "")).encode()
    )
    return digest.hexdigest()


def _artifacts(path: Path, names: tuple[str, ...]) -> list[Path]:
    files = [path / n for n in names if (path / n).is_file()]
    if (path / PLOTS).is_dir():
        files += sorted(p for p in (path / PLOTS).iterdir() if p.is_file())
    return files


def run_export(info: RunInfo) -> RunExport:
    """A finished run as parameters (its resolved spec, flattened), metrics, history and artifacts.

    Raises:
        InputError: The run did not finish (it has no summary to export).
    """
    if info.status != "finished" or not info.summary:
        raise InputError(f"'{info.path}' is {info.status}, not a finished run; only finished runs are exported")
    summary = info.summary
    config_file = info.path / CONFIG
    spec = _read_yaml(config_file) if config_file.is_file() else {}
    tags = {
        "dlrun.command": str(summary.get("command", info.state.get("command", ""))),
        "dlrun.mode": str(summary.get("mode", "")),
        "dlrun.engine": str(summary.get("engine", "")),
        "dlrun.folder": str(info.path.resolve()),
        "dlrun.main_metric": str(summary.get("main_metric", "")),
    }
    main = (summary.get("metrics") or {}).get(summary.get("main_metric"))
    if isinstance(main, dict) and "higher_is_better" in main:
        tags["dlrun.higher_is_better"] = "true" if main["higher_is_better"] else "false"
    if isinstance(summary.get("headline"), dict) and summary["headline"].get("text"):
        tags["dlrun.headline"] = str(summary["headline"]["text"])
    return RunExport(
        path=info.path,
        name=str(summary.get("name") or info.path.name),
        identity=run_identity(info.path, info.state),
        params=flatten(spec),
        metrics=summary_metrics(summary),
        history=epoch_history(info.path),
        artifacts=_artifacts(info.path, (REPORT_HTML, SUMMARY_JSON, CONFIG)),
        tags=tags,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def group_kind(path: Path) -> str | None:
    """``"search"``, ``"sweep"`` or None for a folder that is neither."""
    if (path / SEARCH_STATE).is_file():
        return "search"
    if (path / SWEEP_STATE).is_file():
        return "sweep"
    return None


def group_export(path: Path, runs: list[RunInfo]) -> GroupExport:
    """A sweep or search folder with its finished points or trials as children (unfinished ones listed as skipped)."""
    kind = group_kind(path) or "sweep"
    state = read_json(path / (SEARCH_STATE if kind == "search" else SWEEP_STATE))
    state = state if isinstance(state, dict) else {}
    name = str(state.get("name") or path.name)
    # the group's first start, over all its runs (not only those exported now): the same on every export
    started = min((str(r.state.get("started", "")) for r in find_runs(path)), default="")
    what = state.get("space") if kind == "search" else state.get("points")
    identity = hashlib.sha256(json.dumps([kind, name, what, started], default=str).encode()).hexdigest()
    params = flatten(state.get("space") or {}, "search") if kind == "search" else {}
    if kind == "search":
        params.update({k: str(state[k]) for k in ("trials", "sampler", "racing") if k in state})
    group = GroupExport(
        path=path,
        kind=kind,
        name=f"{name} ({kind})",
        identity=identity,
        params=params,
        metrics={},
        artifacts=_artifacts(path, (REPORT_HTML, SWEEP_CSV, TRIALS_CSV, TOP_CSV, BEST_CONFIG, SEARCH_MD)),
    )
    for r in runs:
        if r.status == "finished" and r.summary:
            child = run_export(r)
            if kind == "sweep":  # points share the spec's name: the folder names the grid point
                child.name = f"{child.name} [{r.path.name}]"
            group.children.append(child)
        else:
            group.skipped.append(f"{r.path} ({r.status})")
    best = _best(group.children)
    if best is not None:
        main = best.tags["dlrun.main_metric"]
        group.metrics = {f"best_{k}": v for k, v in best.metrics.items() if k.startswith(main)}
        group.params["best_run"] = best.name
    return group


def _best(children: list[RunExport]) -> RunExport | None:
    """The child with the best main metric, the way its summary says is better."""
    scored = [c for c in children if c.tags["dlrun.main_metric"] in c.metrics]
    if not scored:
        return None
    lower = all(c.tags.get("dlrun.higher_is_better") == "false" for c in scored)
    return (min if lower else max)(scored, key=lambda c: c.metrics[c.tags["dlrun.main_metric"]])


def exportables(folders: list[Path]) -> tuple[list[RunExport], list[GroupExport], list[str]]:
    """The finished runs and the groups under ``folders``; and what was skipped (unfinished runs), as text.

    Raises:
        InputError: A folder does not exist or holds no run.
    """
    runs: list[RunExport] = []
    groups: dict[Path, list[RunInfo]] = {}
    skipped: list[str] = []
    for folder in folders:
        found = find_runs(Path(folder))
        if not found:
            raise InputError(f"'{folder}' holds no run folder (state.json); give a run, sweep, search or batch folder")
        for info in found:
            parent = _group_of(info.path)
            if parent is not None:
                groups.setdefault(parent, []).append(info)
            elif info.status == "finished" and info.summary:
                runs.append(run_export(info))
            else:
                skipped.append(f"{info.path} ({info.status})")
    return runs, [group_export(p, infos) for p, infos in sorted(groups.items())], skipped


def _group_of(path: Path) -> Path | None:
    for parent in list(path.parents)[:3]:  # a point sits in its sweep; a trial in trials/ of its search
        if group_kind(parent) is not None:
            return parent
    return None
