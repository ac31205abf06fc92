"""The CLI's consoles and what it prints besides tables: reporters, summaries, frames."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from dlrun.cli.progress import LogReporter, PlainReporter, RichReporter
from dlrun.cli.render import cv_summary_table, frame_table, train_summary_table
from dlrun.evaluation.summary import Summary
from dlrun.export.mlflow_export import log_finished_run
from dlrun.reporting import Reporter

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def reporter(log_every: int | None = None) -> Reporter:
    """Rich's live bar on a terminal; off one, few lines (:class:`LogReporter`) or one every ``log_every`` epochs."""
    if sys.stdout.isatty():
        return RichReporter(out)
    if log_every is None:
        return LogReporter(sys.stdout)
    return PlainReporter(sys.stdout, log_every=log_every)


def show(renderable: Any, width: int) -> None:
    """Print on the terminal console, or plain and ``width`` wide when stdout is a file or pipe."""
    if sys.stdout.isatty():
        out.print(renderable)
    else:
        Console(file=sys.stdout, width=width, color_system=None, force_terminal=False).print(renderable)


def print_frame(df: Any, cols: list[str], title: str) -> None:
    """A DataFrame (only ``cols`` when given) as a table."""
    show(frame_table(df[cols] if cols else df, title=title), 160)


def print_summary(summary: dict[str, Any], path: Path) -> None:
    """A train or cv run's table, headline, warnings (stderr) and folder."""
    show(cv_summary_table(summary) if summary.get("command") == "cv" else train_summary_table(summary), 120)
    headline = Summary(summary).headline
    if headline:
        out.print(headline, markup=False)
    for warning in summary.get("warnings") or []:
        err.print(f"warning: {warning}", markup=False)
    out.print(f"outputs: {path}", markup=False)


def track(folder: Path) -> None:
    """Log a finished run, sweep, search or batch into MLflow when its spec asks (``tracking.mlflow``).

    The run is finished and its folder complete whatever happens here, so a failure (MLflow missing,
    a tracking server down) is a warning on stderr, never the command's failure.
    """
    try:
        done = log_finished_run(folder)
    except Exception as exc:  # MLflow's own errors have no common base class; none may fail a finished run
        err.print(f"warning: MLflow tracking of {folder} failed: {' '.join(str(exc).split())}", markup=False)
        return
    if done is not None:
        out.print(f"mlflow: {done.text()}", markup=False)
