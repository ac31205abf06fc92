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
# KERAS_BACKEND is left alone here: dlrun.engines.runtime picks JAX unless the user or the spec chose

from dlrun import __version__
from dlrun.errors import DlrunError, InputError, SpecError

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
    from dlrun.cli.progress import PlainReporter, RichReporter

    if sys.stdout.isatty():
        return RichReporter(out)
    return PlainReporter(sys.stdout, log_every=log_every)


def _load(config: Path, sets: list[str] | None) -> Any:
    from dlrun.spec.schema import load_spec

    return load_spec(config, sets or [])


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    from dlrun.cli.render import cv_summary_table, train_summary_table

    _show(cv_summary_table(summary) if summary.get("command") == "cv" else train_summary_table(summary), 120)
    from dlrun.evaluation.summary import Summary

    headline = Summary(summary).headline
    if headline:
        out.print(headline, markup=False)
    for warning in summary.get("warnings") or []:
        err.print(f"warning: {warning}", markup=False)
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
    from dlrun import api

    result = api.run(
        config,
        out=out_dir,
        overrides=sets,
        resume=resume,
        reporter=_reporter(log_every),
        command="train",
        argv=sys.argv,
        smoothing=smoothing,
    )
    _print_summary(result.summary, result.path)


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
    from dlrun.engines.runtime import quiet_tensorflow
    from dlrun.runs.sweep import expand, grid_as_search, run_sweep
    from dlrun.store import io as report

    all_sets = list(sets or []) + _runtime_sets(executor, address)
    nested_raw = grid_as_search(config, all_sets, list(grid or []))
    if nested_raw is not None:  # evaluation.outer: the grid's selection, nested (a grid search)
        _nested_sweep(config, nested_raw, out_dir, resume, log_every)
        return
    base, points = expand(config, all_sets, list(grid or []))
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
    _print_frame(table, shown, f"sweep: {sweep_dir}")
    failed = int((table["status"] != "finished").sum()) if "status" in table else len(points)
    if failed:
        err.print(f"{failed} point(s) did not finish", markup=False)
        raise typer.Exit(1)


def _nested_sweep(config: Path, raw: dict[str, Any], out_dir: Path | None, resume: bool, log_every: int) -> None:
    """``dlrun sweep`` with ``evaluation.outer``: nested cross-validation of "the best grid point"."""
    from dlrun.engines.runtime import quiet_tensorflow
    from dlrun.spec.schema import validate

    spec = validate(raw, source=str(config))
    quiet_tensorflow()
    sweep_dir = _search_folder(spec, out_dir, resume, "sweep", "a nested sweep")
    n = spec.search.trials if spec.search is not None else 0
    out.print(f"nested sweep of {n} point(s) (a grid search in each outer fold) into {sweep_dir}", markup=False)
    _run_nested(config, raw, sweep_dir, _reporter(log_every), {})


def _search_folder(spec: Any, out_dir: Path | None, resume: bool, kind: str, holds: str) -> Path:
    """The folder of a search (``kind`` search) or nested sweep: ``--out`` (to resume, or new), else a new one.

    Raises:
        InputError: ``--resume`` without ``--out``, or ``--out`` already holding ``holds`` without ``--resume``.
    """
    from dlrun.runs.search import SEARCH_STATE
    from dlrun.store import io as report

    if resume:
        if out_dir is None:
            raise InputError(f"--resume needs --out {kind.upper()}_DIR: the {kind} folder to continue")
        return out_dir
    if out_dir is not None:
        if (out_dir / SEARCH_STATE).exists() or (out_dir / "outer").exists():
            raise InputError(f"--out '{out_dir}' already holds {holds}; add --resume to continue it")
        return out_dir
    return report.new_run_dir(spec.output_dir, f"{spec.name}_{kind}")


