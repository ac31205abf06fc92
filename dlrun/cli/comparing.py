"""Commands that put runs side by side: ``compare`` (tests, a plot, a page) and ``report`` (one HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun import api
from dlrun.cli.figures import save_compare_plot
from dlrun.cli.output import err, out, print_frame
from dlrun.cli.output import reporter as make_reporter
from dlrun.engines.runtime import quiet_tensorflow
from dlrun.errors import InputError
from dlrun.evaluation import compare as cmp
from dlrun.report import html as html_report
from dlrun.store.io import write_csv


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
            help="Two k-fold runs: add repeats to both until the Bayesian test puts 1 − 0.05/L on one region "
            "at one of its L looks (all looks together err at most 5%).",
        ),
    ] = False,
    max_repeats: Annotated[
        int, typer.Option("--max-repeats", help="With --until-decided: stop at this many repeats.")
    ] = 10,
    log_every: Annotated[
        int,
        typer.Option("--log-every", help="When stdout is not a terminal: a line every N epochs (0: per fold only)."),
    ] = 0,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the comparison's HTML page here (default: compare_<a>_vs_<b>.html in the runs' common folder).",
        ),
    ] = None,
) -> None:
    """Compare runs: paired tests on identical splits, Bayesian probabilities; 3+ runs adjusted over all pairs."""
    paths = cmp.expand_run_dirs(runs)
    if len(paths) < 2:
        raise InputError(
            f"compare needs at least two run folders, got {len(paths)} ({', '.join(map(str, paths))}); "
            "use `dlrun status` or summary.md to look at one run"
        )
    if until_decided:
        quiet_tensorflow()

        why = api.until_decided(
            paths, metric=metric, rope=rope, max_repeats=max_repeats, reporter=make_reporter(log_every)
        )
        out.print(why, markup=False)

    result = api.compare(*paths, metric=metric, rope=rope, pairs=pairs, labels=label)
    table = result.table.rename(columns={"std": "std (folds)", "se": "se (headline)", "label": "run name"})
    cols = [
        c
        for c in ("run name", "mode", "n", "mean", "std (folds)", "se (headline)", "ci_low", "ci_high", "estimate")
        if c in table
    ]
    print_frame(table, cols, f"{result.metric} ({int(round(result.confidence * 100))}% intervals)")
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
            print_frame(
                f.rename(columns={"diff": f"\u2212 {result.best}"}),
                ["label", f"\u2212 {result.best}", "ci_low", "ci_high", "p", "p_holm", "same_as_best"],
                f"paired difference to the best ({result.best}); p_holm: adjusted over all "
                f"{result.n_tests} pairwise tests ({result.procedure})",
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
        write_csv(csv, result.table)
        out.print(f"table written to {csv}", markup=False)
    if plot:
        save_compare_plot(result, plot)
        out.print(f"plot written to {plot}", markup=False)

    page = html_report.write_report(
        [str(p) for p in paths],
        report_file
        or html_report.default_compare_path(paths, list(result.table["label"]) if "label" in result.table else None),
        result=result,
    )
    out.print(f"report: {page}", markup=False)


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
    page = html_report.write_report(run_dirs, out_file, metric=metric)
    out.print(f"report: {page}", markup=False)
