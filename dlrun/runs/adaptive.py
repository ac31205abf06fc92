"""Growing a cv run by repeats: ``evaluation.repeats: auto`` and ``--until-decided``.

The first R repeats' splits and seeds do not depend on how many repeats follow, so a run of R
repeats is the start of a run of R + c: a folder keeps its saved folds and trains only the new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dlrun.errors import InputError
from dlrun.evaluation import stats
from dlrun.protocol.jobs import Prepared, prepare
from dlrun.protocol.splits import AUTO_CHUNK, concrete_repeats, splits_digest
from dlrun.reporting import Reporter
from dlrun.runs.result import RunResult
from dlrun.runs.summarize import summary_markdown
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import layout
from dlrun.store.fingerprint import data_checksum, fingerprint_diff, make_fingerprint
from dlrun.store.run_folder import RunFolder


def extend_repeats(spec: Spec, run_dir: Path, reporter: Reporter | None = None) -> Prepared:
    """Let a cv folder grow to ``spec``'s (larger) number of repeats, keeping its saved folds.

    The first R repeats' splits and seeds do not depend on how many repeats follow, so a run of
    R repeats is the start of a run of R + c. The folder's fingerprint is re-recorded for the
    longer run after checking that nothing else changed and that its saved folds are exactly
    the first folds of the longer run.

    Returns:
        The prepared longer run (pass it to :func:`run_cv`).

    Raises:
        InputError: Something other than the number of repeats changed, or the saved folds are not a prefix.
    """
    prep = prepare(spec, reporter)
    folder = RunFolder(run_dir)
    old = folder.read_fingerprint()
    if old is None:
        return prep
    new = make_fingerprint(resolved_dict(spec), data_checksum(prep.data.X, prep.data.y), splits_digest(prep.folds))
    grown = ("evaluation.repeats", "evaluation.mode", "the splits")
    changes = [c for c in fingerprint_diff(old, new) if not c.startswith(grown)]
    if changes:
        raise InputError(
            f"{run_dir} can only grow by more repeats, but its spec differs in: {'; '.join(changes[:6])}; "
            "start a new run with another --out"
        )
    saved = Path(run_dir) / layout.FOLDS
    n_old = len(pd.read_csv(saved, usecols=["repeat"])) if saved.exists() else 0
    if old.get("splits") and n_old and splits_digest(prep.folds[:n_old]) != old["splits"]:
        raise InputError(
            f"{run_dir}: its saved folds are not the first folds of a run with {concrete_repeats(spec.evaluation)} "
            "repeats, so repeats cannot be added to it; start a new run with another --out"
        )
    folder.write_fingerprint(new)
    return prep


def with_repeats(spec: Spec, repeats: int) -> Spec:
    """``spec`` with ``repeats`` concrete repeats (k-fold modes become ``repeated_kfold``)."""
    ev = spec.evaluation
    mode = "repeated_split" if ev.mode == "repeated_split" else "repeated_kfold"
    return spec.model_copy(update={"evaluation": ev.model_copy(update={"mode": mode, "repeats": int(repeats)})})


def halfwidth_floor(summary: dict[str, Any]) -> float | None:
    """The narrowest headline half-width more repeats could reach, or None when there is no floor.

    Repeats re-test the same rows, so averaging them removes only the split-to-split part of the
    corrected variance (:func:`dlrun.evaluation.stats.nadeau_bengio`): its se cannot go below
    ``se_floor``, the se of infinitely many repeats (for summaries written before ``se_floor``
    existed, the Nadeau–Bengio ``√(n_test/n_train)·s``), a half-width of about ``z·se_floor``
    mapped through the metric's scale at the current mean.
    """
    block = summary["metrics"][summary["main_metric"]]
    d = block.get("corrected")
    if block["headline"] != "corrected" or not d or d.get("std") is None:
        return None
    if d.get("se_floor") is not None:
        se_inf = float(d["se_floor"])
    else:
        se_inf = (float(d["n_test"]) / float(d["n_train"])) ** 0.5 * float(d["std"])
    lo, hi, _ = stats.bounded_interval(
        float(d["mean"]), se_inf, 10**6, float(d["confidence"]), stats.metric_scale(summary["main_metric"])
    )
    return max(float(d["mean"]) - lo, hi - float(d["mean"]))


def grow_until_narrow(
    spec: Spec,
    run_dir: Path,
    run_cv: Callable[..., RunResult],
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    executor: Any = None,
    extend: Callable[..., Prepared | None] = extend_repeats,
) -> RunResult:
    """``evaluation.repeats: auto``: add repeats in chunks until the headline is narrow enough.

    Each chunk of :data:`dlrun.protocol.splits.AUTO_CHUNK` repeats is one :func:`run_cv` call on the same
    folder: the folds already saved are kept (the splits of the first R repeats do not depend
    on how many follow), only the new chunk is trained, at once by the engine. It stops when the
    headline interval's half-width is at most ``evaluation.target_halfwidth``, when
    ``evaluation.max_repeats`` is reached, or as soon as the target is below the half-width no
    number of repeats can reach (:func:`halfwidth_floor`). The summary's ``adaptive`` block and
    the headline text say how many repeats ran and why it stopped.

    Args:
        run_cv: Runs one concrete number of repeats (:func:`dlrun.runs.cv.run_cv`).
        extend: Grows the folder by repeats (:func:`extend_repeats`).
    """
    ev = spec.evaluation
    target = float(ev.target_halfwidth or 0.0)
    most = int(ev.max_repeats)
    r = min(AUTO_CHUNK, most)
    trail: list[dict[str, Any]] = []
    while True:
        concrete = with_repeats(spec, r)
        prep = extend(concrete, run_dir, reporter) if trail else None
        outcome = run_cv(concrete, run_dir, reporter, argv=argv, executor=executor, prep=prep)
        summary = outcome.summary
        half = summary["headline"].get("halfwidth")
        trail.append({"repeats": r, "halfwidth": half})
        floor = halfwidth_floor(summary)
        d = stats.decimals_for(half)
        if half is not None and half <= target:
            why = f"the headline half-width {half:.{d}f} is at most the target {target:g}"
            reached = "target"
            break
        if r >= most:
            shown = stats.format_number(half, d)
            why = f"evaluation.max_repeats = {most} was reached with half-width {shown} > target {target:g}"
            reached = "max_repeats"
            break
        if floor is not None and floor > target:
            why = (
                f"the target {target:g} cannot be reached: repeats re-test the same rows, so they remove only the "
                f"split-to-split part of the corrected variance and the half-width stays above about {floor:.{d}f} "
                f"(now {half:.{d}f}); more data would narrow it, more repeats cannot"
            )
            reached = "unreachable"
            break
        r = min(most, r + AUTO_CHUNK)
    adaptive = {
        "repeats_run": r,
        "target_halfwidth": target,
        "max_repeats": most,
        "chunk": AUTO_CHUNK,
        "halfwidth": half,
        "floor": floor,
        "stopped": reached,
        "trail": trail,
        "text": f"{r} repeat{'s' if r != 1 else ''} run (evaluation.repeats: auto, chunks of {AUTO_CHUNK}); "
        f"stopped because {why}",
    }
    summary["adaptive"] = adaptive
    summary["headline"]["text"] += f"; {adaptive['text']}"
    summary["headline"]["adaptive"] = adaptive["text"]
    RunFolder(run_dir).writer.write_summary(summary, summary_markdown(summary))
    return RunResult(outcome.path, summary, outcome.engine, [*outcome.notes, adaptive["text"]])