def _run_nested(config: Path, raw: dict[str, Any], folder: Path, reporter: Any, kw: dict[str, Any]) -> None:
    """Nested cross-validation (``evaluation.outer``) into ``folder``, under its lock; print the verdict."""
    from dlrun.runs.locking import RunLock
    from dlrun.runs.search import run_nested

    with RunLock(folder):
        nested = run_nested(raw, folder, reporter, source=str(config), argv=sys.argv, **kw)
    out.print(nested["text"], markup=False)
    out.print(f"outputs: {folder}", markup=False)


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
    log_every: LogEveryOpt = 0,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Search hyperparameters with Optuna, every trial scored by the config's cross-validation."""
    from dlrun.engines.runtime import quiet_tensorflow
    from dlrun.runs.locking import RunLock
    from dlrun.runs.search import run_search
    from dlrun.spec.schema import apply_overrides, read_yaml, validate

    raw = apply_overrides(read_yaml(config), list(sets or []) + _runtime_sets(executor, address))
    spec = validate(raw, source=str(config))
    if spec.search is None:
        raise InputError(f"{config} has no search section: add one (see the README, `dlrun search`)")
    if sampler is not None and sampler not in ("tpe", "random", "grid"):
        raise InputError(f"--sampler must be tpe, random or grid, got '{sampler}'")
    # runtime.executor ray: each group of trials sharing a program (or each trial) is a Ray task;
    # the nested-CV refits of the chosen configs run in this process
    quiet_tensorflow()
    search_dir = _search_folder(spec, out_dir, resume, "search", "a search")
    reporter = _reporter(log_every)
    kw: dict[str, Any] = {"trials": trials, "sampler": sampler, "batch": batch_size, "racing": racing}
    out.print(f"search into {search_dir}", markup=False)
    if spec.evaluation.outer is not None:
        _run_nested(config, raw, search_dir, reporter, kw)
        return
    with RunLock(search_dir):
        outcome = run_search(raw, search_dir, reporter, source=str(config), argv=sys.argv, **kw)
    s = outcome.summary
    table = outcome.table
    if not table.empty:
        m = s["metric"]
        cols = [c for c in table.columns if c not in ("path", "error", "stopped", "seconds", f"{m}_ci_low", "n_folds")]
        shown = table.sort_values(f"{m}_mean", ascending=s["direction"] == "minimize", na_position="last").head(10)
        _print_frame(shown, cols, f"search: {search_dir} (best 10 of {len(table)} trials)")
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
            f" (optimistic: the best of {len(table)}); tied with it: trials "
            f"{', '.join(map(str, s['tied_with_best']))}",
            markup=False,
        )
        out.print(f"best config: {search_dir / 'best_config.yaml'}", markup=False)
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
    log_every: LogEveryOpt = 1,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run configs in turn (train or cv by their mode); go on after a failure; exit 1 if any failed."""
    from dlrun.cli.progress import fmt_duration
    from dlrun.engines.runtime import quiet_tensorflow
    from dlrun.runs.batch import expand_configs, run_batch
    from dlrun.store import io as report

    paths = expand_configs(configs)
    extra = list(sets or []) + _runtime_sets(executor, address)
    quiet_tensorflow()
    if resume and out_dir is None:
        raise InputError("--resume needs --out BATCH_DIR: the batch folder to continue")
    batch_dir = out_dir or report.new_run_dir("outputs", "batch")
    reporter = _reporter(log_every)
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
    _print_frame(table, list(table.columns), f"batch: {batch_dir}")
    if any(i.status != "finished" for i in items):
        raise typer.Exit(1)


def _print_frame(df: Any, cols: list[str], title: str) -> None:
    from dlrun.cli.render import frame_table

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

    from dlrun.store.index import find_runs, status_rows

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

    from dlrun.store.index import find_runs, runs_rows

    found = find_runs(directory)
    df = pd.DataFrame(runs_rows(found, directory))
    if csv:
        from dlrun.store.io import write_csv

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

    from dlrun.store.index import cleanable, find_runs

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
    from dlrun import api

    extra = list(sets or []) + _runtime_sets(executor, address)
    if engine:
        extra.append(f"runtime.engine={engine}")
    result = api.run(
        config, out=out_dir, overrides=extra, resume=resume, reporter=_reporter(log_every), command="cv", argv=sys.argv
    )
    _print_summary(result.summary, result.path)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML spec.")],
    sets: SetOpt = None,
    no_data: Annotated[bool, typer.Option("--no-data", help="Check the spec only; do not read the data.")] = False,
) -> None:
    """Check a spec without training (and without importing TensorFlow); show the model."""
    from dlrun.cli.render import model_table
    from dlrun.spec.shapes import check_output, layer_table, output_shape

    spec = _load(config, sets)
    out.print(f"{config}: valid spec '{spec.name}' (mode {spec.evaluation.mode})", markup=False)
    if no_data or spec.data.kind == "keras":
        return
    from dlrun.protocol.jobs import prepare

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
    from dlrun.spec.schema import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out_file:
        from dlrun.store.io import write_text

        write_text(out_file, text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def datasets() -> None:
    """List the named datasets, their task and shape, and whether each is available locally."""
    from dlrun.cli.render import datasets_table
    from dlrun.data.sources import dataset_status

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
    from dlrun.engines.runtime import quiet_tensorflow
    from dlrun.runs.predict import predict_file

    quiet_tensorflow()
    df = predict_file(run_dir, input_csv)
    if out_file:
        from dlrun.store.io import write_csv

        write_csv(out_file, df)
        err.print(f"{len(df)} predictions written to {out_file}", markup=False)
    else:
        df.to_csv(sys.stdout, index=False)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run directories or globs (outputs/sonar_*/*).")],
    metric: Annotated[str | None, typer.Option("--metric", help="Metric to compare (default: the main one).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the table to this CSV.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Save a plot: each run's paired difference to the best (3+ runs).")
    ] = None,
    rope: Annotated[
        float | None,
        typer.Option(
            "--rope",
            help="Half-width of the region of practical equivalence, in the metric's units "
            "(default 0.01 for scores in [0, 1], else 1% of the best run's mean).",
        ),
    ] = None,
    pairs: Annotated[
        str, typer.Option("--pairs", help="3+ runs: 'best' (each run against the best) or 'all' (every pair).")
    ] = "best",
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A name per run, in order (repeat the option).")
    ] = None,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="Two k-fold runs: add repeats to both until the Bayesian test puts 95% on one region.",
        ),
    ] = False,
    max_repeats: Annotated[
        int, typer.Option("--max-repeats", help="With --until-decided: stop at this many repeats.")
    ] = 10,
    log_every: LogEveryOpt = 0,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the comparison's HTML page here (default: compare_<a>_vs_<b>.html in the runs' common folder).",
        ),
    ] = None,
) -> None:
    """Compare runs: paired tests on identical splits, Bayesian probabilities, Holm for 3+ runs."""
    from dlrun.evaluation import compare as cmp

    paths = cmp.expand_run_dirs(runs)
    if len(paths) < 2:
        raise InputError(
            f"compare needs at least two run folders, got {len(paths)} ({', '.join(map(str, paths))}); "
            "use `dlrun status` or summary.md to look at one run"
        )
    if until_decided:
        from dlrun.engines.runtime import quiet_tensorflow

        quiet_tensorflow()
        from dlrun import api

        why = api.until_decided(paths, metric=metric, rope=rope, max_repeats=max_repeats, reporter=_reporter(log_every))
        out.print(why, markup=False)
    from dlrun import api

    result = api.compare(*paths, metric=metric, rope=rope, pairs=pairs, labels=label).details
    table = result.table.rename(columns={"std": "std (folds)", "se": "se (headline)", "label": "run name"})
    cols = [
        c
        for c in ("run name", "mode", "n", "mean", "std (folds)", "se (headline)", "ci_low", "ci_high", "estimate")
        if c in table
    ]
    _print_frame(table, cols, f"{result.metric} ({int(round(result.confidence * 100))}% intervals)")
    out.print(
        "std (folds): sample std of the fold scores; se (headline): standard error of the headline estimate, "
        "corrected for correlated folds in k-fold runs (\u221acorrection\u00b7std, not std/\u221aJ; see each "
        "summary's method).",
        markup=False,
    )
    if result.test is not None and not result.paired and result.test.get("warning"):
        err.print(f"warning: {result.test['warning']}", markup=False)
    if len(paths) > 2:
        out.print(result.verdict, markup=False)
        if not result.forest.empty:
            f = result.forest
            _print_frame(
                f.rename(columns={"diff": f"\u2212 {result.best}"}),
                ["label", f"\u2212 {result.best}", "ci_low", "ci_high", "p", "p_holm", "same_as_best"],
                f"paired difference to the best ({result.best}); p_holm: Holm-adjusted",
            )
    for pw in result.pairwise:
        if pw.get("verdict"):
            out.print(pw["verdict"], markup=False)
        if len(paths) == 2 and pw.get("reason"):
            out.print(f"comparison: {pw['reason']}", markup=False)
    if len(paths) > 2:
        kinds = {pw["reason"].split(":")[0] for pw in result.pairwise if pw.get("reason")}
        out.print(f"comparisons: {', '.join(sorted(kinds))} (see each line above)", markup=False)
    if result.pairwise and any(pw.get("bayes") for pw in result.pairwise):
        out.print(f"ROPE: {result.rope_text} (change with --rope).", markup=False)
    if csv:
        from dlrun.store.io import write_csv

        write_csv(csv, result.table)
        out.print(f"table written to {csv}", markup=False)
    if plot:
        from matplotlib.figure import Figure

        from dlrun.report import plots
        from dlrun.store.io import save_figure

        t = result.table
        # constrained layout: long run labels and the footnote stay on the figure
        fig = Figure(figsize=(8, 2.2 + 0.5 * len(t)), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        if not result.forest.empty and hasattr(plots, "compare_forest"):
            f = result.forest
            plots.compare_forest(
                ax,
                [f"{lab} \u2212 {result.best}" for lab in f["label"]],
                list(f["diff"]),
                list(f["ci_low"]),
                list(f["ci_high"]),
                result.metric,
                paired=[bool(x) for x in f["paired"]],
                confidence=result.confidence,
                note="Each run's paired difference to the best; Holm-adjusted p-values are in the console table.",
            )
        elif len(result.pairwise) == 1 and result.pairwise[0]["test"] and hasattr(plots, "compare_forest"):
            pw = result.pairwise[0]
            plots.compare_forest(
                ax,
                [f"{pw['a']} \u2212 {pw['b']}"],
                [pw["test"]["mean_diff"]],
                [pw["test"]["ci_low"]],
                [pw["test"]["ci_high"]],
                result.metric,
                paired=[bool(pw["paired"])],
                confidence=result.confidence,
            )
        else:
            plots.compare_intervals(
                ax, list(t["label"]), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric
            )
        save_figure(fig, plot)
        out.print(f"plot written to {plot}", markup=False)
    from dlrun.report import html as html_report

    page = html_report.write_report(
        [str(p) for p in paths],
        report_file
        or html_report.default_compare_path(paths, list(result.table["label"]) if "label" in result.table else None),
        result=result,
    )
    out.print(f"report: {page}", markup=False)


@app.command()
def report(
    run_dirs: Annotated[
        list[str], typer.Argument(help="A run folder, a sweep folder, or several runs (folders or globs) to compare.")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The HTML file (default: report.html in the run or sweep folder; for several runs "
            "compare_<a>_vs_<b>.html in their common folder).",
        ),
    ] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="Metric a comparison compares.")] = None,
) -> None:
    """Write one self-contained HTML page (plots, tables, config, environment) for a run, sweep or comparison."""
    from dlrun.report import html as html_report

    page = html_report.write_report(run_dirs, out_file, metric=metric)
    out.print(f"report: {page}", markup=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map core errors to one line and an exit code.

    Usage errors are Typer's own (exit code 2); Typer exits through ``SystemExit``. Run as a
    program (``argv`` None), SIGINT and SIGTERM set a flag for the whole command (see
    :mod:`dlrun.runs.lifecycle`) and it ends with exit code 130 whatever phase the signal hit.
    """
    from dlrun.runs import lifecycle

    if argv is None:
        lifecycle.install_signal_handlers()
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
        if lifecycle.stop_requested() and exc.code in (0, 1, None):
            err.print(f"interrupted ({lifecycle.stop_signal_name()})", markup=False)
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
