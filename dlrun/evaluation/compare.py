"""Compare finished runs: a table of estimates and tests of their differences.

Pure functions over run directories: they read files and return data, never print.

A pair of cross-validation runs scored on identical splits (same test rows in every
repeat and fold) is compared with the Nadeau & Bengio (2003) corrected paired t-test on
the per-fold differences and with the Bayesian correlated t-test (a region of practical
equivalence gives P(A better), P(practically equal), P(B better)); every verdict states
the smallest difference the test would detect. Runs on different splits fall back to
Welch's test, whose p-value is approximate, and say so. Three or more runs are compared
with the best (or all pairs) with Holm-adjusted p-values.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.evaluation.summary import headline_block, headline_name
from dlrun.store.io import read_summary
from dlrun.store.layout import FOLDS, SCORES
from dlrun.store.layout import SUMMARY_JSON as SUMMARY

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
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name

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
            ci_low, ci_high, estimate, path, label, interval`` (``std``: of the fold scores;
            ``se``: of the headline estimate, corrected where it is; ``interval``: what
            ``ci_low``/``ci_high`` are).
        test: For exactly two runs, the frequentist test dict of runs[0] − runs[1], or None.
        paired: Whether the test is paired (identical splits).
        reason: Which comparison was made and why (or why there is none).
        verdict: Two runs: the difference, interval, p, test, conclusion, the smallest
            detectable difference and the Bayesian probabilities. More runs: the best and the
            runs that cannot be told apart from it.
        pairwise: One dict per tested pair with keys ``a``, ``b`` (labels; difference a − b),
            ``test``, ``paired``, ``reason``, ``what``, ``bayes``, ``mdd`` (difference detected
            with 80% power), ``p_holm`` (3+ runs) and ``verdict``.
        bayes: For two runs on identical splits, the Bayesian correlated t-test dict.
        rope: Half-width of the region of practical equivalence (metric units).
        rope_text: How ``rope`` was chosen.
        best: Label of the best run on the metric.
        pairs: ``"best"`` (each run against the best) or ``"all"``.
        indistinguishable: Labels of the runs that cannot be told apart from the best (3+ runs).
        forest: 3+ runs: one row per run other than the best, with ``label, reference, diff,
            ci_low, ci_high, p, p_holm, paired, test, same_as_best`` (diff = run − best), the
            data of a forest plot.
    """

    metric: str
    confidence: float
    table: pd.DataFrame
    test: dict[str, Any] | None = None
    paired: bool = False
    reason: str = ""
    verdict: str = ""
    pairwise: list[dict[str, Any]] = field(default_factory=list)
    bayes: dict[str, Any] | None = None
    rope: float = 0.01
    rope_text: str = ""
    best: str | None = None
    pairs: str = "best"
    indistinguishable: list[str] = field(default_factory=list)
    forest: pd.DataFrame = field(default_factory=pd.DataFrame)


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
    summary = read_summary(p)
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


def shared_repeats(a: Run, b: Run) -> list[int]:
    """The repeats both runs have with identical folds, when one run's repeats are all among them.

    Splits do not depend on how many repeats follow (:mod:`dlrun.protocol.splits`), so a 1-repeat and a
    3-repeat run of the same data and split seed share their first repeat and can be paired on it.

    Returns:
        The shared repeat indices, or ``[]`` when the runs cannot be paired this way.
    """
    if a.folds is None or b.folds is None:
        return []
    cols = {"repeat", "fold", "test_index"}
    if not cols <= set(a.folds.columns) or not cols <= set(b.folds.columns):
        return []

    def by_repeat(df: pd.DataFrame) -> dict[int, dict[int, tuple[str, ...]]]:
        out: dict[int, dict[int, tuple[str, ...]]] = {}
        for rep, fold, ti in zip(df["repeat"], df["fold"], df["test_index"], strict=True):
            out.setdefault(int(rep), {})[int(fold)] = tuple(str(ti).split())
        return out

    ra, rb = by_repeat(a.folds), by_repeat(b.folds)
    shared = [r for r in sorted(set(ra) & set(rb)) if ra[r] == rb[r]]
    shorter = ra if len(ra) <= len(rb) else rb
    return shared if shared and set(shared) == set(shorter) else []


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
        est = headline_name(entry)
        s = headline_block(entry)
        lo, hi = stats.interval_of(s)
        return {
            **base,
            "n": s.get("n"),
            "mean": s.get("mean"),
            "std": s.get("std"),
            "se": s.get("se"),
            "ci_low": lo,
            "ci_high": hi,
            "estimate": est,
            "path": str(run.path),
            "label": run.label,
            "interval": s.get("label") or ("Nadeau\u2013Bengio corrected interval" if est == "corrected" else est),
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
        "label": run.label,
        "interval": "single held-out score: no interval",
    }


