"""The one table of metrics: which direction is better and the scale an interval of each is built on."""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    """What the statistics need to know about a metric.

    Attributes:
        higher_is_better: Whether a larger score is better.
        scale: The scale its interval is built on (see :data:`METRIC_SCALES`).
    """

    higher_is_better: bool
    scale: str


#: Every metric dlrun scores. Scores in [0, 1] take the logit scale (delta method, mapped back:
#: asymmetric near a bound, where a bounded score's sampling distribution is skewed), errors ≥ 0
#: the log scale. R² (≤ 1, unbounded below) keeps the plain interval capped at 1 (``cap1``): on the
#: log(1 − R²) scale, whose interval is short on the upper side, it covered the truth less often in
#: benchmarks/calibration.py.
METRICS: dict[str, Metric] = {
    "accuracy": Metric(True, "logit"),
    "balanced_accuracy": Metric(True, "logit"),
    "roc_auc": Metric(True, "logit"),
    "f1": Metric(True, "logit"),
    "precision": Metric(True, "logit"),
    "recall": Metric(True, "logit"),
    "log_loss": Metric(False, "log"),
    "mae": Metric(False, "log"),
    "mse": Metric(False, "log"),
    "rmse": Metric(False, "log"),
    "r2": Metric(True, "cap1"),
}

#: Whether a larger score is better, per metric (from :data:`METRICS`).
HIGHER_IS_BETTER: dict[str, bool] = {name: m.higher_is_better for name, m in METRICS.items()}

#: The scale each metric's interval is built on (from :data:`METRICS`); ``clip01`` (the plain
#: interval clipped to [0, 1]) and ``log1m`` remain available to ``bounded_interval``.
METRIC_SCALES: dict[str, str] = {name: m.scale for name, m in METRICS.items()}


def metric_scale(metric: str | None) -> str:
    """The scale an interval of ``metric`` is built on (``identity`` for unknown metrics)."""
    return METRIC_SCALES.get(str(metric), "identity") if metric is not None else "identity"


def higher_is_better(metric: str | None) -> bool:
    """Whether a larger ``metric`` is better (True for unknown metrics)."""
    return HIGHER_IS_BETTER.get(str(metric), True)
