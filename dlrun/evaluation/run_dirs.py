"""Finished runs as ``dlrun compare`` reads them: discovery, loading, and whether two runs share their splits.

Reads files and returns data; never prints.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.errors import InputError
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


def fold_scores(run: Run, metric: str) -> pd.DataFrame | None:
    """The run's ``repeat, fold, <metric>`` columns of ``scores.csv``, or None when it has none."""
    if run.scores is None or metric not in run.scores.columns:
        return None
    if not {"repeat", "fold"} <= set(run.scores.columns):
        return None
    return run.scores[["repeat", "fold", metric]]


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
