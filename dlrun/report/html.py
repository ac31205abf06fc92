"""One self-contained HTML page for a run, a sweep or a comparison of runs.

The page embeds everything it shows: plots as base64 PNG data URIs, tables as HTML, the
resolved config and the environment as text, and ``summary.json`` as an inert JSON block a
script could read. It needs no network and no JavaScript. The page is rendered from a Jinja2
template (``dlrun/templates/report.html.j2``) with autoescaping on, so text from a run folder
can never inject markup.

Reading is pure (:func:`build_context` returns a dict); :func:`write_report` writes the file
atomically through :mod:`dlrun.store.io`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation.summary import headline_block
from dlrun.store import layout

#: The page ``train``, ``cv`` and ``sweep`` write into their output folder.
REPORT_HTML: str = getattr(layout, "REPORT_HTML", "report.html")
_SWEEP_STATE: str = getattr(layout, "SWEEP_STATE", "sweep.json")
_SWEEP_CSV: str = getattr(layout, "SWEEP_CSV", "sweep.csv")

# Order and captions of the plots a run folder holds, by file-name prefix.
_FIGURES: tuple[tuple[str, str], ...] = (
    (
        "learning_curve_",
        "Learning curve: training, validation and held-out values per epoch. A training curve that keeps "
        "improving while the held-out curve stalls or worsens is overfitting.",
    ),
    (
        "scores_",
        "Every held-out score with the headline estimate, its interval and the no-skill baseline.",
    ),
    ("repeats_", "How the estimate settles as repeats are added."),
    ("confusion_matrix", "Which classes are mistaken for which, as counts and as shares of each true class."),
    ("predicted_vs_true", "Held-out predictions against the true values."),
    ("qq_", "Whether the scores look normal enough for a Student-t interval."),
    ("sweep_", "The headline estimate of each sweep point against the swept value."),
    ("curves_", "Per-epoch curves of every sweep point."),
)


def _fmt(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, None/NaN as a dash."""
    if v is None:
        return "\u2013"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "\u2013"
        # a learning rate of 1e-5 must not read 0.0000
        return f"{v:.{digits}g}" if v != 0 and abs(v) < 10**-digits * 10 else f"{v:.{digits}f}"
    return str(v)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and NumPy scalars as Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _script_json(obj: Any) -> Any:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` to end it early."""
    from markupsafe import Markup

    text = json.dumps(_finite(obj), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _block_interval(block: dict[str, Any]) -> tuple[Any, Any]:
    """A summary block's interval, whatever it is named (``ci_``, ``naive_``, ``precision_``)."""
    for prefix in ("ci", "naive", "precision"):
        if f"{prefix}_low" in block:
            return block.get(f"{prefix}_low"), block.get(f"{prefix}_high")
    return None, None


def _interval(lo: Any, hi: Any) -> str:
    """``0.7306 to 0.9006``, or a dash where there is no interval."""
    a, b = _fmt(lo), _fmt(hi)
    return "\u2013" if "\u2013" in (a, b) else f"{a} to {b}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} must be readable JSON; reading it failed: {exc}") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else ""
    except OSError:
        return ""


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_data_uri(fig: Any) -> str:
    """A Matplotlib figure as a PNG data URI (rendered in memory, never written)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return png_data_uri(buf.getvalue())


def _plot_order(name: str) -> tuple[int, str]:
    for i, (prefix, _) in enumerate(_FIGURES):
        if name.startswith(prefix):
            return i, name
    return len(_FIGURES), name


def _caption(name: str) -> str:
    for prefix, caption in _FIGURES:
        if name.startswith(prefix):
            return caption
    return ""


def _figures(folder: Path) -> list[dict[str, str]]:
    """Every PNG under ``folder/plots`` as ``{name, caption, src}``, in reading order."""
    plots = Path(folder) / layout.PLOTS
    if not plots.is_dir():
        return []
    out = []
    for png in sorted(plots.glob("*.png"), key=lambda p: _plot_order(p.stem)):
        out.append({"name": png.stem, "caption": _caption(png.stem), "src": png_data_uri(png.read_bytes())})
    return out


def _frame(df: pd.DataFrame | None, max_rows: int = 500) -> dict[str, Any] | None:
    """A DataFrame as ``{columns, rows, truncated}`` of display strings."""
    if df is None or df.empty:
        return None
    shown = df.head(max_rows)
    rows = [[_fmt(v) for v in row] for row in shown.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in df.columns], "rows": rows, "truncated": max(0, len(df) - max_rows)}


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def _env_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for k, v in env.items():
        if k == "command" and isinstance(v, list):
            v = " ".join(map(str, v))
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        rows.append((str(k), str(v)))
    return rows


def _estimate(block: Any) -> dict[str, Any]:
    """The headline statistics of a summary metric block (or ``{"mean": value}`` for a single score)."""
    if isinstance(block, dict):
        return headline_block(block)
    return {"mean": block}


def _curve_units(config_text: str, task: str) -> str:
    """What the per-epoch values are measured in when the run transformed its target (else "")."""
    import yaml

    from dlrun.reporting import transformed_target_note

    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError:
        return ""
    if not isinstance(config, dict):
        return ""
    transform = str(((config.get("preprocessing") or {}).get("target") or {}).get("transform") or "none")
    target = (config.get("data") or {}).get("target")
    targets = [str(t) for t in target] if isinstance(target, list) else ([str(target)] if target else [])
    return transformed_target_note(transform, targets, task)


# ----------------------------------------------------------------------------- a run
def _run_context(path: Path) -> dict[str, Any]:
    summary = _read_json(path / layout.SUMMARY_JSON)
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
            base = _estimate(base_metrics.get(m))
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
                        _fmt(d.get("n")),
                        _fmt(d.get("mean")),
                        _fmt(d.get("std")),
                        _fmt(d.get("se")),
                        _interval(*_block_interval(d)),
                        str(d.get("label") or d.get("kind") or ""),
                        _fmt(base.get("mean")) if est == block.get("headline") else "",
                        _fmt(train.get("mean")) if est == block.get("headline") else "",
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
        data_table = _frame(_read_csv(path / layout.SCORES))
        data_title = "Scores of every fold (scores.csv)"
    else:
        columns = ["metric", "held-out", "training", "no-skill baseline"]
        for m, v in (summary.get("metrics") or {}).items():
            rows.append(
                [
                    m,
                    _fmt(v),
                    _fmt((summary.get("train_metrics") or {}).get(m)),
                    _fmt(base_metrics.get(m)),
                ]
            )
        if not rows:
            for m, v in (summary.get("train_metrics") or {}).items():
                rows.append([m, "\u2013", _fmt(v), "\u2013"])
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
        hist = _read_csv(path / layout.HISTORY)
        data_table = _frame(hist.tail(20) if hist is not None else None)
        data_title = "Last epochs of history.csv"
    units = _curve_units(_read_text(path / layout.CONFIG), str(summary.get("task", "")))
    if units:
        methods.append(
            f"Units: held-out, training and baseline scores are in the target's original units; the per-epoch "
            f"loss and metrics of the learning curves are on the {units}, the scale training used."
        )
    env = _read_json(path / layout.ENV) if (path / layout.ENV).is_file() else {}
    return {
        "folder": str(path),
        "kind": "run",
        "title": name,
        "subtitle": kind,
        "headline": headline,
        "summary_columns": columns,
        "summary_rows": rows,
        "methods": methods,
        "figures": _figures(path),
        "config": _read_text(path / layout.CONFIG),
        "env": _env_rows(env if isinstance(env, dict) else {}),
        "data_title": data_title,
        "data_table": data_table,
        "embedded_json": _script_json(summary),
        "sections": [],
    }


# ----------------------------------------------------------------------------- a sweep
def _is_sweep(path: Path) -> bool:
    return (path / _SWEEP_STATE).is_file() or (path / _SWEEP_CSV).is_file()


def _sweep_context(path: Path) -> dict[str, Any]:
    state = _read_json(path / _SWEEP_STATE) if (path / _SWEEP_STATE).is_file() else {}
    table = _read_csv(path / _SWEEP_CSV)
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
                block = _read_json(first / layout.SUMMARY_JSON).get("metrics", {}).get(metric)
                higher = bool(block.get("higher_is_better", True)) if isinstance(block, dict) else True
                config = _read_text(first / layout.CONFIG)
                env_d = _read_json(first / layout.ENV) if (first / layout.ENV).is_file() else {}
                env = _env_rows(env_d if isinstance(env_d, dict) else {})
            means = done[f"{metric}_mean"].astype(float).to_numpy()
            best_pos = int(np.nanargmax(means) if higher else np.nanargmin(means))
            best = done.iloc[best_pos]
            best_i = best_pos
            lo, hi = best.get(f"{metric}_ci_low"), best.get(f"{metric}_ci_high")
            interval = (
                f" (interval {_fmt(lo)} to {_fmt(hi)})"
                if lo is not None and hi is not None and pd.notna(lo) and pd.notna(hi)
                else ""
            )
            headline = (
                f"{name}: best of {len(done)} finished point(s) is {best.get('folder', best_i)} with "
                f"{metric} {_fmt(best[f'{metric}_mean'])}{interval}; "
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
        frame = _frame(table[shown])
        if frame:
            columns, rows = frame["columns"], frame["rows"]
    methods = [
        "Each point runs the config's own evaluation mode with its overrides; its estimate and interval are "
        "that run's headline (see each point's own report.html).",
        "duration_s: wall time of the point; train_s: training time the engine measured (without imports, "
        "data loading and start-up, which the first point pays alone).",
    ]
    links = []
    for p in state.get("points") or []:
        folder = str(p.get("folder", ""))
        if folder and (path / folder / REPORT_HTML).is_file():
            links.append({"href": f"{folder}/{REPORT_HTML}", "text": folder})
    return {
        "folder": str(path),
        "kind": "sweep",
        "title": name,
        "subtitle": f"sweep of {n_points} point(s)",
        "headline": headline,
        "summary_columns": columns,
        "summary_rows": rows,
        "methods": methods,
        "figures": _figures(path),
        "config": config,
        "config_title": "Resolved config of the first point (each point adds its overrides)",
        "env": env,
        "data_title": "",
        "data_table": None,
        "embedded_json": _script_json(state),
        "links": links,
        "sections": [],
    }


# ----------------------------------------------------------------------------- a comparison
def _labels(runs: Sequence[Any]) -> list[str]:
    """Run names, with the folder added where two runs share a name."""
    names = [r.name for r in runs]
    return [f"{r.name} ({r.path.name})" if names.count(r.name) > 1 else r.name for r in runs]


def comparison_figures(result: Any, labels: Sequence[str]) -> list[dict[str, str]]:
    """The comparison's plots, drawn in memory: each run's estimate, and the paired differences."""
    from matplotlib.figure import Figure

    from dlrun.report import plots

    t = result.table
    out = []
    fig = Figure(figsize=(8.0, 1.9 + 0.45 * len(t)), layout="constrained")
    plots.compare_intervals(
        fig.add_subplot(), list(labels), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric
    )
    out.append(
        {
            "name": "compare_estimates",
            "caption": "Each run's headline estimate and interval.",
            "src": figure_data_uri(fig),
        }
    )
    forest = getattr(result, "forest", None)
    if forest is not None and not forest.empty:
        rows = [
            (
                f"{r['label']} \u2212 {r.get('reference', result.best)}",
                r["diff"],
                r["ci_low"],
                r["ci_high"],
                r["paired"],
            )
            for _, r in forest.iterrows()
        ]
        note = "Each run's paired difference to the best; Holm-adjusted p-values are in the verdicts."
    else:
        rows = [
            (
                f"{pw['a']} \u2212 {pw['b']}",
                pw["test"].get("mean_diff"),
                pw["test"].get("ci_low"),
                pw["test"].get("ci_high"),
                pw.get("paired"),
            )
            for pw in result.pairwise
            if pw.get("test")
        ]
        note = " ".join(
            sorted({str(pw.get("what") or pw["test"].get("method", "")) for pw in result.pairwise if pw.get("test")})
        )
    if rows:
        fig = Figure(figsize=(8.0, 2.2 + 0.45 * len(rows)), layout="constrained")
        plots.compare_forest(
            fig.add_subplot(),
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            result.metric,
            paired=[bool(r[4]) for r in rows],
            confidence=float(result.confidence),
            note=note,
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
    from dlrun.evaluation import compare as cmp

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
            _fmt(r.get("n")),
            _fmt(r.get("mean")),
            _fmt(r.get("std")),
            _fmt(r.get("se")),
            _interval(r.get("ci_low"), r.get("ci_high")),
        ]
        for label, (_, r) in zip(labels, t.iterrows())
    ]
    verdicts: list[str] = []
    for v in [getattr(result, "verdict", ""), *(pw.get("verdict", "") for pw in result.pairwise)]:
        if v and str(v) not in verdicts:
            verdicts.append(str(v))
    methods = sorted(
        {str(pw["test"]["method"]) for pw in result.pairwise if pw.get("test") and pw["test"].get("method")}
    )
    methods += [f"{pw['a']} vs {pw['b']}: {pw['reason']}" for pw in result.pairwise if pw.get("reason")]
    if getattr(result, "rope_text", ""):
        methods.append(f"ROPE: {result.rope_text}")
    # the verdict's first sentence (difference, interval, p, conclusion); the rest is under Verdicts
    headline = verdicts[0].split(". ")[0].rstrip(".") + "." if verdicts else f"{len(runs)} runs compared"
    sections = []
    for run, label in zip(runs, labels):
        env = _read_json(run.path / layout.ENV) if (run.path / layout.ENV).is_file() else {}
        sections.append(
            {
                "title": label,
                "headline": ((run.summary.get("headline") or {}).get("text") or ""),
                "config": _read_text(run.path / layout.CONFIG),
                "env": _env_rows(env if isinstance(env, dict) else {}),
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
        "embedded_json": _script_json(
            {"metric": result.metric, "table": t.to_dict(orient="records"), "pairwise": result.pairwise}
        ),
        "sections": sections,
    }


def _relative_report(run_dir: Path) -> str:
    page = Path(run_dir) / REPORT_HTML
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
    from dlrun.evaluation import compare as cmp

    run_dirs = cmp.expand_run_dirs([str(p) for p in paths])
    if len(run_dirs) == 1:
        return _run_context(run_dirs[0])
    return _comparison_context(run_dirs, metric, result)


def render(context: dict[str, Any]) -> str:
    """The HTML page for a context from :func:`build_context`."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dlrun.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from dlrun import __version__

    return env.get_template("report.html.j2").render({"links": [], "verdicts": [], **context, "version": __version__})


def default_compare_path(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> Path:
    """Where a comparison's page goes by default: beside the runs, named after them.

    ``<common parent of the runs>/compare_<first>_vs_<second>[_and_<k>_more].html``, with the
    runs' labels (``dlrun compare --label``, or names made distinct) where given, else their names.
    """
    from dlrun.evaluation import compare as cmp

    run_dirs = cmp.expand_run_dirs([str(p) for p in paths])
    names = list(labels[:2]) if labels else [cmp.load_run(p).name for p in run_dirs[:2]]
    stem = "_vs_".join(re.sub(r"[^A-Za-z0-9_.+-]+", "_", n) for n in names) or "runs"
    if len(run_dirs) > 2:
        stem += f"_and_{len(run_dirs) - 2}_more"
    parents = [p.resolve().parent for p in run_dirs]
    common = Path(_common_path(parents))
    return common / f"compare_{stem[:120]}.html"


def _common_path(paths: Sequence[Path]) -> str:
    import os

    return os.path.commonpath([str(p) for p in paths])


def write_report(
    paths: Sequence[str | Path], out: Path | None = None, metric: str | None = None, result: Any = None
) -> Path:
    """Render the page for ``paths`` and write it atomically.

    Args:
        paths: As :func:`build_context`.
        out: The HTML file; default ``<folder>/report.html`` for one run or sweep folder and
            :func:`default_compare_path` for a comparison.
        metric: As :func:`build_context`.
        result: As :func:`build_context`.

    Returns:
        The file written.
    """
    from dlrun.store.io import write_text

    context = build_context(paths, metric, result)
    if out is None:
        if context["kind"] == "comparison":
            labels = [row[0] for row in context["summary_rows"]]
            out = default_compare_path(paths, labels)
        else:
            out = Path(context["folder"]) / REPORT_HTML
    write_text(Path(out), render(context))
    return Path(out)
