"""What every plot shares: the colour-blind-safe palette, the title and footnote conventions, and
checks of the data a plot is given.

Conventions shared by every plot:

- the title names the run and the metric; how the numbers were obtained goes in a short
  footnote under the axes (:func:`footnote`), not in the title;
- colours come from the Okabe–Ito palette, which stays distinguishable with the common forms
  of colour blindness, and every series also differs by line style or marker;
- epochs and repeats are counts, so their axes get integer ticks only.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlrun.errors import InputError

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.axes import Axes

#: Okabe & Ito (2008), "Color Universal Design": eight colours safe for colour-blind readers.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
TRAIN_COLOR = OKABE_ITO[0]
VAL_COLOR = OKABE_ITO[1]
TEST_COLOR = OKABE_ITO[3]
ESTIMATE_COLOR = "#000000"
BASELINE_COLOR = OKABE_ITO[4]
FLAG_COLOR = OKABE_ITO[3]

_FOOTNOTE_WIDTH = 110


def _wrap(text: str, width: int = _FOOTNOTE_WIDTH) -> str:
    """Wrap a long method sentence into lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(text, width)) if text else text


def footnote(ax: Axes, text: str) -> None:
    """Write ``text`` in small grey type under the x label of ``ax``.

    The note starts at the left edge of the axes' grid cell (not of the axes, which long
    tick labels push right) and is wrapped to the cell's width, so it stays on the figure;
    vertically it hangs from the x label, so it never overlaps tick labels.
    """
    if not text:
        return
    fig = ax.get_figure(root=True)
    x0, width_in = 0.01, 6.4
    spec = ax.get_subplotspec()
    if fig is not None:
        width_in = float(fig.get_figwidth())
        if spec is not None:
            _, ncols, start, _ = spec.get_geometry()
            x0 = (start % ncols) / ncols + 0.01
            width_in /= ncols
    # about 16 characters of x-small type per inch; a margin for wide letters
    ax.annotate(
        _wrap(text, max(40, int(width_in * 15) - 6)),
        xy=(x0, 0.0),
        xycoords=("figure fraction", ax.xaxis.label),
        xytext=(0, -4),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize="x-small",
        color="0.3",
        gid="footnote",
    )


def title(ax: Axes, run_name: str, what: str) -> None:
    ax.set_title(f"{run_name}: {what}" if run_name else what, fontsize="medium", loc="left")


def clean_label(label: Any) -> str:
    """A class label as a reader wrote it: ``'-1'`` (quoted in the CSV) becomes ``-1``."""
    text = str(label)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def finite_1d(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Return the finite entries of a 1-D numeric input, shape ``(k,)``."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a sequence of numbers; got {values!r:.80}") from None
    return arr[np.isfinite(arr)]


def require_columns(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise InputError naming the missing columns of ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{name} must have columns {', '.join(columns)}; missing {', '.join(missing)} "
            f"(has {', '.join(map(str, df.columns))})"
        )


def interval_bounds(block: Mapping[str, Any]) -> tuple[Any, Any]:
    """A summary block's interval, whatever it is named (``ci_``, ``naive_``, ``precision_``).

    Unlike :func:`dlrun.evaluation.stats.interval_of`, a name whose bounds are None is skipped
    for the next one, so a block with ``ci_low: null`` beside a naive interval draws the naive one.
    """
    for prefix in ("ci", "naive", "precision"):
        if block.get(f"{prefix}_low") is not None:
            return block.get(f"{prefix}_low"), block.get(f"{prefix}_high")
    return None, None


def as_array(xs: Sequence[float | None]) -> npt.NDArray[np.float64]:
    """Numbers as a float array, None as NaN."""
    return np.array([math.nan if v is None else float(v) for v in xs], dtype=np.float64)