def _fold_scores(run: Run, metric: str) -> pd.DataFrame | None:
    if run.scores is None or metric not in run.scores.columns:
        return None
    if not {"repeat", "fold"} <= set(run.scores.columns):
        return None
    return run.scores[["repeat", "fold", metric]]


def default_rope(metric: str, reference: float | None) -> tuple[float, str]:
    """The default region of practical equivalence, in the metric's units, and how it was chosen.

    Args:
        metric: Metric name.
        reference: The reference run's mean (scales the ROPE of unbounded metrics).

    Returns:
        ``(half_width, explanation)``: 0.01 for scores in [0, 1] and R² (one point of accuracy),
        else 1% of the reference mean.
    """
    if stats.metric_scale(metric) in ("clip01", "logit", "log1m", "cap1"):
        return 0.01, f"default \u00b10.01 {metric} for a score in [0, 1]"
    if reference is not None and math.isfinite(reference) and reference != 0:
        r = 0.01 * abs(reference)
        return r, f"default \u00b1{r:.3g} {metric}, 1% of the reference run's mean"
    return 0.01, f"default \u00b10.01 {metric}"


def unique_labels(runs: list[Run], labels: list[str] | None = None) -> list[str]:
    """A distinct, readable name for every run.

    Given labels win; otherwise the spec name, or the run folder name where spec names collide
    (two runs of one config), then ``parent/folder``, then a ``#i`` suffix: never two identical names.

    Args:
        runs: The runs, in order.
        labels: Names given by the user (``--label``), as many as runs, or None.

    Returns:
        One label per run.

    Raises:
        InputError: If ``labels`` has the wrong length or repeats a name.
    """
    if labels:
        if len(labels) != len(runs):
            raise InputError(f"--label must be given once per run ({len(runs)} runs); got {len(labels)} label(s)")
        if len(set(labels)) != len(labels):
            raise InputError(f"--label values must be distinct; got {', '.join(labels)}")
        return list(labels)
    spec_names = [r.name for r in runs]
    names = [r.path.name if spec_names.count(r.name) > 1 else r.name for r in runs]
    first = list(names)
    names = [f"{r.path.parent.name}/{r.path.name}" if first.count(n) > 1 else n for r, n in zip(runs, first)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n}#{seen[n]}")
    return out


def _conclusion(test: dict[str, Any], alpha: float, p: float | None, adjusted: bool) -> str:
    if p is None:
        return "not testable (no variance across folds), so no significance is claimed"
    sig = p < alpha
    text = f"significant at \u03b1 = {alpha:g}" if sig else f"not significant at \u03b1 = {alpha:g}"
    if adjusted:
        text += " after Holm's adjustment"
    if test["test"] == "welch":
        text += " (Welch's p-value is approximate: it ignores the dependence between fold scores)"
    return text


