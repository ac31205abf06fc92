"""The command line. The only module that imports typer, prints, or exits.

Core errors (:mod:`dlrun.errors`) become one readable line on stderr and an exit
code (2 bad input, 1 run-time failure, 130 interrupted); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

# Before anything can import TensorFlow: its C++ start-up lines would flood logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from dlrun import __version__  # noqa: E402
from dlrun.errors import DlrunError, InputError  # noqa: E402

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
    Optional[list[str]],
    typer.Option("--set", help="Override a spec field: key.path=value (repeatable), validated like the file."),
]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: OUTPUT_DIR/NAME/TIMESTAMP).")]
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
        if not out_dir.is_dir():
            raise InputError(f"--out must be an existing run directory with --resume, got '{out_dir}'")
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

    table = cv_summary_table(summary) if summary.get("command") == "cv" else train_summary_table(summary)
    if sys.stdout.isatty():
        out.print(table)
    else:
        Console(file=sys.stdout, width=120, color_system=None, force_terminal=False).print(table)
    if "headline" in summary:
        out.print(summary["headline"]["text"], markup=False)
    out.print(f"outputs: {path}", markup=False)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    smoothing: Annotated[float, typer.Option("--smoothing", help="Exponential smoothing of plotted curves (0-0.99).")] = 0.0,
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


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    engine: Annotated[
        Optional[str], typer.Option("--engine", help="auto, stacked or sequential (overrides runtime.engine).")
    ] = None,
    log_every: LogEveryOpt = 1,
    executor: Annotated[Optional[str], typer.Option("--executor", help="local or ray (overrides runtime.executor).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address to join.")] = None,
) -> None:
    """Cross-validate (kfold, repeated_kfold, repeated_split) with statistics and plots."""
    from dlrun.locking import RunLock
    from dlrun.runner import run_cv
    from dlrun.runtime import quiet_tensorflow

    extra = list(sets or [])
    if engine:
        extra.append(f"runtime.engine={engine}")
    if executor:
        extra.append(f"runtime.executor={executor}")
    if address:
        extra.append(f"runtime.address={address}")
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
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
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
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write predictions here (default: stdout).")] = None,
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
    metric: Annotated[Optional[str], typer.Option("--metric", help="Metric to compare (default: the main one).")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the table to this CSV.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save a plot of each run's mean and interval.")] = None,
) -> None:
    """Compare runs; two runs on identical splits get the Nadeau–Bengio corrected paired t-test."""
    from dlrun import compare as cmp
    from dlrun.render import frame_table

    paths = cmp.expand_run_dirs(runs)
    result = cmp.compare([cmp.load_run(p) for p in paths], metric)
    shown = result.table.drop(columns=["path"])
    out.print(frame_table(shown, title=f"{result.metric}"))
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
        plots.compare_intervals(ax, list(t["run"]), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric)
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
