"""One page for many runs (``dlrun runs DIR --report index.html``): every run under a folder in one
sortable table, each row linking that run's own ``report.html``; sweeps and searches as groups with
their best point; failed and interrupted runs with their error.

The page is self-contained (no network): the table is sorted by a few lines of inline script.
It reads run folders only through the run index (:func:`dlrun.store.index.find_runs`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import jinja2

from dlrun import __version__
from dlrun.evaluation.summary import headline_block
from dlrun.report.runs_table import runs_rows
from dlrun.store.index import RunInfo, find_runs
from dlrun.store.io import now_iso, write_text
from dlrun.store.layout import REPORT_HTML, SEARCH_STATE, SWEEP_STATE


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def main_metric(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The main metric of a run's summary: name, estimate, interval, no-skill baseline, direction."""
    if not summary:
        return {}
    m = summary.get("main_metric")
    block = (summary.get("metrics") or {}).get(m)
    base = ((summary.get("baseline") or {}).get("metrics") or {}).get(m)
    row: dict[str, Any] = {"metric": m, "higher_is_better": True}
    if isinstance(block, dict):
        d = headline_block(block)
        row.update(mean=_number(d.get("mean")), ci_low=_number(d.get("ci_low")), ci_high=_number(d.get("ci_high")))
        row["higher_is_better"] = bool(block.get("higher_is_better", True))
    else:
        row["mean"] = _number(block)
    row["baseline"] = _number(headline_block(base).get("mean")) if isinstance(base, dict) else _number(base)
    return row


def _group_of(path: Path, root: Path) -> Path | None:
    """The sweep or search folder (at or under ``root``) that holds the run at ``path``, if any."""
    for parent in path.parents:
        if (parent / SWEEP_STATE).exists() or (parent / SEARCH_STATE).exists():
            return parent
        if parent == root:
            break
    return None


def _link(target: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(target, page_dir)).as_posix()


def page_rows(runs: list[RunInfo], root: Path, page_dir: Path) -> list[dict[str, Any]]:
    """One row per run: the ``dlrun runs`` columns, the main metric, the error, the group, the link."""
    rows = []
    for info, base in zip(runs, runs_rows(runs, root)):
        report = info.path / REPORT_HTML
        group = _group_of(info.path, root)
        rows.append(
            {
                **base,
                "metric": "",
                **dict.fromkeys(("mean", "ci_low", "ci_high", "baseline")),
                **main_metric(info.summary),
                "error": str(info.state.get("error") or ""),
                "group": _link(group, root) if group is not None else "",
                "group_kind": "search" if group is not None and (group / SEARCH_STATE).exists() else "sweep",
                "href": _link(report, page_dir) if report.is_file() else "",
            }
        )
    return rows


def groups(rows: list[dict[str, Any]], root: Path, page_dir: Path) -> list[dict[str, Any]]:
    """Sweeps and searches: their size, how many finished, and their best finished point."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r["group"]:
            continue
        g = out.setdefault(r["group"], {"name": r["group"], "kind": r["group_kind"], "rows": []})
        g["rows"].append(r)
    for g in out.values():
        done = [r for r in g["rows"] if r["status"] == "finished" and r.get("mean") is not None]
        g["finished"] = len(done)
        higher = all(r.get("higher_is_better", True) for r in done)
        g["best"] = (max if higher else min)(done, key=lambda r: r["mean"]) if done else None
        page = root / g["name"] / REPORT_HTML
        g["href"] = _link(page, page_dir) if page.is_file() else ""
    return sorted(out.values(), key=lambda g: g["name"])


def render(root: Path, out_file: Path) -> str:
    """The page's HTML for every run under ``root``, with links relative to ``out_file``'s folder."""
    root = Path(root).resolve()
    page_dir = Path(out_file).resolve().parent
    rows = page_rows(find_runs(root), root, page_dir)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dlrun.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("index.html.j2").render(
        root=str(root),
        rows=rows,
        groups=groups(rows, root, page_dir),
        failed=[r for r in rows if r["status"] not in ("finished", "running")],
        written=now_iso(),
        version=__version__,
    )


def write_index(root: Path, out_file: Path) -> Path:
    """Write the page for every run under ``root`` to ``out_file`` (atomically); return its path.

    Raises:
        InputError: ``root`` does not exist or is not a folder (from :func:`find_runs`).
    """
    out_file = Path(out_file)
    write_text(out_file, render(Path(root), out_file))
    return out_file
