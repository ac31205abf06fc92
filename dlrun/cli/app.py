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

# Before anything can import TensorFlow: its C++ start-up lines would flood logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# KERAS_BACKEND is left alone here: dlrun.engines.runtime picks JAX unless the user or the spec chose

from dlrun import __version__, api
from dlrun.cli.comparing import compare, report
from dlrun.cli.exporting import export_app
from dlrun.cli.folders import nested_sweep, run_nested_cv, search_folder, sweep_folder
from dlrun.cli.listing import clean, runs, status
from dlrun.cli.options import (
    AddressOpt,
    ExecutorOpt,
    FailFastOpt,
    LogEveryOpt,
    OutOpt,
    ResumeOpt,
    SetOpt,
    runtime_sets,
)
from dlrun.cli.output import err, out, print_frame, print_summary, track
from dlrun.cli.output import reporter as make_reporter
from dlrun.cli.render import datasets_table, model_table
from dlrun.data.sources import dataset_status
from dlrun.engines.runtime import quiet_tensorflow
from dlrun.errors import DlrunError, InputError, SpecError
from dlrun.protocol.jobs import prepare
from dlrun.reporting import fmt_duration
from dlrun.runs.batch import expand_configs, run_batch
from dlrun.runs.predict import predict_file
from dlrun.runs.search import run_search
from dlrun.runs.sweep import expand, grid_as_search, run_sweep
from dlrun.spec import schema as spec_schema
from dlrun.spec.schema import apply_overrides, json_schema, load_spec, read_yaml
from dlrun.spec.shapes import check_output, layer_table, output_shape
from dlrun.store import io as store_io
from dlrun.store import signals
from dlrun.store.io import write_csv, write_text
from dlrun.store.lock import RunLock

app = typer.Typer(
    name="dlrun",
    help="Run Keras experiments from YAML specs, with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_STATE: dict[str, Any] = {"debug": False}


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


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    smoothing: Annotated[
        float, typer.Option("--smoothing", help="Exponential smoothing of plotted curves (0-0.99).")
    ] = 0.0,
    log_every: LogEveryOpt = None,
) -> None:
    """Train one model (split, validation_split or none) and write every output."""

    result = api.run(
        config,
        out=out_dir,
        overrides=sets,
        resume=resume,
        reporter=make_reporter(log_every),
        command="train",
        argv=sys.argv,
        smoothing=smoothing,
    )
    print_summary(result.summary, result.path)
    track(result.path)


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
    log_every: LogEveryOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run every combination of a grid with the config's own mode; write sweep.csv and plots."""

    all_sets = list(sets or []) + runtime_sets(executor, address)
    nested_raw = grid_as_search(config, all_sets, list(grid or []))
    if nested_raw is not None:  # evaluation.outer: the grid's selection, nested (a grid search)
        nested_sweep(config, nested_raw, out_dir, resume, make_reporter(log_every))
        return
    base, points = expand(config, all_sets, list(grid or []))
    quiet_tensorflow()
    sweep_dir = sweep_folder(base, out_dir, resume)
    reporter = make_reporter(log_every)
    out.print(f"sweep of {len(points)} point(s) into {sweep_dir}", markup=False)
    table = run_sweep(
        base, points, sweep_dir, fail_fast=fail_fast, note=reporter.note, reporter=reporter, argv=sys.argv
    )
    main = (
        str(table["main_metric"].dropna().iloc[0])
        if "main_metric" in table and table["main_metric"].notna().any()
        else ""
    )
    keys = list(points[0].overrides) if points else []
    shown = [
        *keys,
        *[
            c
            for c in (f"{main}_mean", f"{main}_ci_low", f"{main}_ci_high", "status", "duration_s", "train_s")
            if c in table
        ],
    ]
    print_frame(table, shown, f"sweep: {sweep_dir}")
    track(sweep_dir)
    failed = int((table["status"] != "finished").sum()) if "status" in table else len(points)
    if failed:
        err.print(f"{failed} point(s) did not finish", markup=False)
        raise typer.Exit(1)


