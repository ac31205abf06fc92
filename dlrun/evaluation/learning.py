"""Did a model learn? Its final training loss against the no-skill predictor's, and its held-out outputs.

A model whose weights blow up inside its first epoch need not show a NaN loss: with Keras on JAX
the clipped cross-entropy saturates at a finite value (about 5.9 on a balanced binary task) and the
model predicts one class for every row, so a check of the loss curve's *shape* sees nothing. What
such a model *does* is plain, though:

- its final training loss is not below the loss of the no-skill predictor on the same training
  rows (the best constant prediction under the compiled loss: the class priors for a
  cross-entropy, the mean for MSE, the median for MAE), or
- its held-out predictions (class probabilities or values) are the same for every row.

Everything here works on plain arrays (:func:`no_skill_loss`, :func:`check_models`), so every
command that trains models can call it; :func:`learning_block` and :func:`learning_warning` turn
the findings into the summary's ``learning`` block and its one-line warning, naming the folds,
their scores against the no-skill baseline and the spec path to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# The loss of a model that learned nothing is at the no-skill loss; the loss Keras reports for an
# epoch is the mean over that epoch's batches (with dropout and weight penalties included), so it
# sits a little above what the final weights achieve. A model is flagged only when its last epoch
# is not below the no-skill loss by at least this fraction: one that is stuck at the priors lands
# within it, a healthy one is below it (the healthy models of the shipped configs, run with a few
# epochs: at most 0.97 of it, most under 0.85).
MARGIN = 0.01
# A loss this many times the no-skill loss means the weights blew up (saturated outputs), not that
# the model merely failed to move: the learning rate is then the likely cause.
BLOWUP = 2.0
# Held-out outputs that differ by no more than this (relative to their size) are one constant.
CONSTANT_RTOL = 1e-6
_EPS = 1e-7  # Keras' clipping of probabilities inside its cross-entropies

_LOSS_FAMILY = {
    "binarycrossentropy": "binary_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "mse": "mse",
    "meansquarederror": "mse",
    "mae": "mae",
    "meanabsoluteerror": "mae",
}


def loss_family(name: str) -> str | None:
    """The loss :func:`no_skill_loss` knows a name by (Keras' function or class spelling), or None."""
    return _LOSS_FAMILY.get(name.replace("_", "").lower())


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(-(p * np.log(q)).sum(axis=axis))


def no_skill_loss(
    loss: str,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    n_classes: int | None = None,
    label_smoothing: float = 0.0,
) -> float | None:
    """The compiled loss of the best constant prediction on these training targets.

    Keras averages ``sample_weight * loss`` over the rows (``sum_over_batch_size``), so with
    weights the best constant is the weighted prior, mean or median and the value is scaled by the
    mean weight.

    Args:
        loss: The compiled loss (Keras name, e.g. ``binary_crossentropy`` or ``MeanSquaredError``).
        y: The targets the model was trained on, as the model sees them: 0/1 columns for binary
            cross-entropy, one-hot rows for categorical, integer codes for sparse categorical,
            transformed values for regression; shape ``(n,)`` or ``(n, k)``.
        sample_weight: Per-row weights (e.g. from ``training.class_weight``), shape ``(n,)``.
        n_classes: The number of classes, for sparse codes (default: the largest code + 1).
        label_smoothing: The cross-entropy's ``label_smoothing``.

    Returns:
        The loss, or None for a loss this module does not know (the loss test is then skipped).
    """
    family = loss_family(loss)
    y = np.asarray(y, dtype=np.float64)
    if family is None or len(y) == 0:
        return None
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    scale = float(w.mean())
    if scale <= 0:
        return None
    wn = w / w.sum()
    if family == "sparse_categorical_crossentropy":
        codes = y.reshape(-1).astype(int)
        y = np.eye(n_classes or int(codes.max()) + 1)[codes]
        family = "categorical_crossentropy"
    y2 = y.reshape(len(y), -1)
    if family == "binary_crossentropy":
        y2 = y2 * (1 - label_smoothing) + 0.5 * label_smoothing
        p = wn @ y2  # the best constant probability of each output
        per_output = _entropy(np.stack([p, 1 - p]), axis=0)
        return scale * float(per_output.mean())
    if family == "categorical_crossentropy":
        y2 = y2 * (1 - label_smoothing) + label_smoothing / y2.shape[1]
        return scale * float(_entropy(wn @ y2))
    if family == "mse":
        centre = wn @ y2
        return scale * float((wn @ (y2 - centre) ** 2).mean())
    medians = np.array([_weighted_median(col, wn) for col in y2.T])
    return scale * float((wn @ np.abs(y2 - medians)).mean())


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def constant_outputs(outputs: np.ndarray | None) -> bool:
    """True when every held-out row got the same prediction (probabilities or values); False for < 2 rows."""
    if outputs is None:
        return False
    a = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if len(a) < 2 or not np.isfinite(a).all():
        return False
    size = max(float(np.abs(a).max()), 1e-12)
    return bool((np.ptp(a, axis=0) <= CONSTANT_RTOL * size).all())


@dataclass(frozen=True)
class ModelCheck:
    """One model (fold) that did not learn.

    Attributes:
        repeat: Its repeat.
        fold: Its fold.
        final_loss: Its last epoch's training loss (None when not recorded).
        no_skill_loss: The no-skill predictor's loss on its training rows (None for an unknown loss).
        constant_predictions: Its held-out predictions are one constant.
        score: Its held-out main metric (None without held-out rows).
        baseline: The no-skill baseline's held-out main metric on the same fold.
    """

    repeat: int
    fold: int
    final_loss: float | None
    no_skill_loss: float | None
    constant_predictions: bool
    score: float | None = None
    baseline: float | None = None

    @property
    def blew_up(self) -> bool:
        """The loss saturated far above the no-skill loss: the weights blew up."""
        loss, no_skill = self.final_loss, self.no_skill_loss
        return loss is not None and no_skill is not None and loss > BLOWUP * no_skill


def did_not_learn(final_loss: float | None, no_skill: float | None, constant: bool) -> bool:
    """The rule: the final loss is not below the no-skill loss (within :data:`MARGIN`), or constant outputs."""
    if constant:
        return True
    if final_loss is None or no_skill is None or not np.isfinite(final_loss) or not np.isfinite(no_skill):
        return False
    return bool(final_loss >= (1 - MARGIN) * no_skill)


def check_models(
    keys: list[tuple[int, int]],
    final_loss: list[float | None],
    no_skill: list[float | None],
    held_out: list[np.ndarray | None],
    score: list[float | None] | None = None,
    baseline: list[float | None] | None = None,
) -> list[ModelCheck]:
    """The models that did not learn, in the order given.

    Args:
        keys: ``(repeat, fold)`` of each model.
        final_loss: Each model's last training loss (None when not recorded).
        no_skill: The no-skill loss on each model's training rows (None when unknown).
        held_out: Each model's held-out predictions, ``(n_test, k)`` probabilities or values (None
            without held-out rows).
        score: Each model's held-out main metric, for the report.
        baseline: The no-skill baseline's held-out main metric on each fold, for the report.
    """
    n = len(keys)
    score = score if score is not None else [None] * n
    baseline = baseline if baseline is not None else [None] * n
    out = []
    for (r, f), loss, ns, pred, s, b in zip(keys, final_loss, no_skill, held_out, score, baseline):
        constant = constant_outputs(pred)
        if did_not_learn(loss, ns, constant):
            out.append(ModelCheck(int(r), int(f), _num(loss), _num(ns), constant, _num(s), _num(b)))
    return out


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def likely_cause(
    found: list[ModelCheck], optimizer: tuple[str, dict[str, Any]], scaling: str | None = None
) -> tuple[str, str]:
    """``(likely cause, spec path to change)`` for the models that did not learn.

    Args:
        found: The models that did not learn.
        optimizer: ``(name, args)`` of ``compile.optimizer``.
        scaling: ``preprocessing.scaling``; unscaled features saturate a model's units from its
            first step as a too-high learning rate does, so ``none`` is named as a second cause.
    """
    name, args = optimizer
    path = f"compile.optimizer.{name}.learning_rate"
    lr = args.get("learning_rate", "the default")
    unscaled = " or set preprocessing.scaling: standard (the features are not scaled)" if scaling == "none" else ""
    if any(m.blew_up for m in found):
        return (
            f"the outputs saturated (the loss sits far above the no-skill loss): the learning rate ({lr}) is "
            f"too high; lower {path} or add compile.optimizer.{name}.clipnorm{unscaled}",
            path,
        )
    return (
        f"the model stayed at the no-skill predictor: too few epochs (training.epochs), or a learning rate ({lr}) "
        f"too low, or so high that the units died; change {path} or training.epochs{unscaled}",
        path,
    )


def learning_block(
    found: list[ModelCheck],
    n_models: int,
    optimizer: tuple[str, dict[str, Any]],
    metric: str,
    scaling: str | None = None,
) -> dict[str, Any] | None:
    """The summary's ``learning`` block (None when every model learned); arguments as :func:`likely_cause`."""
    if not found:
        return None
    cause, path = likely_cause(found, optimizer, scaling)
    return {
        "method": (
            "a model did not learn when its final training loss is not below (1 - "
            f"{MARGIN:g}) × the no-skill predictor's loss on its training rows (class priors, mean or median "
            "under the compiled loss), or its held-out predictions are constant"
        ),
        "n_models": n_models,
        "not_learned": len(found),
        "metric": metric,
        "models": [asdict(m) for m in found],
        "cause": cause,
        "spec_path": path,
    }


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _span(values: list[float]) -> str:
    lo, hi = _f(min(values)), _f(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


def learning_warning(block: dict[str, Any]) -> str:
    """One line: how many models, which folds, their scores against the no-skill baseline, the likely cause."""
    models = block["models"]
    n, total, metric = block["not_learned"], block["n_models"], block["metric"]
    one = total == 1
    where = "" if one else " (" + ", ".join(f"repeat {m['repeat']} fold {m['fold']}" for m in models[:6])
    where += "" if one else (f", … {len(models) - 6} more)" if len(models) > 6 else ")")
    losses = [m for m in models if m["final_loss"] is not None and m["no_skill_loss"] is not None]
    parts = []
    if losses:
        final = _span([m["final_loss"] for m in losses])
        parts.append(
            f"final training loss {final} vs {_span([m['no_skill_loss'] for m in losses])} for the no-skill predictor"
        )
    constant = sum(m["constant_predictions"] for m in models)
    if constant:
        parts.append("the same prediction for every held-out row" + ("" if one else f" in {constant}"))
    scored = [m for m in models if m["score"] is not None]
    if scored:
        s = float(np.mean([m["score"] for m in scored]))
        b = [m["baseline"] for m in scored if m["baseline"] is not None]
        vs = f" vs no-skill baseline {_f(float(np.mean(b)))}" if b else ""
        parts.append(f"held-out {metric} {_f(s)}{vs}" + (" (mean)" if len(scored) > 1 else ""))
    who = "the model did not learn" if one else f"{n} of {total} models did not learn{where}"
    return f"{who}: {'; '.join(parts)}; likely cause: {block['cause']}"


def learning_mark(summary: dict[str, Any]) -> str:
    """A short mark for a search's trial or a sweep's point from its ``summary.json`` ('' when it learned)."""
    block = summary.get("learning")
    if not block:
        return ""
    return f"did not learn ({block['not_learned']} of {block['n_models']} models)"
