"""The command line. The only module that imports typer, prints, or exits.

Core errors (:mod:`dlrun.errors`) become one readable line on stderr and an exit
code (2 bad input, 1 run-time failure, 130 interrupted); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

# Before anything can import TensorFlow: its C++ start-up lines would flood logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from dlrun import __version__
from dlrun.errors import DlrunError, InputError

app = typer.Typer(
    name="dlrun",
    help="Run Keras experiments from YAML specs, with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_STATE: dict[str, Any] = {"debug": False}
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec field: key.path=value (repeatable), validated like the file."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Run directory (default: OUTPUT_DIR/NAME/TIMESTAMP).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out, skipping what is finished.")]
LogEveryOpt = Annotated[
    int, typer.Option("--log-every", help="When stdout is not a terminal: a line every N epochs (0: per fold only).")
]


def _version(value: bool) -> None:
    if value:
        out.print(f"dlrun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """dlrun: YAML spec → data → Keras model → held-out scores with intervals."""
    _STATE["debug"] = debug


def _reporter(log_every: int = 1) -> Any:
    from dlrun.progress import PlainReporter, RichReporter

    if sys.stdout.isatty():
        return RichReporter(out)
    return PlainReporter(sys.stdout, log_every=log_every)


def _run_dir(spec: Any, out_dir: Path | None, resume: bool) -> Path:
    from dlrun import report

    if resume:
        if out_dir is None:
            raise InputError("--resume needs --out RUN_DIR: the run directory to continue")
        # a missing folder starts fresh, so scripts can always pass --resume
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir
    if out_dir is not None:
        if (out_dir / report.STATE).exists():
            raise InputError(
                f"--out '{out_dir}' already holds a run; add --resume to continue it, or choose another folder"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir
    return report.new_run_dir(spec.output_dir, spec.name)


def _load(config: Path, sets: list[str] | None) -> Any:
    from dlrun.spec import load_spec

    return load_spec(config, sets or [])


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    from dlrun.render import cv_summary_table, train_summary_table

    _show(cv_summary_table(summary) if summary.get("command") == "cv" else train_summary_table(summary), 120)
    if "headline" in summary:
        out.print(summary["headline"]["text"], markup=False)
    out.print(f"outputs: {path}", markup=False)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    smoothing: Annotated[
        float, typer.Option("--smoothing", help="Exponential smoothing of plotted curves (0-0.99).")
    ] = 0.0,
    log_every: LogEveryOpt = 1,
) -> None:
    """Train one model (split, validation_split or none) and write every output."""
    from dlrun.locking import RunLock
    from dlrun.runner import run_train
    from dlrun.runtime import quiet_tensorflow

    spec = _load(config, sets)
    quiet_tensorflow()
    path = _run_dir(spec, out_dir, resume)
    with RunLock(path):
        outcome = run_train(spec, path, _reporter(log_every), argv=sys.argv, smoothing=smoothing)
    _print_summary(outcome.summary, outcome.path)


ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="local or ray (overrides runtime.executor).")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster address to join (ray start --head).")]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failure.")]


def _runtime_sets(executor: str | None, address: str | None) -> list[str]:
    extra = []
    if executor:
        extra.append(f"runtime.executor={executor}")
    if address:
        extra.append(f"runtime.address={address}")
    return extra


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="The YAML spec (its sweep.grid, if any, is used too).")],
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="key.path=v1,v2,... (repeatable); every combination runs.")
    ] = None,
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    fail_fast: FailFastOpt = False,
    log_every: LogEveryOpt = 1,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run every combination of a grid with the config's own mode; write sweep.csv and plots."""
    from dlrun import report
    from dlrun.runner import execute
    from dlrun.runtime import quiet_tensorflow
    from dlrun.sweep import expand, run_sweep

    base, points = expand(config, list(sets or []) + _runtime_sets(executor, address), list(grid or []))
    quiet_tensorflow()
    if resume:
        if out_dir is None:
            raise InputError("--resume needs --out SWEEP_DIR: the sweep folder to continue")
        sweep_dir = out_dir
    elif out_dir is not None:
        if any(out_dir.glob("*/" + report.STATE)):
            raise InputError(f"--out '{out_dir}' already holds a sweep; add --resume to continue it")
        sweep_dir = out_dir
    else:
        sweep_dir = report.new_run_dir(base.output_dir, f"{base.name}_sweep")
    reporter = _reporter(log_every)
    out.print(f"sweep of {len(points)} point(s) into {sweep_dir}", markup=False)
    if base.runtime.executor == "ray":
        from dlrun.distributed import run_points_ray

        table = run_points_ray(
            base, points, sweep_dir, resume=resume, fail_fast=fail_fast, note=reporter.note, argv=sys.argv
        )
    else:
        table = run_sweep(
            base,
            points,
            sweep_dir,
            lambda p, path, res: execute(p.spec, path, reporter, argv=sys.argv).summary,
            resume=resume,
            fail_fast=fail_fast,
            note=reporter.note,
        )
    main = (
        str(table["main_metric"].dropna().iloc[0])
        if "main_metric" in table and table["main_metric"].notna().any()
        else ""
    )
    keys = list(points[0].overrides) if points else []
    shown = [
        *keys,
        *[c for c in (f"{main}_mean", f"{main}_ci_low", f"{main}_ci_high", "status", "duration_s") if c in table],
    ]
    _print_frame(table, shown, f"sweep: {sweep_dir}")
    failed = int((table["status"] != "finished").sum()) if "status" in table else len(points)
    if failed:
        err.print(f"{failed} point(s) did not finish", markup=False)
        raise typer.Exit(1)