def _verdict(pair: dict[str, Any], metric: str, what: str, confidence: float, n_tests: int = 1) -> str:
    """The sentence for one pair: difference, interval, p, test, conclusion, power and the Bayesian test."""
    test = pair["test"]
    a, b = pair["a"], pair["b"]
    alpha = 1.0 - confidence
    d = stats.decimals_for(test.get("se"), test.get("mean_diff"))
    diff = stats.format_number(test["mean_diff"], d, signed=True)
    lo = stats.format_number(test["ci_low"], d, signed=True)
    hi = stats.format_number(test["ci_high"], d, signed=True)
    p = test.get("p")
    p_used = pair.get("p_holm") if n_tests > 1 else p
    p_text = stats.format_p(p)
    if n_tests > 1:
        p_text += f" (Holm-adjusted over {n_tests} comparisons: {stats.format_p(p_used)})"
    text = (
        f"{a} \u2212 {b} = {diff} {metric} ({stats.format_confidence(confidence)} CI {lo} to {hi}), "
        f"{p_text} by {what}: {_conclusion(test, alpha, p_used, n_tests > 1)}."
    )
    mdd = pair.get("mdd")
    n = test.get("n") or min(test.get("n_a") or 0, test.get("n_b") or 0)
    if mdd is not None:
        text += (
            f" At {n} folds a true difference smaller than {stats.format_number(mdd, d)} would not be detected "
            f"(80% power at \u03b1 = {alpha:g})"
            + (", so 'not significant' does not mean 'equal'." if p_used is not None and p_used >= alpha else ".")
        )
    bayes = pair.get("bayes")
    if bayes is not None:
        text += (
            f" Bayesian correlated t-test, ROPE \u00b1{bayes['rope']:.3g}: P({a} better) = {bayes['p_a_better']:.2f}, "
            f"P(practically equal) = {bayes['p_equal']:.2f}, P({b} better) = {bayes['p_b_better']:.2f}"
            + (
                f" (decided: {_decided_text(bayes['decided'], a, b)} with \u2265 95%)."
                if bayes["decided"]
                else " (undecided: no region reaches 95%)."
            )
        )
    if test.get("note"):
        text += f" Note: {test['note']}."
    return text


def _decided_text(region: str | None, a: str, b: str) -> str:
    return {"a_better": f"{a} better", "b_better": f"{b} better", "equal": "practically equal"}.get(str(region), "")


