"""The building blocks of a report page: files read from a run folder, tables and figures as
display data, and JSON safe to embed. Everything here is pure reading and formatting."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from markupsafe import Markup

from dlrun.errors import InputError
from dlrun.evaluation.summary import headline_block
from dlrun.reporting import fmt_value, transformed_target_note
from dlrun.store import layout

#: Order and captions of the plots a run folder holds, by file-name prefix.
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


def finite_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and NumPy scalars as Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
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


def script_json(obj: Any) -> Any:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` to end it early."""
    text = json.dumps(finite_json(obj), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def interval_text(lo: Any, hi: Any) -> str:
    """``0.7306 to 0.9006``, or a dash where there is no interval (a bound None or not finite)."""
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in (lo, hi)):
        return "\u2013"
    return f"{fmt_value(lo)} to {fmt_value(hi)}"


def read_json(path: Path) -> Any:
    """The JSON in ``path``; InputError naming the file when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} must be readable JSON; reading it failed: {exc}") from None


def read_text(path: Path) -> str:
    """The text of ``path``, or "" when it is absent or unreadable (optional parts of a page)."""
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


def plot_order(name: str) -> tuple[int, str]:
    """Sort key of a plot file's stem: its family's place in :data:`_FIGURES`, then its name."""
    for i, (prefix, _) in enumerate(_FIGURES):
        if name.startswith(prefix):
            return i, name
    return len(_FIGURES), name


def caption(name: str) -> str:
    """The caption of a plot file's stem, by its family; "" for an unknown one."""
    for prefix, caption in _FIGURES:
        if name.startswith(prefix):
            return caption
    return ""


def folder_figures(folder: Path) -> list[dict[str, str]]:
    """Every PNG under ``folder/plots`` as ``{name, caption, src}``, in reading order."""
    plots = Path(folder) / layout.PLOTS
    if not plots.is_dir():
        return []
    out = []
    for png in sorted(plots.glob("*.png"), key=lambda p: plot_order(p.stem)):
        out.append({"name": png.stem, "caption": caption(png.stem), "src": png_data_uri(png.read_bytes())})
    return out


def table_data(df: pd.DataFrame | None, max_rows: int = 500) -> dict[str, Any] | None:
    """A DataFrame as ``{columns, rows, truncated}`` of display strings."""
    if df is None or df.empty:
        return None
    shown = df.head(max_rows)
    rows = [[fmt_value(v) for v in row] for row in shown.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in df.columns], "rows": rows, "truncated": max(0, len(df) - max_rows)}


def read_csv(path: Path) -> pd.DataFrame | None:
    """The table in ``path``, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def env_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    """``env.json`` as ``(key, text)`` rows; the command line joined, nested values as JSON."""
    rows = []
    for k, v in env.items():
        if k == "command" and isinstance(v, list):
            v = " ".join(map(str, v))
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        rows.append((str(k), str(v)))
    return rows


def estimate(block: Any) -> dict[str, Any]:
    """The headline statistics of a summary metric block (or ``{"mean": value}`` for a single score)."""
    if isinstance(block, dict):
        return headline_block(block)
    return {"mean": block}


def curve_units(config_text: str, task: str) -> str:
    """What the per-epoch values are measured in when the run transformed its target (else "")."""
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
