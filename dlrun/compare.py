"""Compare finished runs: a table of estimates and, for pairs, a significance test.

Pure functions over run directories: they read files and return data, never print.

A pair of cross-validation runs scored on identical splits (same test rows in every
repeat and fold) is compared with the Nadeau & Bengio (2003) corrected paired t-test on
the per-fold differences; runs on different splits fall back to Welch's test, which is
optimistic and says so.
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun import stats
from dlrun.errors import InputError

SUMMARY = "summary.json"
SCORES = "scores.csv"
FOLDS = "folds.csv"

#: Modes of a single ``train`` run: one score per metric, no interval.
SINGLE_MODES: tuple[str, ...] = ("split", "validation_split", "none")


@dataclass
class Run:
    """A finished run as read from its directory.

    Attributes:
        name: Run name (``summary["name"]``, else the directory name).
        path: The run directory.
        mode: Evaluation mode, e.g. ``repeated_kfold`` or ``split``.
        summary: Parsed ``summary.json``.
        scores: ``scores.csv`` (one row per repeat and fold), or None if absent.
        folds: ``folds.csv`` (one row per repeat and fold, with ``test_index``), or None if absent.
    """

    name: str
    path: Path
    mode: str
    summary: dict[str, Any]
    scores: pd.DataFrame | None = None
    folds: pd.DataFrame | None = None

    @property
    def metrics(self) -> list[str]:
        """Names of the metrics in the summary."""
        return list(self.summary.get("metrics", {}))

    @property
    def confidence(self) -> float:
        """Confidence level the run was summarised at (0.95 if unrecorded)."""
        return float(self.summary.get("confidence") or 0.95)


@dataclass
class Comparison:
    """Result of ``compare``.

    Attributes:
        metric: The metric compared.
        confidence: Confidence level of the tests (the first run's).
        table: One row per run with columns ``run, name, mode, metric, n, mean, std, se,
            ci_low, ci_high, estimate, path``.
        test: For exactly two runs, the test dict of runs[0] − runs[1], or None if no test
            is possible.
        paired: Whether the test is paired (identical splits).
        reason: Why the test was chosen (or why there is none).
        verdict: One sentence: the difference, its interval, p, the test, and the conclusion.
        pairwise: For two or more runs, one dict per run after the first with keys ``a``,
            ``b``, ``test``, ``paired``, ``reason``, ``verdict`` (difference a − b, a = runs[0]).
    """

    metric: str
    confidence: float
    table: pd.DataFrame
    test: dict[str, Any] | None = None
    paired: bool = False
    reason: str = ""
    verdict: str = ""
    pairwise: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- discovery


def _is_run(path: Path) -> bool:
    return (path / SUMMARY).is_file()


def _runs_under(path: Path) -> list[Path]:
    """Run directories at or below ``path``, sorted; a run's own sub-folders are not searched."""
    if _is_run(path):
        return [path]
    found: list[Path] = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        found.extend(_runs_under(child))
    return found


def expand_run_dirs(patterns: list[str]) -> list[Path]:
    """Expand directories and glob patterns to run directories.

    A directory holding ``summary.json`` is a run. Any other directory expands to the runs
    below it (e.g. a run-name folder of timestamped runs, or a sweep folder of children),
    in sorted order. A ``summary.json`` path stands for its directory.

    Args:
        patterns: Paths or glob patterns, e.g. ``["outputs/sonar_*/*"]``.

    Returns:
        Run directories, in pattern order, without duplicates.

    Raises:
        InputError: If ``patterns`` is empty or a pattern matches no run.
    """
    if not patterns:
        raise InputError("patterns must name at least one run directory or glob; got none")
    out: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        runs: list[Path] = []
        for m in matches:
            p = Path(m)
            if p.is_file() and p.name == SUMMARY:
                p = p.parent
            if p.is_dir():
                runs.extend(_runs_under(p))
        if not runs:
            what = "matches no path" if not any(Path(m).exists() for m in matches) else "contains no run"
            raise InputError(
                f"run pattern must match a run directory (one with {SUMMARY}) or a folder of runs; {pattern!r} {what}"
            )
        for r in runs:
            key = r.resolve()
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, OSError) as e:
        raise InputError(f"{path} must be a readable CSV file; reading it failed: {e}") from e


