"""What a report page shows, as plain data: one context per run, sweep or comparison.

:func:`build_context` decides which kind of page the paths make and gathers it; rendering is
:mod:`dlrun.report.html`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation import compare as cmp
from dlrun.evaluation.stats import interval_of
from dlrun.report import plots
from dlrun.report.parts import (
    curve_units,
    env_rows,
    estimate,
    figure_data_uri,
    folder_figures,
    interval_text,
    read_csv,
    read_json,
    read_text,
    script_json,
    table_data,
)
from dlrun.reporting import fmt_value
from dlrun.store import layout


def _run_context(path: Path) -> dict[str, Any]:
    summary = read_json(path / layout.SUMMARY_JSON)
    conf = float(summary.get("confidence") or 0.95)
    pct = f"{100 * conf:g}%"
    name = str(summary.get("name") or path.name)
    headline = (summary.get("headline") or {}).get("text") or f"{name}: {summary.get('mode', '')} run"
    base_metrics = (summary.get("baseline") or {}).get("metrics") or {}
    rows: list[list[str]] = []
    methods: list[str] = []
    if summary.get("command") == "cv":
        columns = [
            "metric",
            "estimate",
            "n",
            "mean",
            "std",
            "se",
            f"{pct} interval",
            "what the interval is",
            "no-skill mean",
            "training mean",
        ]
        for m, block in (summary.get("metrics") or {}).items():
            if not isinstance(block, dict):
                continue
            base = estimate(base_metrics.get(m))
            train = (summary.get("train_metrics") or {}).get(m) or {}
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if not d:
                    continue
                lead = est + (" (headline)" if est == block.get("headline") else "")
                rows.append(
                    [
                        m,
                        lead,
                        fmt_value(d.get("n")),
                        fmt_value(d.get("mean")),
                        fmt_value(d.get("std")),
                        fmt_value(d.get("se")),
                        interval_text(*interval_of(d)),
                        str(d.get("label") or d.get("kind") or ""),
                        fmt_value(base.get("mean")) if est == block.get("headline") else "",
                        fmt_value(train.get("mean")) if est == block.get("headline") else "",
                    ]
                )
                if d.get("method"):
                    methods.append(f"{m}, {est}: {d['method']}")
        reps = summary.get("repeats", 1)
        kind = (
            f"cross-validation ({summary.get('mode')}: {summary.get('n_models')} models, "
            f"{reps} repeat(s) \u00d7 {summary.get('folds')} fold(s), engine {summary.get('engine')})"
        )
        methods.append(
            f"No-skill baseline: {(summary.get('baseline') or {}).get('model', '')} fitted on each fold's training "
            "rows and scored on the same held-out rows."
        )
        data_table = table_data(read_csv(path / layout.SCORES))
        data_title = "Scores of every fold (scores.csv)"
    else:
        columns = ["metric", "held-out", "training", "no-skill baseline"]
        for m, v in (summary.get("metrics") or {}).items():
            rows.append(
                [
                    m,
                    fmt_value(v),
                    fmt_value((summary.get("train_metrics") or {}).get(m)),
                    fmt_value(base_metrics.get(m)),
                ]
            )
        if not rows:
            for m, v in (summary.get("train_metrics") or {}).items():
                rows.append([m, "\u2013", fmt_value(v), "\u2013"])
        kind = (
            f"one model ({summary.get('mode')}: {summary.get('n_train')} training rows, "
            f"{summary.get('n_test')} held-out rows, {summary.get('epochs')} epochs)"
        )
        methods.append(
            "One model scored once on held-out rows: a single number without an interval "
            "(use `dlrun cv` for an interval over resamples)."
        )
        methods.append(
            f"No-skill baseline: {(summary.get('baseline') or {}).get('model', '')} fitted on the training rows."
        )
        hist = read_csv(path / layout.HISTORY)
        data_table = table_data(hist.tail(20) if hist is not None else None)
        data_title = "Last epochs of history.csv"
    units = curve_units(read_text(path / layout.CONFIG), str(summary.get("task", "")))
    if units:
        methods.append(
            f"Units: held-out, training and baseline scores are in the target's original units; the per-epoch "
            f"loss and metrics of the learning curves are on the {units}, the scale training used."
        )
    env = read_json(path / layout.ENV) if (path / layout.ENV).is_file() else {}
    return {
        "folder": str(path),
        "kind": "run",
        "title": name,
        "subtitle": kind,
        "headline": headline,
        "warnings": [str(w) for w in summary.get("warnings") or []],
        "summary_columns": columns,
        "summary_rows": rows,
        "methods": methods,
        "figures": folder_figures(path),
        "config": read_text(path / layout.CONFIG),
        "env": env_rows(env if isinstance(env, dict) else {}),
        "data_title": data_title,
        "data_table": data_table,
        "embedded_json": script_json(summary),
        "sections": [],
    }


# ----------------------------------------------------------------------------- a sweep
def _is_sweep(path: Path) -> bool:
    return (path / layout.SWEEP_STATE).is_file() or (path / layout.SWEEP_CSV).is_file()


def _sweep_context(path: Path) -> dict[str, Any]:
    state = read_json(path / layout.SWEEP_STATE) if (path / layout.SWEEP_STATE).is_file() else {}
    table = read_csv(path / layout.SWEEP_CSV)
    name = str(state.get("name") or path.name)
    n_points = len(state.get("points") or []) or (0 if table is None else len(table))
    headline = f"{name}: sweep of {n_points} point(s)"
    rows: list[list[str]] = []
    columns: list[str] = []
    config = ""
    env: list[tuple[str, str]] = []
    if table is not None and not table.empty and "main_metric" in table and table["main_metric"].notna().any():
        metric = str(table["main_metric"].dropna().iloc[0])
        keys = [str(k) for p in (state.get("points") or [])[:1] for k in p.get("overrides", {})]
        higher = True
        done = table[table["status"] == "finished"] if "status" in table else table
        if f"{metric}_mean" in done and done[f"{metric}_mean"].notna().any():
            first = Path(str(done["path"].iloc[0])) if "path" in done else None
            if first is not None and (first / layout.SUMMARY_JSON).is_file():
                block = read_json(first / layout.SUMMARY_JSON).get("metrics", {}).get(metric)
                higher = bool(block.get("higher_is_better", True)) if isinstance(block, dict) else True
                config = read_text(first / layout.CONFIG)
                env_d = read_json(first / layout.ENV) if (first / layout.ENV).is_file() else {}
                env = env_rows(env_d if isinstance(env_d, dict) else {})
            means = done[f"{metric}_mean"].astype(float).to_numpy()
            best_pos = int(np.nanargmax(means) if higher else np.nanargmin(means))
            best = done.iloc[best_pos]
            best_i = best_pos
            lo, hi = best.get(f"{metric}_ci_low"), best.get(f"{metric}_ci_high")
            interval = (
                f" (interval {fmt_value(lo)} to {fmt_value(hi)})"
                if lo is not None and hi is not None and pd.notna(lo) and pd.notna(hi)
                else ""
            )
            headline = (
                f"{name}: best of {len(done)} finished point(s) is {best.get('folder', best_i)} with "
                f"{metric} {fmt_value(best[f'{metric}_mean'])}{interval}; "
                f"{'higher' if higher else 'lower'} is better"
            )
        shown = [
            c
            for c in [
                *keys,
                f"{metric}_mean",
                f"{metric}_ci_low",
                f"{metric}_ci_high",
                f"{metric}_baseline",
                "status",
                "duration_s",
                "train_s",
            ]
            if c in table.columns
        ]
        shown_table = table_data(table[shown])
        if shown_table:
            columns, rows = shown_table["columns"], shown_table["rows"]
    methods = [
        "Each point runs the config's own evaluation mode with its overrides; its estimate and interval are "
        "that run's headline (see each point's own report.html).",
        "duration_s: wall time of the point; train_s: training time the engine measured (without imports, "
        "data loading and start-up, which the first point pays alone).",
    ]
    links = []
    for p in state.get("points") or []:
        folder = str(p.get("folder", ""))
        if folder and (path / folder / layout.REPORT_HTML).is_file():
            links.append({"href": f"{folder}/{layout.REPORT_HTML}", "text": folder})
    return {
        "folder": str(path),
        "kind": "sweep",
        "title": name,
        "subtitle": f"sweep of {n_points} point(s)",
        "headline": headline,
        "summary_columns": columns,
        "summary_rows": rows,
        "methods": methods,
        "figures": folder_figures(path),
        "config": config,
        "config_title": "Resolved config of the first point (each point adds its overrides)",
        "env": env,
        "data_title": "",
        "data_table": None,
        "embedded_json": script_json(state),
        "links": links,
        "sections": [],
    }


# ----------------------------------------------------------------------------- a comparison
def _labels(runs: Sequence[Any]) -> list[str]:
    """Run names, with the folder added where two runs share a name."""
    names = [r.name for r in runs]
    return [f"{r.name} ({r.path.name})" if names.count(r.name) > 1 else r.name for r in runs]


def comparison_figures(result: Any, labels: Sequence[str]) -> list[dict[str, str]]:
    """The comparison's plots, drawn in memory: each run's estimate, and the differences the tests estimate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 1.9 + 0.45 * len(result.table)), layout="constrained")
    plots.compare_estimates(fig.add_subplot(), result, labels)
    out = [
        {
            "name": "compare_estimates",
            "caption": "Each run's headline estimate and interval.",
            "src": figure_data_uri(fig),
        }
    ]
    rows, note = plots.difference_rows(result)
    if rows:
        fig = Figure(figsize=(8.0, 2.2 + 0.45 * len(rows)), layout="constrained")
        plots.compare_differences(
            fig.add_subplot(), rows, result.metric, confidence=float(result.confidence), note=note
        )
        out.append(
            {
                "name": "compare_differences",
                "caption": "The difference each test estimates, with its interval; zero means no difference.",
                "src": figure_data_uri(fig),
            }
        )
    return out


