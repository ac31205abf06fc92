"""Rich renderables for the CLI. Pure: each function builds a renderable and returns it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dlrun.evaluation import stats
from dlrun.evaluation.summary import headline_block, headline_name
from dlrun.reporting import fmt_value as _f


def cv_summary_table(summary: dict[str, Any]) -> Table:
    """Every metric's headline estimate with its interval, beside the no-skill baseline."""
    interval = stats.interval_column_title(
        [headline_block(b).get("kind") for b in summary["metrics"].values()], summary.get("confidence", 0.95)
    )
    table = Table(
        title=f"{summary['name']}: {summary['n_models']} models ({summary['mode']}, engine {summary['engine']})",
        caption="std: of the fold scores; se: of the estimate, corrected where the estimate is 'corrected' "
        "(\u221acorrection\u00b7std, not std/\u221aJ, because folds share training rows; see the summary's method)",
    )
    for col in ("metric", "estimate", "n", "mean", "std (folds)", "se (estimate)", interval, "baseline mean"):
        table.add_column(col, justify="left" if col in ("metric", "estimate") else "right")
    for m, block in summary["metrics"].items():
        d = headline_block(block)
        bd = headline_block(summary["baseline"]["metrics"][m])
        table.add_row(
            m,
            headline_name(block),
            str(d["n"]),
            _f(d["mean"]),
            _f(d.get("std")),
            _f(d.get("se")),
            f"{_f(d.get('ci_low'))} – {_f(d.get('ci_high'))}",
            _f(bd["mean"]),
        )
    return table


def train_summary_table(summary: dict[str, Any]) -> Table:
    """Held-out, training and baseline value of each metric."""
    table = Table(title=f"{summary['name']}: {summary['mode']} ({summary['n_test']} held-out rows)")
    for col in ("metric", "held-out", "training", "baseline"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in summary["train_metrics"]:
        table.add_row(
            m,
            _f(summary["metrics"].get(m)),
            _f(summary["train_metrics"].get(m)),
            _f(summary["baseline"]["metrics"].get(m)),
        )
    return table


def model_table(rows: list[tuple[str, str, int | None]], total: int | None, input_shape: tuple[int, ...]) -> Table:
    """The layers ``dlrun validate`` would build."""
    table = Table(title=f"model (input {tuple(input_shape)})")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("output shape")
    table.add_column("params", justify="right")
    for i, (name, shape, params) in enumerate(rows):
        table.add_row(str(i), name, shape, "?" if params is None else f"{params:,}")
    table.add_row("", "[bold]total[/bold]", "", "?" if total is None else f"[bold]{total:,}[/bold]")
    return table


def frame_table(df: Any, title: str = "") -> Table:
    """A pandas DataFrame as a table (floats to 4 decimals)."""
    table = Table(title=title or None)
    for col in df.columns:
        table.add_column(str(col))
    for _, row in df.iterrows():
        table.add_row(*[_f(v) if isinstance(v, float) else str(v) for v in row.tolist()])
    return table


def datasets_table(rows: list[dict[str, Any]]) -> Table:
    """The named datasets and where each is available."""
    table = Table(title="named datasets")
    if not rows:
        return table
    for col in rows[0]:
        table.add_column(str(col))
    for r in rows:
        table.add_row(*[str(v) for v in r.values()])
    return table
