"""The figure ``dlrun compare --plot`` saves: each run's paired difference to the best, else the intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.report import plots
from dlrun.store.io import save_figure


def save_compare_plot(result: Any, path: Path) -> None:
    """Draw ``result`` (a comparison's details) and save it to ``path``."""
    from matplotlib.figure import Figure

    t = result.table
    # constrained layout: long run labels and the footnote stay on the figure
    fig = Figure(figsize=(8, 2.2 + 0.5 * len(t)), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if not result.forest.empty:
        f = result.forest
        plots.compare_forest(
            ax,
            [f"{lab} \u2212 {result.best}" for lab in f["label"]],
            list(f["diff"]),
            list(f["ci_low"]),
            list(f["ci_high"]),
            result.metric,
            paired=[bool(x) for x in f["paired"]],
            confidence=result.confidence,
            note="Each run's paired difference to the best; Holm-adjusted p-values are in the console table.",
        )
    elif len(result.pairwise) == 1 and result.pairwise[0]["test"]:
        pw = result.pairwise[0]
        plots.compare_forest(
            ax,
            [f"{pw['a']} \u2212 {pw['b']}"],
            [pw["test"]["mean_diff"]],
            [pw["test"]["ci_low"]],
            [pw["test"]["ci_high"]],
            result.metric,
            paired=[bool(pw["paired"])],
            confidence=result.confidence,
        )
    else:
        plots.compare_intervals(
            ax, list(t["label"]), list(t["mean"]), list(t["ci_low"]), list(t["ci_high"]), result.metric
        )
    save_figure(fig, path)
