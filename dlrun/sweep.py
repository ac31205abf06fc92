"""Sweeps: every combination of a grid of overrides, each run with the spec's own mode.

Expansion and validation happen before anything trains; each point runs in a
sub-folder named by its overrides; ``sweep.csv`` and plots summarise them.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dlrun import report
from dlrun.errors import DlrunError, InputError, Interrupted, SpecError
from dlrun.spec import Spec, apply_overrides, read_yaml, validate

SWEEP_CSV = "sweep.csv"
SWEEP_STATE = "sweep.json"


@dataclass(frozen=True)
class SweepPoint:
    """One combination of the grid.

    Attributes:
        overrides: ``{dotted.key: value}`` applied to the base spec.
        folder: Sub-folder name, e.g. ``batch_size=16,learning_rate=0.01``.
        spec: The validated spec of this point.
    """

    overrides: dict[str, Any]
    folder: str
    spec: Spec


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """Parse ``--grid key=v1,v2,v3`` options; each value is read as YAML.

    Raises:
        SpecError: An item is not ``key=values`` or has no values.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise SpecError([("--grid", f"must look like key.path=v1,v2,..., got '{item}'")])
        key, _, raw = item.partition("=")
        values = [_yaml_value(v) for v in _split_values(raw)]
        if not values:
            raise SpecError([(f"--grid {key}", "needs at least one value")])
        grid[key.strip()] = values
    return grid


def _split_values(raw: str) -> list[str]:
    """Split on commas outside brackets, so ``[8,8],[16,16]`` gives two values."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [v.strip() for v in out if v.strip()]


def _yaml_value(text: str) -> Any:
    from dlrun.spec import load_yaml_text

    try:
        return load_yaml_text(text)
    except yaml.YAMLError:
        return text


def _short(key: str, keys: list[str]) -> str:
    last = re.split(r"[.\[\]]+", key.strip("]"))[-1]
    same = [k for k in keys if re.split(r"[.\[\]]+", k.strip("]"))[-1] == last]
    return last if len(same) == 1 else key


def _folder_value(v: Any) -> str:
    text = (
        yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip() if not isinstance(v, str) else v
    )
    return re.sub(r"[^A-Za-z0-9_.+\-]+", "_", text).strip("_") or "_"


def expand(config: Path, sets: list[str], grid_items: list[str]) -> tuple[Spec, list[SweepPoint]]:
    """Validate the base spec and every point of the grid (YAML ``sweep.grid`` plus ``--grid``).

    Returns:
        The base spec and the points in grid order (the last key varies fastest).

    Raises:
        SpecError: Every problem of every point, each path prefixed by the point's overrides.
    """
    raw = apply_overrides(read_yaml(config), sets)
    base = validate(raw, source=str(config))
    grid: dict[str, list[Any]] = dict(base.sweep.grid) if base.sweep else {}
    grid.update(parse_grid(grid_items))
    if not grid:
        raise InputError("a sweep needs a grid: --grid key.path=v1,v2 or a sweep.grid section in the spec")
    raw.pop("sweep", None)
    keys = list(grid)
    points: list[SweepPoint] = []
    problems: list[tuple[str, str]] = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, combo))
        label = ",".join(f"{_short(k, keys)}={_folder_value(v)}" for k, v in overrides.items())
        try:
            point_raw = apply_overrides(
                raw,
                [
                    f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                    for k, v in overrides.items()
                ],
            )
            spec = validate(point_raw, source=str(config))
        except SpecError as exc:
            problems += [(f"[{label}] {p}", m) for p, m in exc.problems]
            continue
        spec = spec.model_copy(update={"sweep": None})
        points.append(SweepPoint(overrides, label, spec))
    if problems:
        raise SpecError(problems, source=str(config))
    return base, points


def point_status(path: Path) -> str:
    """``finished``, ``running``, ``failed``, ``interrupted`` or ``pending`` from the point's state."""
    state = path / report.STATE
    if not state.exists():
        return "pending"
    return str(report.read_json(state).get("status", "pending"))


RunPoint = Callable[[SweepPoint, Path, bool], dict[str, Any]]


