"""What a search shows in ``optuna-dashboard``: study and trial user attributes.

A search's study lives in ``optuna.journal`` (Optuna's ``JournalStorage`` on a
``JournalFileBackend``), which ``optuna-dashboard SEARCH_DIR/optuna.journal`` opens as it is, also
while the search runs. The values and states are Optuna's own; these attributes add what only
dlrun knows: each trial's run folder and the interval of its estimate (the dashboard shows the
value alone), and, on the study, the folder, metric and command of the search.

Nothing here opens the journal: the search sets these on the study and trials it holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dlrun.evaluation.summary import headline_block


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def trial_attrs(trial_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """A trial's run folder, and its main metric's estimate and interval, as JSON-ready user attributes.

    Args:
        trial_dir: The trial's run folder (``trials/trial_0003``).
        summary: The trial's ``summary.json`` content.
    """
    metric = str(summary.get("main_metric", ""))
    attrs: dict[str, Any] = {"run_folder": str(Path(trial_dir).resolve()), "metric": metric}
    block = (summary.get("metrics") or {}).get(metric)
    if isinstance(block, dict):
        d = headline_block(block)
        attrs["estimate"] = str(block.get("headline", ""))
        for key in ("mean", "ci_low", "ci_high", "se"):
            value = _number(d.get(key))
            if value is not None:
                attrs[f"{metric}_{key}"] = value
        attrs["confidence"] = _number(summary.get("confidence"))
    headline = summary.get("headline")
    if isinstance(headline, dict) and headline.get("text"):
        attrs["headline"] = str(headline["text"])
    return {k: v for k, v in attrs.items() if v is not None}


def study_attrs(search_dir: Path, name: str, metric: str, command: list[str] | None = None) -> dict[str, Any]:
    """The search folder, its name, its metric and the command that ran it, as study user attributes."""
    attrs: dict[str, Any] = {"search_folder": str(Path(search_dir).resolve()), "name": name, "metric": metric}
    if command:
        attrs["command"] = " ".join(command)
    return attrs


def set_trial_attrs(trial: Any, trial_dir: Path, summary: dict[str, Any]) -> None:
    """Set :func:`trial_attrs` on an Optuna trial still open (an ``optuna.Trial`` from ``study.ask``)."""
    for key, value in trial_attrs(trial_dir, summary).items():
        trial.set_user_attr(key, value)


def set_study_attrs(study: Any, search_dir: Path, name: str, metric: str, command: list[str] | None = None) -> None:
    """Set :func:`study_attrs` on an Optuna study (idempotent: a resumed search sets the same values)."""
    for key, value in study_attrs(search_dir, name, metric, command).items():
        study.set_user_attr(key, value)


def best_so_far(study: Any, metric: str) -> str:
    """``trial 3, accuracy 0.8610 [0.8300, 0.8900]``: the best finished trial for a progress line, or ``""``.

    The interval is the one :func:`set_trial_attrs` recorded on the trial, when it did.
    """
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    if not finished:
        return ""
    best = study.best_trial
    lo, hi = best.user_attrs.get(f"{metric}_ci_low"), best.user_attrs.get(f"{metric}_ci_high")
    interval = f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
    return f"trial {best.number}, {metric} {best.value:.4f}{interval}"
