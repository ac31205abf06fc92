"""A run's ``summary.json`` headline, ``summary.md`` and the warnings written into the summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlrun.evaluation import stats
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.jobs import Prepared
from dlrun.reporting import fmt_value as _fmt
from dlrun.spec.schema import Spec

if TYPE_CHECKING:
    pass


def divergence_warning(spec: Spec, history: pd.DataFrame) -> str | None:
    """A warning when the training loss exploded but stayed finite (a NaN loss fails the run instead).

    The loss of some model grew more than 100-fold over its first epoch's value (and above 10):
    the scores are then no better than chance, and the usual cause is the learning rate.

    Args:
        spec: The run's spec (for the learning rate it names).
        history: Long format with ``repeat``, ``fold``, ``epoch`` and ``loss`` columns.
    """
    if "loss" not in history or history.empty:
        return None
    bad, worst = 0, 0.0
    first_seen = 0.0
    for _, h in history.groupby(["repeat", "fold"], sort=False):
        loss = h["loss"].to_numpy(dtype=float)
        loss = loss[np.isfinite(loss)]
        if len(loss) < 2:
            continue
        top = float(loss.max())
        if top > 10 and top > 100 * max(float(loss[0]), 1e-12):
            bad += 1
            if top > worst:
                worst, first_seen = top, float(loss[0])
    if not bad:
        return None
    name, args = spec.compile.optimizer_entry
    lr = args.get("learning_rate", "the default")
    models = f"{bad} of {history.groupby(['repeat', 'fold']).ngroups} models" if "fold" in history else "the model"
    return (
        f"the training loss exploded in {models} (from {first_seen:.3g} to {worst:.3g}) with {name} learning_rate "
        f"{lr}: the scores are unreliable; lower compile.optimizer's learning_rate or add clipnorm"
    )


def add_divergence_warning(prep: Prepared, summary: dict[str, Any], history: pd.DataFrame) -> None:
    warning = divergence_warning(prep.spec, history)
    if warning:
        summary.setdefault("warnings", []).append(warning)
        if isinstance(summary.get("headline"), dict):
            summary["headline"]["text"] = f"{summary['headline']['text']} (WARNING: the loss exploded; see warnings)"


def headline(block: dict[str, Any], metric: str) -> dict[str, Any]:
    """The summary's ``headline``: the main metric's most defensible estimate, its interval and what it is.

    Args:
        block: The main metric's :func:`dlrun.evaluation.stats.summarize_metric` dict.
        metric: The main metric's name.

    Returns:
        ``metric``, ``estimate`` (the block key), ``text``, ``mean``, ``ci_low``, ``ci_high``,
        ``halfwidth`` (the larger distance from the mean to an end: the interval can be
        asymmetric on a bounded scale), ``se``, ``confidence``, ``interval`` (what the interval
        is) and ``informative`` (False below 3 degrees of freedom).
    """
    d = headline_block(block)
    lo, hi = stats.interval_of(d)
    mean = d.get("mean")
    half = max(mean - lo, hi - mean) if mean is not None and lo is not None and hi is not None else None
    return {
        "metric": metric,
        "estimate": block["headline"],
        "text": block["headline_text"],
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
        "halfwidth": half,
        "se": d.get("se"),
        "confidence": d.get("confidence"),
        "interval": d.get("label"),
        "informative": bool(d.get("informative")),
    }


def positive_class(prep: Prepared) -> Any:
    if prep.task == "binary" and prep.classes is not None and len(prep.classes) > 1:
        return prep.classes[1].item() if hasattr(prep.classes[1], "item") else prep.classes[1]
    return None


def summary_markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: a readable table of every metric's statistics and the baseline.

    Each row names what its interval is (a calibrated confidence interval, the naive fold
    interval that ignores fold dependence, or the precision of the CV estimate), and the
    std and se columns say what they are the spread of.
    """
    conf = int(round(summary.get("confidence", 0.95) * 100))
    lines = [f"# {summary['name']} — {summary['mode']}", ""]
    if "headline" in summary:
        lines += [f"**{summary['headline']['text']}**", ""]
        adaptive = summary.get("adaptive")
        if adaptive:
            lines += [f"Repeats: {adaptive['text']}", ""]
    if summary["command"] == "cv":
        short = {
            "confidence_interval": f"{conf}% confidence interval",
            "naive_fold_interval": "naive, ignores fold dependence",
            "split_precision": "precision of the CV estimate",
            "seed_interval": f"{conf}% interval over seeds (one split)",
        }
        lines += [
            f"{summary['n_models']} models ({summary['repeats']} repeat(s) × {summary['folds']} fold(s)), "
            f"engine {summary['engine']}, task {summary['task']}.",
            "",
            "| metric | block | interval is | n | mean | std | se | low | high | min | max |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if not d:
                    continue
                lo, hi = stats.interval_of(d)
                what = short.get(str(d.get("kind")), est)
                if d.get("kind") and not d.get("informative", True) and lo is not None:
                    what += " (not informative: < 3 df)"
                lines.append(
                    f"| {m} | {est} | {what} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d.get('std'))} | "
                    f"{_fmt(d.get('se'))} | {_fmt(lo)} | {_fmt(hi)} | {_fmt(d.get('min'))} | {_fmt(d.get('max'))} |"
                )
        lines += [
            "",
            "- **std** is the sample standard deviation (ddof=1) of the block's values: the fold scores "
            "(corrected, folds) or the per-repeat means (repeats).",
            "- **se** of the *corrected* block is the corrected standard error √correction·std (its method "
            "line gives the factor), larger than std/√J because the folds share training rows and repeats "
            "re-test the same rows; in the other blocks se = std/√n.",
            "- Only the *corrected* block (k-fold modes) is a confidence interval for the score a model trained "
            "this way gets on new data; its coverage is checked by `benchmarks/calibration.py`. The *folds* "
            "interval treats folds as independent and is too narrow; the *repeats* interval is the precision of "
            "the cross-validation estimate for this dataset (how much it moves with another split).",
            "- Intervals of bounded metrics are built on a scale that keeps them inside the metric's range "
            "(the logit scale for scores in [0, 1], the log scale for errors; R² is capped at 1).",
        ]
        lines += ["", f"No-skill baseline: {summary['baseline']['model']} on the same folds.", ""]
        lines += [f"| metric | mean | {conf}% CI low | {conf}% CI high |", "|---|---|---|---|"]
        for m, block in summary["baseline"]["metrics"].items():
            d = headline_block(block)
            lo, hi = stats.interval_of(d)
            lines.append(f"| {m} | {_fmt(d['mean'])} | {_fmt(lo)} | {_fmt(hi)} |")
        lines += ["", "Methods:", ""]
        for m, block in summary["metrics"].items():
            for est in ("corrected", "repeats", "folds"):
                d = block.get(est)
                if d:
                    label = f" — {d['label']}" if d.get("label") else ""
                    lines.append(f"- {m} ({est}{label}): {d['method']}")
    else:
        lines += ["| metric | held-out | training | baseline |", "|---|---|---|---|"]
        for m, v in summary["metrics"].items():
            lines.append(
                f"| {m} | {_fmt(v)} | {_fmt(summary['train_metrics'].get(m))} | "
                f"{_fmt(summary['baseline']['metrics'].get(m))} |"
            )
        lines += ["", f"Held-out rows: {summary.get('n_test')}; baseline: {summary['baseline']['model']}."]
    return "\n".join(lines) + "\n"
