"""A run's ``summary.json`` headline, ``summary.md`` and the warnings written into the summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlrun.evaluation import learning, stats
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.jobs import Prepared
from dlrun.protocol.splits import Fold
from dlrun.reporting import fmt_value as _fmt
from dlrun.spec.schema import Spec
from dlrun.spec.shapes import default_loss


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


def _model_targets(prep: Prepared, fold: Fold) -> tuple[np.ndarray, np.ndarray | None]:
    """The training targets as the fold's model saw them, and their weights from ``training.class_weight``.

    The same encoding as :meth:`~dlrun.data.preprocessing.Preprocessor.transform_y` fitted on the
    fold's training rows (class codes or one-hot rows; regression values after ``target.transform``).
    """
    spec = prep.spec
    y = prep.data.y.iloc[fold.train]
    if prep.classes is None:
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        values = y.to_numpy(dtype=np.float64)
        transform = spec.preprocessing.target.transform
        if transform == "log":
            values = np.log1p(values)
        elif transform in ("standard", "minmax"):
            values = (StandardScaler() if transform == "standard" else MinMaxScaler()).fit_transform(values)
        return values, None
    codes = np.searchsorted(prep.classes, y.iloc[:, 0].to_numpy())
    n = len(prep.classes)
    targets = np.eye(n)[codes] if spec.preprocessing.target.onehot else codes.reshape(-1, 1).astype(float)
    cw = spec.training.class_weight
    if cw is None:
        return targets, None
    if cw == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(codes)
        by_code = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=codes).tolist()))
    else:
        names = [str(c) for c in prep.classes]
        by_code = {
            names.index(str(k)) if str(k) in names else int(k): float(v)
            for k, v in cw.items()
            if str(k) in names or isinstance(k, int)
        }
    return targets, np.array([by_code.get(int(c), 1.0) for c in codes])


def _held_out_outputs(predictions: pd.DataFrame | None) -> dict[tuple[int, int], np.ndarray]:
    """Each fold's held-out probabilities (classification) or predicted values (regression)."""
    if predictions is None or predictions.empty:
        return {}
    cols = [c for c in predictions.columns if str(c).startswith("proba_")]
    if not cols:
        cols = [c for c in predictions.columns if str(c) == "pred" or str(c).startswith("pred_")]
        if not all(pd.api.types.is_numeric_dtype(predictions[c]) for c in cols):
            return {}
    if not cols:
        return {}
    frame = predictions if "fold" in predictions else predictions.assign(repeat=0, fold=0)
    return {_key(key): g[cols].to_numpy(dtype=np.float64) for key, g in frame.groupby(["repeat", "fold"])}


def _key(key: Any) -> tuple[int, int]:
    """``(repeat, fold)`` of a pandas group key."""
    return int(key[0]), int(key[1])


def learning_check(
    prep: Prepared,
    history: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
) -> dict[str, Any] | None:
    """The summary's ``learning`` block when a model (fold) did not learn, else None.

    Computed from what a run saves: each fold's last training ``loss`` in ``history``, the no-skill
    loss on the fold's training rows (from the data and the compiled loss), the held-out
    predictions and each fold's main metric and baseline in ``scores``.

    Args:
        prep: The prepared run (data, folds, spec).
        history: Long format with ``repeat``, ``fold``, ``epoch`` and ``loss`` columns.
        scores: One row per fold (``repeat``, ``fold``, the main metric and ``baseline_<metric>``).
        predictions: The held-out predictions with ``repeat`` and ``fold`` columns.
    """
    spec = prep.spec
    entry = spec.compile.loss_entry
    loss_name, loss_args = entry if entry else (default_loss(prep.task, spec.preprocessing.target.onehot), {})
    last: dict[tuple[int, int], float] = {}
    if "loss" in history and not history.empty:
        hist = history if "fold" in history else history.assign(repeat=0, fold=0)
        for key, h in hist.groupby(["repeat", "fold"], sort=False):
            ordered = h.sort_values("epoch") if "epoch" in h else h
            last[_key(key)] = float(ordered["loss"].iloc[-1])
    outputs = _held_out_outputs(predictions)
    metric = prep.main_metric
    by_key_scores: dict[tuple[int, int], dict[str, Any]] = {}
    if scores is not None and not scores.empty:
        by_key_scores = {
            _key((r["repeat"], r["fold"])): {str(k): v for k, v in r.items()} for r in scores.to_dict("records")
        }
    folds = [f for f in prep.folds if f.key in last or f.key in outputs or f.key in by_key_scores]
    if not folds:
        return None
    no_skill = []
    for fold in folds:
        targets, weights = _model_targets(prep, fold)
        no_skill.append(
            learning.no_skill_loss(
                loss_name,
                targets,
                weights,
                n_classes=len(prep.classes) if prep.classes is not None else None,
                label_smoothing=float(loss_args.get("label_smoothing", 0.0) or 0.0),
            )
        )
    found = learning.check_models(
        [f.key for f in folds],
        [last.get(f.key) for f in folds],
        no_skill,
        [outputs.get(f.key) for f in folds],
        [by_key_scores.get(f.key, {}).get(metric) for f in folds],
        [by_key_scores.get(f.key, {}).get(f"baseline_{metric}") for f in folds],
    )
    return learning.learning_block(found, len(folds), spec.compile.optimizer_entry, metric, spec.preprocessing.scaling)