@app.command()
def batch(
    configs: Annotated[list[str], typer.Argument(help="YAML specs and globs (configs/*.yaml).")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    fail_fast: FailFastOpt = False,
    log_every: LogEveryOpt = 1,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run configs in turn (train or cv by their mode); go on after a failure; exit 1 if any failed."""
    from dlrun import report
    from dlrun.batch import expand_configs, run_batch
    from dlrun.progress import fmt_duration
    from dlrun.runner import execute
    from dlrun.runtime import quiet_tensorflow
    from dlrun.spec import load_spec

    paths = expand_configs(configs)
    extra = list(sets or []) + _runtime_sets(executor, address)
    quiet_tensorflow()
    if resume and out_dir is None:
        raise InputError("--resume needs --out BATCH_DIR: the batch folder to continue")
    batch_dir = out_dir or report.new_run_dir("outputs", "batch")
    reporter = _reporter(log_every)
    reporter.note(f"batch of {len(paths)} config(s) into {batch_dir}")

    def run_one(config: Path, path: Path, res: bool) -> dict[str, Any]:
        spec = load_spec(config, extra)
        return execute(spec, path, reporter, argv=sys.argv).summary

    if executor == "ray" or (extra and "runtime.executor=ray" in extra):
        from dlrun.distributed import run_batch_ray

        items = run_batch_ray(
            paths, batch_dir, extra, resume=resume, fail_fast=fail_fast, note=reporter.note, argv=sys.argv
        )
    else:
        items = run_batch(paths, batch_dir, run_one, resume=resume, fail_fast=fail_fast, note=reporter.note)
    import pandas as pd

    table = pd.DataFrame(
        [
            {
                "config": str(i.config),
                "status": i.status,
                "time": fmt_duration(i.seconds),
                "result / error": i.error or i.headline,
            }
            for i in items
        ]
    )
    _print_frame(table, list(table.columns), f"batch: {batch_dir}")
    if any(i.status != "finished" for i in items):
        raise typer.Exit(1)


def _print_frame(df: Any, cols: list[str], title: str) -> None:
    from dlrun.render import frame_table

    _show(frame_table(df[cols] if cols else df, title=title), 160)


def _show(renderable: Any, width: int) -> None:
    """Print on the terminal console, or plain and ``width`` wide when stdout is a file or pipe."""
    if sys.stdout.isatty():
        out.print(renderable)
    else:
        Console(file=sys.stdout, width=width, color_system=None, force_terminal=False).print(renderable)


@app.command()
def status(
    directory: Annotated[Path, typer.Argument(help="A run directory or a folder of runs.")] = Path("outputs"),
) -> None:
    """Show each run's state, progress and ETA (works while a nohup job is still running)."""
    import pandas as pd

    from dlrun.index import find_runs, status_rows

    runs = find_runs(directory)
    if not runs:
        out.print(f"no runs under {directory}", markup=False)
        return
    _print_frame(pd.DataFrame(status_rows(runs, directory)), [], f"runs under {directory}")


@app.command()
def runs(
    directory: Annotated[Path, typer.Argument(help="Folder to search for runs.")] = Path("outputs"),
    csv: Annotated[Path | None, typer.Option("--csv", help="Export the table to this CSV.")] = None,
) -> None:
    """List runs: name, mode, main metric with its interval, status, duration, start time."""
    import pandas as pd

    from dlrun.index import find_runs, runs_rows

    found = find_runs(directory)
    df = pd.DataFrame(runs_rows(found, directory))
    if csv:
        from dlrun.report import write_csv

        write_csv(csv, df)
    if df.empty:
        out.print(f"no runs under {directory}", markup=False)
        return
    _print_frame(df, [], f"{len(df)} run(s) under {directory}")


@app.command()
def clean(
    directory: Annotated[Path, typer.Argument(help="Folder to search for runs.")] = Path("outputs"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove failed, interrupted or dead runs (asks first)."""
    import shutil

    from dlrun.index import cleanable, find_runs

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


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    engine: Annotated[
        str | None, typer.Option("--engine", help="auto, stacked or sequential (overrides runtime.engine).")
    ] = None,
    log_every: LogEveryOpt = 1,
    executor: Annotated[
        str | None, typer.Option("--executor", help="local or ray (overrides runtime.executor).")
    ] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address to join.")] = None,
) -> None:
    """Cross-validate (kfold, repeated_kfold, repeated_split) with statistics and plots."""
    from dlrun.locking import RunLock
    from dlrun.runner import run_cv
    from dlrun.runtime import quiet_tensorflow

    extra = list(sets or []) + _runtime_sets(executor, address)
    if engine:
        extra.append(f"runtime.engine={engine}")
    spec = _load(config, extra)
    quiet_tensorflow()
    path = _run_dir(spec, out_dir, resume)
    with RunLock(path):
        if spec.runtime.executor == "ray":
            from dlrun.distributed import run_cv_ray

            outcome = run_cv_ray(spec, path, _reporter(log_every), argv=sys.argv)
        else:
            outcome = run_cv(spec, path, _reporter(log_every), argv=sys.argv)
    _print_summary(outcome.summary, outcome.path)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    sets: SetOpt = None,
    no_data: Annotated[bool, typer.Option("--no-data", help="Check the spec only; do not read the data.")] = False,
) -> None:
    """Check a spec without training (and without importing TensorFlow); show the model."""
    from dlrun.render import model_table
    from dlrun.shapes import layer_table

    spec = _load(config, sets)
    out.print(f"{config}: valid spec '{spec.name}' (mode {spec.evaluation.mode})", markup=False)
    if no_data or spec.data.kind == "keras":
        return
    from dlrun.runner import prepare

    prep = prepare(spec)
    rows, total = layer_table(spec.model.entries, prep.input_shape)
    out.print(
        f"data: {len(prep.data.y)} rows, task {prep.task}, {len(prep.folds)} model(s) to train, "
        f"output width {prep.n_outputs}",
        markup=False,
    )
    out.print(model_table(rows, total, prep.input_shape))
    if rows and rows[-1][1] != "?":
        width = rows[-1][1].rsplit(",", 1)[-1].strip(" )")
        if width.isdigit() and int(width) != prep.n_outputs:
            from dlrun.errors import SpecError

            last = len(rows) - 1
            raise SpecError(
                [
                    (
                        f"model.layers[{last}].{rows[-1][0]}.units",
                        f"the output layer has {width} units but the {prep.task} target needs {prep.n_outputs}",
                    )
                ],
                source=str(config),
            )


@app.command()
def schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the spec (for editor completion and checks)."""
    from dlrun.spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out_file:
        from dlrun.report import write_text

        write_text(out_file, text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def datasets() -> None:
    """List the named datasets, their task and shape, and whether each is available locally."""
    from dlrun.datasets import dataset_status
    from dlrun.render import datasets_table

    rows = [{k: v for k, v in r.items() if k != "description"} for r in dataset_status()]
    out.print(datasets_table(rows))
    data_dir = os.environ.get("DLRUN_DATA_DIR")
    out.print(f"DLRUN_DATA_DIR={data_dir or '(unset)'}", markup=False)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A `dlrun train` run directory.")],
    input_csv: Annotated[Path, typer.Argument(help="Rows to predict: training layout or features only.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Write predictions here (default: stdout).")] = None,
) -> None:
    """Predict rows with a trained run's model and preprocessing; labels map back to their original form."""
    from dlrun.predict import predict_file
    from dlrun.runtime import quiet_tensorflow

    quiet_tensorflow()
    df = predict_file(run_dir, input_csv)
    if out_file:
        from dlrun.report import write_csv

        write_csv(out_file, df)
        err.print(f"{len(df)} predictions written to {out_file}", markup=False)
    else:
        df.to_csv(sys.stdout, index=False)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run directories or globs (outputs/sonar_*/*).")],
    metric: Annotated[str | None, typer.Option("--metric", help="Metric to compare (default: the main one).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the table to this CSV.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Save a plot of each run's mean and interval.")] = None,
) -> None:
    """Compare runs; two runs on identical splits get the Nadeau–Bengio corrected paired t-test."""
    from dlrun import compare as cmp

    paths = cmp.expand_run_dirs(runs)
    result = cmp.compare([cmp.load_run(p) for p in paths], metric)
    cols = [c for c in ("run", "mode", "n", "mean", "std", "se", "ci_low", "ci_high", "estimate") if c in result.table]
    _print_frame(result.table, cols, f"{result.metric} ({int(round(result.confidence * 100))}% intervals)")
    if result.test is not None:
        if not result.paired and result.test.get("warning"):
            err.print(f"warning: {result.test['warning']}", markup=False)
        out.print(result.verdict, markup=False)
        if result.reason:
            out.print(f"splits: {result.reason}", markup=False)
    for pw in result.pairwise if len(paths) > 2 else []:
        if pw.get("verdict"):
            out.print(pw["verdict"], markup=False)
    if csv:
        from dlrun.report import write_csv

        write_csv(csv, result.table)
        out.print(f"table written to {csv}", markup=False)
    if plot:
        from matplotlib.figure import Figure

        from dlrun import plots
        from dlrun.report import save_figure

        fig = Figure(figsize=(7, 1.2 + 0.5 * len(result.table)))
        ax = fig.add_subplot(1, 1, 1)
        t = result.table
        plots.compare_intervals(
            ax, list(t["run"]), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric
        )
        save_figure(fig, plot)
        out.print(f"plot written to {plot}", markup=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map core errors to one line and an exit code.

    Usage errors are Typer's own (exit code 2); Typer exits through ``SystemExit``.
    """
    try:
        app(args=argv, prog_name="dlrun")
    except DlrunError as exc:
        if _STATE["debug"]:
            raise
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:
        if _STATE["debug"]:
            raise
        err.print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