def run_sweep(
    base: Spec,
    points: list[SweepPoint],
    sweep_dir: Path,
    run_point: RunPoint,
    *,
    resume: bool = False,
    fail_fast: bool = False,
    note: Callable[[str], None] = lambda s: None,
) -> pd.DataFrame:
    """Run every point not yet finished, then write ``sweep.csv`` and the plots.

    Args:
        base: The base spec.
        points: From :func:`expand`.
        sweep_dir: The sweep folder; each point runs in ``sweep_dir/<point.folder>``.
        run_point: Runs one point into a folder (``resume`` says whether to continue it) and
            returns its summary; raises :class:`DlrunError` on failure.
        resume: Skip finished points and continue unfinished ones.
        fail_fast: Stop at the first failing point.
        note: Where one-line remarks go.

    Returns:
        The sweep table (also written as ``sweep.csv``).
    """
    writer = report.RunWriter(sweep_dir)
    report.write_json(
        sweep_dir / SWEEP_STATE,
        {
            "name": base.name,
            "points": [{"folder": p.folder, "overrides": p.overrides} for p in points],
            "status": "running",
        },
    )
    rows: list[dict[str, Any]] = []
    interrupted: Interrupted | None = None
    for i, point in enumerate(points):
        path = sweep_dir / point.folder
        status = point_status(path)
        row: dict[str, Any] = {**point.overrides, "folder": point.folder}
        if status == "finished":
            note(f"[{i + 1}/{len(points)}] {point.folder}: finished earlier, skipped")
            rows.append({**row, **_row_from_dir(path)})
            continue
        note(f"[{i + 1}/{len(points)}] {point.folder}")
        t0 = time.perf_counter()
        try:
            run_point(point, path, resume and status != "pending")
            rows.append({**row, **_row_from_dir(path), "duration_s": round(time.perf_counter() - t0, 2)})
        except Interrupted as exc:
            interrupted = exc
            rows.append({**row, "status": "interrupted", "error": str(exc)})
            break
        except DlrunError as exc:
            rows.append({**row, "status": "failed", "error": str(exc).splitlines()[0]})
            note(f"{point.folder}: failed: {str(exc).splitlines()[0]}")
            if fail_fast:
                break
    table = pd.DataFrame(rows)
    writer.write_table(SWEEP_CSV, table)
    _sweep_plots(writer, table, points, sweep_dir)
    report.write_json(
        sweep_dir / SWEEP_STATE,
        {
            "name": base.name,
            "points": [{"folder": p.folder, "overrides": p.overrides} for p in points],
            "status": "interrupted"
            if interrupted
            else (
                "finished"
                if all(r.get("status") == "finished" for r in rows) and len(rows) == len(points)
                else "failed"
            ),
        },
    )
    if interrupted:
        raise Interrupted(f"sweep interrupted; resume with: dlrun sweep --resume --out {sweep_dir} (same grid)")
    return table


def _row_from_dir(path: Path) -> dict[str, Any]:
    """Each metric's mean and interval (or single value) from a point's ``summary.json``."""
    row: dict[str, Any] = {"status": point_status(path)}
    state = report.read_json(path / report.STATE) if (path / report.STATE).exists() else {}
    summary_path = path / report.SUMMARY_JSON
    if summary_path.exists():
        summary = report.read_json(summary_path)
        row["main_metric"] = summary.get("main_metric")
        for m, block in summary.get("metrics", {}).items():
            if isinstance(block, dict):
                d = block.get(block.get("headline", "folds")) or block.get("folds") or {}
                row[f"{m}_mean"] = d.get("mean")
                row[f"{m}_ci_low"] = d.get("ci_low")
                row[f"{m}_ci_high"] = d.get("ci_high")
                row[f"{m}_n"] = d.get("n")
            else:
                row[f"{m}_mean"] = block
    if state.get("started") and state.get("ended"):
        import datetime as dt

        started = dt.datetime.fromisoformat(state["started"])
        ended = dt.datetime.fromisoformat(state["ended"])
        row["duration_s"] = round((ended - started).total_seconds(), 2)
    row["path"] = str(path)
    return row


def _sweep_plots(writer: report.RunWriter, table: pd.DataFrame, points: list[SweepPoint], sweep_dir: Path) -> None:
    from dlrun import plots

    if table.empty or "main_metric" not in table or table["main_metric"].dropna().empty:
        return
    metric = str(table["main_metric"].dropna().iloc[0])
    keys = list(points[0].overrides) if points else []
    done = table[table["status"] == "finished"]
    if done.empty:
        return
    for key in keys:
        short = _short(key, keys)
        others = [k for k in keys if k != key]
        cols = [c for c in (f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high") if c in done.columns]
        sub = done[[*keys, *cols]].copy()
        writer.plot(
            f"sweep_{_folder_value(short)}_{metric}",
            lambda ax, sub=sub, key=key, others=others: plots.sweep_metric(ax, sub, key, metric, others=others),
        )
    curves: dict[str, pd.DataFrame] = {}
    for _, r in done.iterrows():
        hist = Path(str(r["path"])) / report.HISTORY
        if hist.exists():
            h = pd.read_csv(hist)
            if "repeat" not in h:
                h = h.assign(repeat=0, fold=0)
            curves[",".join(f"{_short(k, keys)}={r[k]}" for k in keys)] = h
    if curves:
        first = next(iter(curves.values()))
        for m in dict.fromkeys(["loss", *[c for c in first.columns if c in (metric, "accuracy", "mae")]]):
            if m in first.columns:
                writer.plot(f"curves_{m}", lambda ax, m=m: plots.overlay_learning_curves(ax, curves, m))
