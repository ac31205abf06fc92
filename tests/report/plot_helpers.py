"""What the plot tests share: a fresh Axes, its footnote and legend, and a tiny long history."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_ax() -> Axes:
    return Figure(layout="constrained").add_subplot()


def footnote_of(ax: Axes) -> str:
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "footnote"]
    assert len(notes) == 1, "every plot puts its method in one footnote"
    return notes[0].replace("\n", " ")


def legend_of(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def history(runs: int = 3, epochs: int = 5, held_out: bool = True) -> pd.DataFrame:
    rows = []
    for r in range(runs):
        for e in range(1, epochs + 1 - (r % 2)):  # uneven lengths, as with early stopping
            row = {"repeat": r, "fold": 0, "epoch": e, "loss": 1.0 / e + 0.01 * r, "val_loss": 1.2 / e}
            if held_out:
                row["test_loss"] = 1.3 / e + 0.1
            rows.append(row)
    return pd.DataFrame(rows)