@app.command()
def search(
    config: Annotated[Path, typer.Argument(help="The YAML spec with a search section.")],
    trials: Annotated[int | None, typer.Option("--trials", help="Trials in all (overrides search.trials).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="tpe, random or grid (search.sampler).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch", help="Trials asked and trained together.")] = None,
    racing: Annotated[
        bool | None, typer.Option("--racing/--no-racing", help="Stop trials worse than the best (corrected interval).")
    ] = None,
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    log_every: LogEveryOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Search hyperparameters with Optuna, every trial scored by the config's cross-validation."""

    raw = apply_overrides(read_yaml(config), list(sets or []) + runtime_sets(executor, address))
    spec = spec_schema.validate(raw, source=str(config))
    if spec.search is None:
        raise InputError(f"{config} has no search section: add one (see the README, `dlrun search`)")
    if sampler is not None and sampler not in ("tpe", "random", "grid"):
        raise InputError(f"--sampler must be tpe, random or grid, got '{sampler}'")
    # runtime.executor ray: each group of trials sharing a program (or each trial) is a Ray task;
    # the nested-CV refits of the chosen configs run in this process
    quiet_tensorflow()
    search_dir = search_folder(spec, out_dir, resume, "search", "a search")
    reporter = make_reporter(log_every)
    kw: dict[str, Any] = {"trials": trials, "sampler": sampler, "batch": batch_size, "racing": racing}
    out.print(f"search into {search_dir}", markup=False)
    if spec.evaluation.outer is not None:
        run_nested_cv(config, raw, search_dir, reporter, kw)
        return
    with RunLock(search_dir):
        outcome = run_search(raw, search_dir, reporter, source=str(config), argv=sys.argv, **kw)
    s = outcome.summary
    table = outcome.table
    if not table.empty:
        m = s["metric"]
        cols = [c for c in table.columns if c not in ("path", "error", "stopped", "seconds", f"{m}_ci_low", "n_folds")]
        shown = table.sort_values(f"{m}_mean", ascending=s["direction"] == "minimize", na_position="last").head(10)
        print_frame(shown, cols, f"search: {search_dir} (best 10 of {len(table)} trials)")
    pk = s["packing"]
    out.print(
        f"{pk['programs']} program(s) for {pk['models']} models ({pk['models_per_program']['mean']:.1f} per program); "
        f"racing: {s['models_trained']} of {s['models_without_racing']} models trained",
        markup=False,
    )
    if s.get("best"):
        b = s["best"]
        m = s["metric"]
        lo, hi = (b.get(f"{m}_ci_low"), b.get(f"{m}_ci_high"))
        ci = f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
        out.print(
            f"best: trial {int(b['trial'])}, {m} {b[f'{m}_mean']:.4f}{ci}"
            f" (optimistic: the best of {s['trials'].get('finished', 0) + s['trials'].get('stopped', 0)});"
            " tied with it: trials "
            f"{', '.join(map(str, s['tied_with_best']))}",
            markup=False,
        )
        out.print(f"best config: {search_dir / 'best_config.yaml'}", markup=False)
        track(search_dir)
    else:
        err.print("no trial finished", markup=False)
        raise typer.Exit(1)


@app.command()
def batch(
    configs: Annotated[list[str], typer.Argument(help="YAML specs and globs (configs/*.yaml).")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    fail_fast: FailFastOpt = False,
    log_every: LogEveryOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run configs in turn (train or cv by their mode); go on after a failure; exit 1 if any failed."""

    paths = expand_configs(configs)
    extra = list(sets or []) + runtime_sets(executor, address)
    quiet_tensorflow()
    if resume and out_dir is None:
        raise InputError("--resume needs --out BATCH_DIR: the batch folder to continue")
    batch_dir = out_dir or store_io.new_run_dir("outputs", "batch")
    reporter = make_reporter(log_every)
    reporter.note(f"batch of {len(paths)} config(s) into {batch_dir}")
    items = run_batch(
        paths,
        batch_dir,
        extra,
        executor,
        resume=resume,
        fail_fast=fail_fast,
        note=reporter.note,
        reporter=reporter,
        argv=sys.argv,
    )
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
    print_frame(table, list(table.columns), f"batch: {batch_dir}")
    track(batch_dir)
    if any(i.status != "finished" for i in items):
        raise typer.Exit(1)


app.command()(status)
app.command()(runs)
app.command()(clean)


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    out_dir: OutOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = False,
    engine: Annotated[
        str | None, typer.Option("--engine", help="auto, stacked or sequential (overrides runtime.engine).")
    ] = None,
    log_every: LogEveryOpt = None,
    executor: Annotated[
        str | None, typer.Option("--executor", help="local or ray (overrides runtime.executor).")
    ] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address to join.")] = None,
) -> None:
    """Cross-validate (kfold, repeated_kfold, repeated_split) with statistics and plots."""

    extra = list(sets or []) + runtime_sets(executor, address)
    if engine:
        extra.append(f"runtime.engine={engine}")
    result = api.run(
        config,
        out=out_dir,
        overrides=extra,
        resume=resume,
        reporter=make_reporter(log_every),
        command="cv",
        argv=sys.argv,
    )
    print_summary(result.summary, result.path)
    track(result.path)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    sets: SetOpt = None,
    no_data: Annotated[bool, typer.Option("--no-data", help="Check the spec only; do not read the data.")] = False,
) -> None:
    """Check a spec without training (and without importing TensorFlow); show the model."""

    spec = load_spec(config, sets or [])
    out.print(f"{config}: valid spec '{spec.name}' (mode {spec.evaluation.mode})", markup=False)
    if no_data or spec.data.kind == "keras":
        return

    prep = prepare(spec)
    rows, total = layer_table(spec.model.entries, prep.input_shape)
    out.print(
        f"data: {len(prep.data.y)} rows, task {prep.task}, {len(prep.folds)} model(s) to train, "
        f"output width {prep.n_outputs}",
        markup=False,
    )
    out.print(model_table(rows, total, prep.input_shape))
    shape = output_shape(spec.model.entries, prep.input_shape)
    if shape is not None:  # the run's own check of the output against the target, every problem at once
        try:
            check_output(spec, shape, prep.n_outputs, prep.task)
        except SpecError as exc:
            raise SpecError(exc.problems, source=str(config)) from None


@app.command()
def schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the spec (for editor completion and checks)."""

    text = json.dumps(json_schema(), indent=2)
    if out_file:
        write_text(out_file, text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def datasets() -> None:
    """List the named datasets, their task and shape, and whether each is available locally."""

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

    quiet_tensorflow()
    df = predict_file(run_dir, input_csv)
    if out_file:
        write_csv(out_file, df)
        err.print(f"{len(df)} predictions written to {out_file}", markup=False)
    else:
        df.to_csv(sys.stdout, index=False)


app.command()(compare)
app.command()(report)
app.add_typer(export_app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map core errors to one line and an exit code.

    Usage errors are Typer's own (exit code 2); Typer exits through ``SystemExit``. Run as a
    program (``argv`` None), SIGINT and SIGTERM set a flag for the whole command (see
    :mod:`dlrun.store.signals`) and it ends with exit code 130 whatever phase the signal hit.
    """

    if argv is None:
        signals.install_signal_handlers()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[1:]:  # --debug works after the subcommand too
        args.remove("--debug")
        args.insert(0, "--debug")
        _STATE["debug"] = True
    saved_argv = sys.argv
    if argv is not None:  # commands record sys.argv (env.json, the resume command): the one run here
        sys.argv = ["dlrun", *args]
    try:
        app(args=args, prog_name="dlrun")
    except SystemExit as exc:
        if signals.stop_requested() and exc.code in (0, 1, None):
            err.print(f"interrupted ({signals.stop_signal_name()})", markup=False)
            sys.exit(130)
        raise
    except DlrunError as exc:
        if _STATE["debug"]:
            raise
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except OSError as exc:
        if _STATE["debug"]:
            raise
        # a path in the error is one the user gave (config, --out, data): theirs to fix, exit 2
        where = f" {exc.filename}" if exc.filename else ""
        err.print(f"error: cannot use{where}: {exc.strerror or exc}", markup=False)
        sys.exit(2 if exc.filename else 1)
    except Exception as exc:
        if _STATE["debug"]:
            raise
        err.print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False)
        sys.exit(1)
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    main()