def add_divergence_warning(
    prep: Prepared,
    summary: dict[str, Any],
    history: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
) -> None:
    """Add the warnings of models that did not learn or whose loss exploded to ``summary`` and its headline.

    A model that did not learn (see :func:`learning_check`) gets the summary's ``learning`` block,
    a line in ``warnings`` and a mark in the headline; a loss that exploded later in training but
    ended below the no-skill loss keeps the older warning.
    """
    block = learning_check(prep, history, scores, predictions)
    if block is not None and summary.get("command") == "train" and block["models"][0]["score"] is None:
        model = block["models"][0]
        model["score"] = (summary.get("metrics") or {}).get(block["metric"])
        model["baseline"] = ((summary.get("baseline") or {}).get("metrics") or {}).get(block["metric"])
    if block is not None:
        summary["learning"] = block
        warning = learning.learning_warning(block)
        mark: str = (
            "the model did not learn"
            if block["n_models"] == 1
            else f"{block['not_learned']} of {block['n_models']} models did not learn"
        )
    else:
        exploded = divergence_warning(prep.spec, history)
        warning, mark = exploded or "", "the loss exploded"
    if warning:
        summary.setdefault("warnings", []).append(warning)
        if isinstance(summary.get("headline"), dict):
            summary["headline"]["text"] = f"{summary['headline']['text']} (WARNING: {mark}; see warnings)"


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

    Each row names what its interval is (a confidence interval where the study covers the design, the naive fold
    interval that ignores fold dependence, or the precision of the CV estimate), and the
    std and se columns say what they are the spread of.
    """
    confidence = summary.get("confidence", 0.95)
    lines = [f"# {summary['name']} — {summary['mode']}", ""]
    if "headline" in summary:
        lines += [f"**{summary['headline']['text']}**", ""]
        adaptive = summary.get("adaptive")
        if adaptive:
            lines += [f"Repeats: {adaptive['text']}", ""]
    if summary["command"] == "cv":
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
                what = stats.interval_short_name(d.get("kind"), confidence) if d.get("kind") else est
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
            "- The *corrected* block (k-fold modes) is an interval for the expected score of this procedure over "
            "training sets of this size; it is called a confidence interval only at a design the calibration "
            "study covers (5-fold, 10-fold, 5×10-fold), elsewhere a corrected interval, not calibrated at this "
            "design. The *folds* "
            "interval treats folds as independent and is too narrow; the *repeats* interval is the precision of "
            "the cross-validation estimate for this dataset (how much it moves with another split).",
            "- Intervals of bounded metrics are built on a scale that keeps them inside the metric's range "
            "(the logit scale for scores in [0, 1], the log scale for errors; R² is capped at 1).",
        ]
        lines += ["", f"No-skill baseline: {summary['baseline']['model']} on the same folds.", ""]
        title = stats.interval_column_title(
            [headline_block(b).get("kind") for b in summary["baseline"]["metrics"].values()], confidence
        )
        lines += [f"| metric | mean | {title} low | {title} high |", "|---|---|---|---|"]
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
    warnings = summary.get("warnings") or []
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    block = summary.get("learning")
    if block:
        lines += ["", "## Models that did not learn", "", f"Rule: {block['method']}.", ""]
        m = block["metric"]
        lines += [f"| repeat | fold | final training loss | no-skill loss | constant predictions | {m} | baseline |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for d in block["models"]:
            lines.append(
                f"| {d['repeat']} | {d['fold']} | {_fmt(d['final_loss'])} | {_fmt(d['no_skill_loss'])} | "
                f"{'yes' if d['constant_predictions'] else 'no'} | {_fmt(d['score'])} | {_fmt(d['baseline'])} |"
            )
        lines += ["", f"Likely cause: {block['cause']}."]
    return "\n".join(lines) + "\n"