def _test_pair(
    a: Run, b: Run, metric: str, confidence: float, rope: float, higher_is_better: bool = True
) -> dict[str, Any]:
    """Choose and run the test of a − b; returns ``{a, b, test, paired, reason, bayes, mdd, what, verdict}``."""
    out: dict[str, Any] = {"a": a.label, "b": b.label, "test": None, "paired": False, "bayes": None, "mdd": None}
    sa, sb = _fold_scores(a, metric), _fold_scores(b, metric)
    alpha = 1.0 - confidence
    if sa is None or sb is None:
        lacking = a if sa is None else b
        why = (
            f"run {lacking.label!r} has a single {metric} score (mode {lacking.mode})"
            if lacking.mode in SINGLE_MODES
            else f"run {lacking.label!r} has no per-fold {metric} scores in {SCORES}"
        )
        out["reason"] = why
        out["what"] = "no test"
        out["verdict"] = f"No test of {a.label} \u2212 {b.label}: {why}, and a test needs at least 2 scores per run."
        return out
    identical, why_splits = same_splits(a, b)
    if not identical:
        common = shared_repeats(a, b)
        if common:
            sa = sa[sa["repeat"].isin(common)]
            sb = sb[sb["repeat"].isin(common)]
            longer = a if a.folds is not None and b.folds is not None and len(a.folds) > len(b.folds) else b
            why_splits = (
                f"identical test rows in the {len(sa)} folds of the {len(common)} repeat(s) both runs have "
                f"(run {longer.label!r} has more repeats; those are left out of the paired test)"
            )
            identical = True
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
                bayes = stats.bayesian_correlated_ttest(
                    xa, xb, rope, correction=1.0 / test["n"], higher_is_better=higher_is_better
                )
            else:
                n_train = float(a.summary.get("n_train") or 0) or None
                n_test = float(a.summary.get("n_test") or 0) or None
                if n_train is None or n_test is None:
                    raise InputError(
                        f"{SUMMARY} of run {a.label!r} must have positive n_train and n_test for the corrected "
                        f"paired t-test; got n_train={a.summary.get('n_train')!r}, n_test={a.summary.get('n_test')!r}"
                    )
                test = stats.corrected_paired_ttest(xa, xb, n_train, n_test, confidence)
                what = f"the Nadeau\u2013Bengio corrected paired t-test over {test['n']} folds on identical splits"
                bayes = stats.bayesian_correlated_ttest(
                    xa, xb, rope, n_train=n_train, n_test=n_test, higher_is_better=higher_is_better
                )
            out.update(
                test=test,
                paired=True,
                bayes=bayes,
                mdd=stats.min_detectable_difference(test["se"], test["df"], alpha),
                what=what,
                reason=(
                    f"paired: {why_splits}, so each fold's difference is tested (the default evaluation.split_seed "
                    "is fixed, so runs that differ only in seed or model share their folds)"
                ),
            )
            out["verdict"] = _verdict(out, metric, what, confidence)
            return out
        why_splits = f"splits are identical but only {n_ok} fold(s) have finite scores in both runs"
    xa = sa[metric].to_numpy(dtype=float)
    xb = sb[metric].to_numpy(dtype=float)
    fa, fb = int((~pd.isna(xa)).sum()), int((~pd.isna(xb)).sum())
    reason = (
        f"unpaired: {why_splits}; to pair them, run both on the same data with the same evaluation section "
        "(folds, repeats and split_seed)"
    )
    if fa < 2 or fb < 2:
        out["reason"] = f"{reason}; Welch's test needs 2 finite scores per run, got {fa} and {fb}"
        out["what"] = "no test"
        out["verdict"] = f"No test of {a.label} \u2212 {b.label}: {out['reason']}."
        return out
    test = stats.welch_ttest(xa, xb, confidence)
    what = f"Welch's t-test over {test['n_a']} vs {test['n_b']} fold scores on different splits"
    out.update(
        test=test,
        paired=False,
        reason=reason,
        what=what,
        mdd=stats.min_detectable_difference(test["se"], test["df"], alpha),
    )
    out["verdict"] = _verdict(out, metric, what, confidence)
    return out


