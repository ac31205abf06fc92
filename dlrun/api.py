"""The Python API: what the CLI's ``train``, ``cv`` and ``compare`` do, as functions returning data.

    import dlrun

    r = dlrun.run("configs/quickstart.yaml", out="/tmp/q", overrides=["training.epochs=20"])
    print(r.headline)                    # the sentence `dlrun train` prints
    r.scores                             # pandas DataFrame: one row per fold (train: one row)
    r.history                            # pandas DataFrame: one row per epoch (and fold)
    again = dlrun.load("/tmp/q")         # any finished run folder
    c = dlrun.compare("outputs/a/1", "outputs/b/1")
    print(c.verdict); c.table; c.tests

Errors are the exception classes of :mod:`dlrun.errors` (the CLI maps them to exit codes).
Nothing here prints: progress goes to a :class:`~dlrun.reporting.Reporter` only when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dlrun.engines.runtime import quiet_tensorflow
from dlrun.errors import InputError
from dlrun.evaluation import compare as cmp
from dlrun.evaluation import stats
from dlrun.evaluation.compare import Comparison
from dlrun.execution.executors import Executor
from dlrun.protocol.splits import AUTO_CHUNK
from dlrun.reporting import Reporter
from dlrun.runs.adaptive import extend_repeats, with_repeats
from dlrun.runs.cv import run_cv
from dlrun.runs.multirun import run_spec
from dlrun.runs.result import RunResult
from dlrun.runs.train import check_smoothing
from dlrun.spec.schema import Spec, apply_overrides, load_spec, read_yaml, resolved_dict, validate
from dlrun.store.io import read_summary
from dlrun.store.layout import CONFIG
from dlrun.store.lock import RunLock
from dlrun.store.run_folder import RunFolder

__all__ = ["Comparison", "RunResult", "compare", "load", "load_config", "run", "run_dir_for", "until_decided"]


# ----------------------------------------------------------------------------- specs and folders
def load_config(config: str | Path | Mapping[str, Any] | Spec, overrides: list[str] | None = None) -> Spec:
    """A validated spec from a YAML path, a dict, or a spec, with ``--set``-style overrides applied.

    Raises:
        SpecError: The spec (with the overrides) is not valid.
        InputError: The file cannot be read.
    """
    sets = list(overrides or [])
    if isinstance(config, Spec):
        return validate(apply_overrides(resolved_dict(config), sets)) if sets else config
    if isinstance(config, Mapping):
        return validate(apply_overrides(dict(config), sets))
    return load_spec(Path(config), sets)


def run_dir_for(
    spec: Spec,
    out: str | Path | None,
    resume: bool,
    command: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """The folder a run writes into (``out``, or ``output_dir/name/<timestamp>``), as
    :meth:`dlrun.store.run_folder.RunFolder.open` makes, reclaims and checks it; the lock is released on return.
    """
    with RunFolder.open(spec, out, resume, command=command, note=note) as folder:
        return folder.path


# ----------------------------------------------------------------------------- the three calls
def run(
    config: str | Path | Mapping[str, Any] | Spec,
    *,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    executor: str | Executor | None = None,
    reporter: Reporter | None = None,
    command: str | None = None,
    argv: list[str] | None = None,
    smoothing: float = 0.0,
) -> RunResult:
    """Run a spec (``train`` or ``cv``, as its evaluation mode says) and return the finished run.

    Args:
        config: A YAML path, a dict of the spec, or a :class:`~dlrun.spec.schema.Spec`.
        out: The run folder (default: ``output_dir/name/<timestamp>``).
        overrides: ``key.path=value`` strings, as ``--set``.
        resume: Continue the run in ``out``, skipping what is finished.
        executor: ``local``, ``ray`` or an :class:`~dlrun.execution.executors.Executor` for cv folds
            (default: ``runtime.executor``).
        reporter: Where progress goes (default: nowhere).
        command: ``train`` or ``cv`` to insist on one (the CLI does); None follows the mode.
        argv: The command line recorded in ``env.json`` (default: this process's).
        smoothing: Exponential smoothing of plotted curves (train).

    Raises:
        SpecError, InputError, DataError: Bad input (the CLI's exit 2).
        RunError: Training failed (exit 1).
        Interrupted: Ctrl-C or SIGTERM; the run can be resumed (exit 130).
    """
    spec = load_config(config, overrides)
    if command not in (None, "train", "cv"):
        raise InputError(f"command must be train, cv or None, got '{command}'")
    check_smoothing(smoothing)
    quiet_tensorflow()
    note = reporter.note if reporter is not None else None
    with RunFolder.open(spec, out, resume, command=command, note=note) as folder:
        outcome = run_spec(
            spec, folder.path, reporter, argv=argv, smoothing=smoothing, executor=executor, plot_helper=True
        )
    return load(outcome.path)


def load(run_dir: str | Path) -> RunResult:
    """Read a finished run folder.

    Raises:
        InputError: The folder has no ``summary.json`` (not a finished run), or it is not a JSON
            object with ``mode`` and ``metrics``.
    """
    path = Path(run_dir)
    summary = read_summary(path)
    return RunResult(path, summary, str(summary.get("engine") or ""))


def compare(*run_dirs: str | Path, metric: str | None = None, **options: Any) -> Comparison:
    """Compare finished runs as ``dlrun compare`` does (folders or globs; the first is the reference).

    Args:
        run_dirs: Run folders, folders of runs, or glob patterns.
        metric: The metric to compare (default: the first run's main metric).
        options: Passed on to :func:`dlrun.evaluation.compare.compare` (e.g. ``rope``, ``pairs``, ``labels``).

    Raises:
        InputError: No run matches, or a run lacks the metric.
    """
    paths = cmp.expand_run_dirs([str(p) for p in run_dirs])
    return cmp.compare([cmp.load_run(p) for p in paths], metric, **options)


def until_decided(
    paths: list[Path],
    *,
    metric: str | None = None,
    rope: float | None = None,
    max_repeats: int = 10,
    reporter: Any = None,
) -> str:
    """Add repeats to two cross-validation runs until the Bayesian test decides, or ``max_repeats``.

    After each chunk of :data:`dlrun.protocol.splits.AUTO_CHUNK` repeats (trained at once by the engine,
    into each run's own folder, its saved folds kept) the two runs are compared; it stops when
    one of P(A better), P(practically equal), P(B better) reaches 1 − 0.05/L, L the number of looks
    the rule may take (:func:`dlrun.evaluation.stats.sequential.decision_threshold`): a rule that
    stops on what it sees at 0.95 at every look errs more often than 5% (benchmarks/sequential.py).

    Args:
        paths: The two run directories (k-fold or repeated k-fold runs on identical splits).
        metric: Metric to decide on (default: the main one).
        rope: Region of practical equivalence (default: :func:`default_rope`).
        max_repeats: Most repeats per run.
        reporter: Progress sink for the training.

    Returns:
        One sentence: how many repeats were run and why it stopped.

    Raises:
        InputError: Not exactly two runs, runs not on identical splits, or a run that cannot grow.
    """
    if len(paths) != 2:
        raise InputError(f"--until-decided compares exactly two runs; got {len(paths)}")
    if max_repeats < 1:
        raise InputError(f"--max-repeats must be a positive integer; got {max_repeats}")
    start: int | None = None
    while True:
        runs = [cmp.load_run(p) for p in paths]
        c = cmp.compare(runs, metric, rope=rope)
        bayes = c.bayes
        if bayes is None or not c.paired:
            raise InputError(
                f"--until-decided needs two cross-validation runs on identical splits; {c.reason or c.verdict}"
            )
        reps = int(runs[0].summary.get("repeats") or 1)
        start = start or reps
        # every look may stop, so each decides only at 1 - 0.05/L: all L looks together err at most 5%
        n_looks = stats.sequential.looks(start, max_repeats, AUTO_CHUNK)
        threshold = stats.sequential.decision_threshold(start, max_repeats, AUTO_CHUNK)
        a, b = runs[0].label, runs[1].label
        probs = (
            f"P({a} better) = {bayes['p_a_better']:.2f}, P(practically equal, ROPE \u00b1{bayes['rope']:.3g}) = "
            f"{bayes['p_equal']:.2f}, P({b} better) = {bayes['p_b_better']:.2f}"
        )
        if stats.sequential.decided(bayes, threshold):
            return (
                f"until-decided: decided after {reps} repeat(s): {probs} "
                f"(≥ {threshold:.4g} at each of {n_looks} looks, so that all looks together err at most 5%)."
            )
        if reps >= max_repeats:
            return f"until-decided: still undecided at --max-repeats {max_repeats}: {probs}."
        more_reps = min(max_repeats, reps + AUTO_CHUNK)
        for p in paths:
            spec = validate(read_yaml(Path(p) / CONFIG), source=str(Path(p) / CONFIG))
            if spec.evaluation.mode not in ("kfold", "repeated_kfold", "repeated_split"):
                raise InputError(f"--until-decided needs cross-validation runs; {p} has mode {spec.evaluation.mode}")
            more = with_repeats(spec, more_reps)
            with RunLock(Path(p)):
                prep = extend_repeats(more, Path(p), reporter)
                run_cv(more, Path(p), reporter, prep=prep)