def _comparison_context(paths: Sequence[Path], metric: str | None = None, result: Any = None) -> dict[str, Any]:
    runs = [cmp.load_run(p) for p in paths]
    if result is None:
        result = cmp.compare(runs, metric)
    t = result.table
    labels = [str(x) for x in t["label"]] if "label" in t else _labels(runs)
    pct = f"{100 * float(result.confidence):g}%"
    columns = ["run", "folder", "mode", "estimate", "n", "mean", "std", "se", f"{pct} interval"]
    rows = [
        [
            label,
            str(r.get("run", "")),
            str(r.get("mode", "")),
            str(r.get("estimate", "")),
            fmt_value(r.get("n")),
            fmt_value(r.get("mean")),
            fmt_value(r.get("std")),
            fmt_value(r.get("se")),
            interval_text(r.get("ci_low"), r.get("ci_high")),
        ]
        for label, (_, r) in zip(labels, t.iterrows())
    ]
    verdicts: list[str] = []
    for v in [result.verdict, *(pw.get("verdict", "") for pw in result.pairwise)]:
        if v and str(v) not in verdicts:
            verdicts.append(str(v))
    methods = sorted(
        {str(pw["test"]["method"]) for pw in result.pairwise if pw.get("test") and pw["test"].get("method")}
    )
    methods += [f"{pw['a']} vs {pw['b']}: {pw['reason']}" for pw in result.pairwise if pw.get("reason")]
    if result.rope_text:
        methods.append(f"ROPE: {result.rope_text}")
    # the verdict's first sentence (difference, interval, p, conclusion); the rest is under Verdicts
    headline = verdicts[0].split(". ")[0].rstrip(".") + "." if verdicts else f"{len(runs)} runs compared"
    sections = []
    for run, label in zip(runs, labels):
        env = read_json(run.path / layout.ENV) if (run.path / layout.ENV).is_file() else {}
        sections.append(
            {
                "title": label,
                "headline": ((run.summary.get("headline") or {}).get("text") or ""),
                "config": read_text(run.path / layout.CONFIG),
                "env": env_rows(env if isinstance(env, dict) else {}),
                "href": _relative_report(run.path),
            }
        )
    return {
        "folder": "",
        "kind": "comparison",
        "title": f"comparison of {len(runs)} runs on {result.metric}",
        "subtitle": ", ".join(labels),
        "headline": headline,
        "verdicts": verdicts,
        "summary_columns": columns,
        "summary_rows": rows,
        "methods": methods,
        "figures": comparison_figures(result, labels),
        "config": "",
        "env": [],
        "data_title": "",
        "data_table": None,
        "embedded_json": script_json(
            {"metric": result.metric, "table": t.to_dict(orient="records"), "pairwise": result.pairwise}
        ),
        "sections": sections,
    }


