"""``dlrun export``: finished run folders into other tools (``dlrun export mlflow``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.output import err, out
from dlrun.export.mlflow_export import DEFAULT_EXPERIMENT, export_mlflow

export_app = typer.Typer(
    name="export",
    help="Export finished run folders to other tools (MLflow).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@export_app.command("mlflow")
def mlflow_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run, sweep, search or batch folders (every finished run under each).")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="MLflow tracking URI, e.g. sqlite:///mlflow.db (default: MLFLOW_TRACKING_URI)."
        ),
    ] = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment (created when missing).")
    ] = DEFAULT_EXPERIMENT,
) -> None:
    """Log finished runs into MLflow: spec as params, estimates and intervals as metrics, plots and report as
    artifacts; a sweep or search as a parent run with one child per point or trial. Exporting again adds
    only what is new."""
    done = export_mlflow(run_dirs, tracking_uri, experiment)
    for line in done.skipped:
        err.print(f"not finished, skipped: {line}", markup=False)
    out.print(done.text(), markup=False)