def load_run(path: str | Path) -> Run:
    """Read a run directory.

    Args:
        path: Directory containing ``summary.json`` and optionally ``scores.csv`` and ``folds.csv``.

    Returns:
        The ``Run``.

    Raises:
        InputError: If ``summary.json`` is missing, not JSON, or lacks ``mode`` or ``metrics``.
    """
    p = Path(path)
    sfile = p / SUMMARY
    if not sfile.is_file():
        raise InputError(f"run directory must contain {SUMMARY}; {str(p)!r} does not")
    try:
        summary = json.loads(sfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{sfile} must be valid JSON; reading it failed: {e}") from e
    if not isinstance(summary, dict):
        raise InputError(f"{sfile} must hold a JSON object; got {type(summary).__name__}")
    for key in ("mode", "metrics"):
        if key not in summary:
            raise InputError(f"{sfile} must have a {key!r} key; it has {', '.join(summary) or 'none'}")
    if not isinstance(summary["metrics"], dict):
        raise InputError(f"{sfile} 'metrics' must be an object; got {type(summary['metrics']).__name__}")
    # test_index is compared as text; keep_default_na stops an empty fold reading as NaN.
    folds = _read_csv(p / FOLDS, dtype={"test_index": str}, keep_default_na=False)
    scores = _read_csv(p / SCORES)
    return Run(
        name=str(summary.get("name") or p.name),
        path=p,
        mode=str(summary["mode"]),
        summary=summary,
        scores=scores,
        folds=folds,
    )


# --------------------------------------------------------------------------- splits


def same_splits(a: Run, b: Run) -> tuple[bool, str]:
    """Whether two runs used identical train/test splits.

    Identical means the same set of (repeat, fold) keys and, for each, the same test rows.

    Args:
        a: First run.
        b: Second run.

    Returns:
        ``(identical, reason)``; the reason names the first difference found.
    """
    for r in (a, b):
        if r.folds is None:
            return False, f"run {r.name!r} has no {FOLDS}, so its splits are unknown"
        missing = [c for c in ("repeat", "fold", "test_index") if c not in r.folds.columns]
        if missing:
            return False, f"{FOLDS} of run {r.name!r} lacks column(s) {', '.join(missing)}"
    assert a.folds is not None and b.folds is not None
    fa, fb = a.folds, b.folds
    ra, rb = fa["repeat"].nunique(), fb["repeat"].nunique()
    if ra != rb:
        return False, f"different number of repeats ({ra} in {a.name!r} vs {rb} in {b.name!r})"
    ka, kb = len(fa), len(fb)
    if ka != kb:
        return False, f"different number of folds ({ka} in {a.name!r} vs {kb} in {b.name!r})"

    def index(df: pd.DataFrame) -> dict[tuple[int, int], tuple[str, ...]]:
        # Whitespace-normalised so "1 2" and "1  2" count as the same rows.
        return {
            (int(rep), int(fold)): tuple(str(ti).split())
            for rep, fold, ti in zip(df["repeat"], df["fold"], df["test_index"], strict=True)
        }

    ia, ib = index(fa), index(fb)
    for key in sorted(set(ia) | set(ib)):
        if key not in ia or key not in ib:
            owner = a.name if key not in ia else b.name
            return False, f"repeat {key[0]} fold {key[1]} is missing from run {owner!r}"
        if ia[key] != ib[key]:
            return False, f"different test rows in repeat {key[0]} fold {key[1]}"
    return True, f"identical test rows in all {len(ia)} folds"


# --------------------------------------------------------------------------- comparison


def _metric_entry(run: Run, metric: str) -> Any:
    metrics = run.summary.get("metrics", {})
    if metric not in metrics:
        raise InputError(
            f"metric must be one of the metrics of run {run.name!r} ({', '.join(metrics) or 'none'}); got {metric!r}"
        )
    return metrics[metric]


def _row(run: Run, metric: str) -> dict[str, Any]:
    entry = _metric_entry(run, metric)
    base = {"run": run.path.name, "name": run.name, "mode": run.mode, "metric": metric}
    if isinstance(entry, dict):
        est = str(entry.get("headline") or "folds")
        s = entry.get(est) or entry.get("folds") or {}
        return {
            **base,
            "n": s.get("n"),
            "mean": s.get("mean"),
            "std": s.get("std"),
            "se": s.get("se"),
            "ci_low": s.get("ci_low"),
            "ci_high": s.get("ci_high"),
            "estimate": est,
            "path": str(run.path),
        }
    value = None if entry is None else float(entry)
    return {
        **base,
        "n": 1,
        "mean": value if value is not None and math.isfinite(value) else None,
        "std": None,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "estimate": "single",
        "path": str(run.path),
    }


def _fold_scores(run: Run, metric: str) -> pd.DataFrame | None:
    if run.scores is None or metric not in run.scores.columns:
        return None
    if not {"repeat", "fold"} <= set(run.scores.columns):
        return None
    return run.scores[["repeat", "fold", metric]]


def _verdict(a: Run, b: Run, metric: str, test: dict[str, Any], what: str, confidence: float) -> str:
    alpha = 1.0 - confidence
    d = stats.decimals_for(test.get("se"), test.get("mean_diff"))
    diff = stats.format_number(test["mean_diff"], d, signed=True)
    lo = stats.format_number(test["ci_low"], d, signed=True)
    hi = stats.format_number(test["ci_high"], d, signed=True)
    p = float(test["p"])
    sig = p < alpha
    conclusion = f"significant at \u03b1 = {alpha:g}" if sig else f"not significant at \u03b1 = {alpha:g}"
    if test["test"] == "welch" and sig:
        conclusion += ", but Welch's test ignores the dependence between resampled scores and is optimistic"
    return (
        f"{a.name} \u2212 {b.name} = {diff} {metric} ({stats.format_confidence(confidence)} CI {lo} to {hi}), "
        f"{stats.format_p(p)} by {what}: {conclusion}."
    )


def _test_pair(a: Run, b: Run, metric: str, confidence: float) -> dict[str, Any]:
    """Choose and run the test of a − b; returns ``{a, b, test, paired, reason, verdict}``."""
    out: dict[str, Any] = {"a": a.name, "b": b.name, "test": None, "paired": False}
    sa, sb = _fold_scores(a, metric), _fold_scores(b, metric)
    if sa is None or sb is None:
        lacking = a if sa is None else b
        why = (
            f"run {lacking.name!r} has a single {metric} score (mode {lacking.mode})"
            if lacking.mode in SINGLE_MODES
            else f"run {lacking.name!r} has no per-fold {metric} scores in {SCORES}"
        )
        out["reason"] = why
        out["verdict"] = f"No test of {a.name} \u2212 {b.name}: {why}, and a test needs at least 2 scores per run."
        return out
    identical, why_splits = same_splits(a, b)
    if identical:
        merged = sa.merge(sb, on=["repeat", "fold"], suffixes=("_a", "_b"))
        xa = merged[f"{metric}_a"].to_numpy(dtype=float)
        xb = merged[f"{metric}_b"].to_numpy(dtype=float)
        n_ok = int(((~pd.isna(xa)) & (~pd.isna(xb))).sum())
        if n_ok >= 2:
            if a.mode == "repeated_split" and b.mode == "repeated_split":
                # Every repeat reuses one split: pairs differ only by seed, so the plain
                # paired test is right, and its inference is conditional on that split.
                test = stats.paired_ttest(xa, xb, confidence)
                what = f"a paired t-test over {test['n']} seeds on one identical split (conditional on that split)"
            else:
                n_train = float(a.summary.get("n_train") or 0) or None
                n_test = float(a.summary.get("n_test") or 0) or None
                if n_train is None or n_test is None:
                    raise InputError(
                        f"{SUMMARY} of run {a.name!r} must have positive n_train and n_test for the corrected "
                        f"paired t-test; got n_train={a.summary.get('n_train')!r}, n_test={a.summary.get('n_test')!r}"
                    )
                test = stats.corrected_paired_ttest(xa, xb, n_train, n_test, confidence)
                what = f"the Nadeau\u2013Bengio corrected paired t-test over {test['n']} folds on identical splits"
            out.update(test=test, paired=True, reason=why_splits)
            out["verdict"] = _verdict(a, b, metric, test, what, confidence)
            return out
        why_splits = f"splits are identical but only {n_ok} fold(s) have finite scores in both runs"
    xa = sa[metric].to_numpy(dtype=float)
    xb = sb[metric].to_numpy(dtype=float)
    fa, fb = int((~pd.isna(xa)).sum()), int((~pd.isna(xb)).sum())
    if fa < 2 or fb < 2:
        out["reason"] = f"{why_splits}; Welch's test needs 2 finite scores per run, got {fa} and {fb}"
        out["verdict"] = f"No test of {a.name} \u2212 {b.name}: {out['reason']}."
        return out
    test = stats.welch_ttest(xa, xb, confidence)
    what = f"Welch's t-test over {test['n_a']} vs {test['n_b']} fold scores on different splits ({why_splits})"
    out.update(test=test, paired=False, reason=why_splits)
    out["verdict"] = _verdict(a, b, metric, test, what, confidence)
    return out


def compare(runs: list[Run], metric: str | None = None) -> Comparison:
    """Tabulate runs and test differences against the first run.

    Args:
        runs: Runs to compare, at least one; the first is the reference.
        metric: Metric to compare; defaults to the first run's ``main_metric``.

    Returns:
        A ``Comparison``. ``test``/``paired``/``reason``/``verdict`` describe runs[0] − runs[1]
        when exactly two runs are given; ``pairwise`` holds runs[0] − runs[i] for every i ≥ 1.

    Raises:
        InputError: If ``runs`` is empty, no metric can be chosen, or a run lacks the metric.
    """
    if not runs:
        raise InputError("runs must contain at least one run; got none")
    first = runs[0]
    if metric is None:
        metric = first.summary.get("main_metric") or (first.metrics[0] if first.metrics else None)
        if metric is None:
            raise InputError(f"metric must be given because run {first.name!r} has no main_metric and no metrics")
    metric = str(metric)
    table = pd.DataFrame([_row(r, metric) for r in runs])
    confidence = first.confidence
    result = Comparison(metric=metric, confidence=confidence, table=table)
    result.pairwise = [_test_pair(first, other, metric, confidence) for other in runs[1:]]
    if len(runs) == 2:
        pair = result.pairwise[0]
        result.test = pair["test"]
        result.paired = bool(pair["paired"])
        result.reason = str(pair["reason"])
        result.verdict = str(pair["verdict"])
    return result
