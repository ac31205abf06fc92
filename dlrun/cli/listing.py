"""Commands that look at run folders: ``status``, ``runs`` (a table, a CSV, or one HTML page), ``clean``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from dlrun.cli.output import out, print_frame
from dlrun.report.batch_page import write_index
from dlrun.report.runs_table import runs_rows, status_rows
from dlrun.store.index import cleanable, find_runs
from dlrun.store.io import write_csv


def status(
    directory: Annotated[Path, typer.Argument(help="A run directory or a folder of runs.")] = Path("outputs"),
) -> None:
    """Show each run's state, progress and ETA (works while a nohup job is still running)."""
    runs = find_runs(directory, folders=True)
    if not runs:
        out.print(f"no runs under {directory}", markup=False)
        return
    print_frame(pd.DataFrame(status_rows(runs, directory)), [], f"runs under {directory}")


def runs(
    directory: Annotated[Path, typer.Argument(help="Folder to search for runs.")] = Path("outputs"),
    csv: Annotated[Path | None, typer.Option("--csv", help="Export the table to this CSV.")] = None,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Also write one sortable HTML page of every run, linking each run's report.html."
        ),
    ] = None,
) -> None:
    """List runs: name, mode, main metric with its interval, status, duration, start time."""
    found = find_runs(directory, folders=True)
    df = pd.DataFrame(runs_rows(found, directory))
    if csv:
        write_csv(csv, df)
    if df.empty:
        out.print(f"no runs under {directory}", markup=False)
    else:
        print_frame(df, [], f"{len(df)} run(s) under {directory}")
    if report_file:
        out.print(f"report: {write_index(directory, report_file)}", markup=False)


def clean(
    directory: Annotated[Path, typer.Argument(help="Folder to search for runs.")] = Path("outputs"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove failed, interrupted or dead runs (asks first)."""
    victims = cleanable(find_runs(directory))
    if not victims:
        out.print("nothing to clean", markup=False)
        return
    for r in victims:
        out.print(f"{r.status:12s} {r.path}", markup=False)
    if not yes and not typer.confirm(f"remove these {len(victims)} run(s)?", default=False):
        raise typer.Exit(1)
    for r in victims:
        shutil.rmtree(r.path)
    out.print(f"removed {len(victims)} run(s)", markup=False)