def _negated(pair: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(diff, low, high)`` of b − a from a test of a − b."""
    t = pair.get("test")
    if not t:
        return None, None, None
    return -t["mean_diff"], -t["ci_high"], -t["ci_low"]


def compare(
    runs: list[Run],
    metric: str | None = None,
    *,
    rope: float | None = None,
    pairs: str = "best",
    labels: list[str] | None = None,
) -> Comparison:
    """Tabulate runs and test their differences.

    Two runs: ``runs[0] − runs[1]``. Three or more: every run against the best on ``metric``
    (``pairs="best"``), or every pair (``pairs="all"``), with Holm-adjusted p-values, and the
    set of runs that cannot be told apart from the best.

    Args:
        runs: Runs to compare, at least one.
        metric: Metric to compare; defaults to the first run's ``main_metric``.
        rope: Half-width of the region of practical equivalence for the Bayesian test, in the
            metric's units; default from :func:`default_rope`.
        pairs: ``"best"`` or ``"all"``.
        labels: One distinct name per run (``--label``); default from :func:`unique_labels`.

    Returns:
        A ``Comparison``.

    Raises:
        InputError: If ``runs`` is empty, no metric can be chosen, a run lacks the metric, or an
            argument is invalid.
    """
    if not runs:
        raise InputError("runs must contain at least one run; got none")
    if pairs not in ("best", "all"):
        raise InputError(f"pairs must be 'best' or 'all'; got {pairs!r}")
    for r, lab in zip(runs, unique_labels(runs, labels), strict=True):
        r.label = lab
    first = runs[0]
    if metric is None:
        metric = first.summary.get("main_metric") or (first.metrics[0] if first.metrics else None)
        if metric is None:
            raise InputError(f"metric must be given because run {first.label!r} has no main_metric and no metrics")
    metric = str(metric)
    table = pd.DataFrame([_row(r, metric) for r in runs])
    confidence = first.confidence
    alpha = 1.0 - confidence
    higher = _higher_is_better(first, metric)
    means = [m if m is not None and math.isfinite(m) else None for m in table["mean"]]
    scored = [i for i, m in enumerate(means) if m is not None]
    best_i = (max if higher else min)(scored, key=lambda i: means[i]) if scored else 0  # type: ignore[arg-type,return-value]
    if rope is None:
        rope_value, rope_text = default_rope(metric, means[best_i])
    else:
        if not math.isfinite(float(rope)) or float(rope) < 0:
            raise InputError(f"--rope must be a non-negative number in {metric} units; got {rope!r}")
        rope_value, rope_text = float(rope), f"\u00b1{float(rope):g} {metric}, as given"
    result = Comparison(metric=metric, confidence=confidence, table=table, rope=rope_value, rope_text=rope_text)
    result.pairs = pairs
    if len(runs) == 2:
        pair = _test_pair(runs[0], runs[1], metric, confidence, rope_value, higher)
        result.pairwise = [pair]
        result.test = pair["test"]
        result.bayes = pair["bayes"]
        result.paired = bool(pair["paired"])
        result.reason = str(pair["reason"])
        result.verdict = str(pair["verdict"])
        result.best = runs[best_i].label
        return result
    if len(runs) == 1:
        result.best = first.label
        return result
    best = runs[best_i]
    result.best = best.label
    if pairs == "best":
        todo = [(best, r) for r in runs if r is not best]
    else:
        todo = [(runs[i], runs[j]) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    tested = [_test_pair(a, b, metric, confidence, rope_value, higher) for a, b in todo]
    adjusted = stats.holm([t["test"]["p"] if t["test"] else None for t in tested])
    n_tests = sum(p is not None for p in adjusted)
    for t, p_adj in zip(tested, adjusted, strict=True):
        t["p_holm"] = p_adj
        if t["test"] is not None:
            t["verdict"] = _verdict(t, metric, t["what"], confidence, n_tests=max(n_tests, 1))
    result.pairwise = tested
    # Which runs cannot be told apart from the best (Holm-adjusted, or no test possible).
    same = [best.label]
    forest = []
    for r in runs:
        if r is best:
            continue
        t = next(t for t in tested if {t["a"], t["b"]} == {best.label, r.label})
        p_adj = t.get("p_holm")
        if p_adj is None or p_adj >= alpha:
            same.append(r.label)
        diff, lo, hi = (
            _negated(t)
            if t["a"] == best.label
            else (
                (t["test"]["mean_diff"], t["test"]["ci_low"], t["test"]["ci_high"]) if t["test"] else (None, None, None)
            )
        )
        forest.append(
            {
                "label": r.label,
                "reference": best.label,
                "diff": diff,
                "ci_low": lo,
                "ci_high": hi,
                "p": t["test"]["p"] if t["test"] else None,
                "p_holm": p_adj,
                "paired": t["paired"],
                "test": t["test"]["test"] if t["test"] else None,
                "same_as_best": r.label in same,
            }
        )
    result.indistinguishable = same
    result.forest = pd.DataFrame(forest)
    result.verdict = (
        f"Best on {metric}: {best.label}. Cannot be told apart from it at \u03b1 = {alpha:g} (Holm-adjusted over "
        f"{n_tests} comparison{'s' if n_tests != 1 else ''}): "
        + (", ".join(x for x in same if x != best.label) or "none")
        + "."
    )
    return result


def _higher_is_better(run: Run, metric: str) -> bool:
    entry = run.summary.get("metrics", {}).get(metric)
    if isinstance(entry, dict) and "higher_is_better" in entry:
        return bool(entry["higher_is_better"])
    return stats.metric_scale(metric) != "log"