def _relative_report(run_dir: Path) -> str:
    page = Path(run_dir) / layout.REPORT_HTML
    return page.resolve().as_uri() if page.is_file() else ""


# ----------------------------------------------------------------------------- entry points
def build_context(paths: Sequence[str | Path], metric: str | None = None, result: Any = None) -> dict[str, Any]:
    """What the page shows, as plain data.

    Args:
        paths: One run folder, one sweep folder, or several run folders (or globs/folders of
            runs, as ``dlrun compare`` takes them) for a comparison.
        metric: The metric a comparison compares (default: the first run's main metric).
        result: A :class:`dlrun.evaluation.compare.Comparison` already computed for these runs (``dlrun
            compare`` passes its own, with its ROPE, pairs and labels).

    Raises:
        InputError: A path is not a run, a sweep or a folder of runs.
    """
    if not paths:
        raise InputError("report needs at least one run or sweep folder; got none")
    if len(paths) == 1:
        p = Path(paths[0])
        if p.is_dir() and _is_sweep(p):
            return _sweep_context(p)
        if (p / layout.SUMMARY_JSON).is_file():
            return _run_context(p)

    run_dirs = cmp.expand_run_dirs([str(p) for p in paths])
    if len(run_dirs) == 1:
        return _run_context(run_dirs[0])
    return _comparison_context(run_dirs, metric, result)
