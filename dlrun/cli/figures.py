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
    rows, note = plots.difference_rows(result)
    if rows:
        if not result.forest.empty:
            note = (
                "Each run's paired difference to the best (intervals not adjusted); "
                "adjusted p-values are in the console table."
            )
        plots.compare_differences(ax, rows, result.metric, confidence=result.confidence, note=note)
    else:
        plots.compare_estimates(ax, result, list(t["label"]))
    save_figure(fig, path)
