"""The pieces of a report page (dlrun.report.parts): intervals, embedded JSON, figures in reading order, units."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlrun.errors import InputError
from dlrun.report import parts
from dlrun.reporting import fmt_value


@pytest.mark.parametrize(
    ("lo", "hi", "text"),
    [
        (0.73061, 0.9, "0.7306 to 0.9000"),
        (None, 0.9, "\u2013"),
        (0.1, math.nan, "\u2013"),
        (-math.inf, 0.2, "\u2013"),
    ],
)
def test_interval_text(lo: Any, hi: Any, text: str) -> None:
    assert parts.interval_text(lo, hi) == text


def test_table_cells_use_the_one_cell_formatter() -> None:
    df = pd.DataFrame({"a": [0.123456, None], "b": ["x", "y"]})
    table = parts.table_data(df, max_rows=1)
    assert table is not None
    assert table["columns"] == ["a", "b"] and table["truncated"] == 1
    assert table["rows"] == [[fmt_value(0.123456), "x"]]
    assert parts.table_data(pd.DataFrame()) is None


def test_embedded_json_is_strict_and_cannot_end_its_script() -> None:
    text = str(parts.script_json({"x": np.float64("nan"), "y": "</script><b>", "z": np.int64(3)}))
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"x": None, "y": "</script><b>", "z": 3}


def test_figures_come_in_reading_order_with_captions(tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    for name in ("qq_accuracy", "zzz_other", "learning_curve_loss", "scores_accuracy"):
        (plots / f"{name}.png").write_bytes(b"\x89PNG")
    figures = parts.folder_figures(tmp_path)
    assert [f["name"] for f in figures] == ["learning_curve_loss", "scores_accuracy", "qq_accuracy", "zzz_other"]
    assert "overfitting" in figures[0]["caption"] and figures[-1]["caption"] == ""
    assert figures[0]["src"].startswith("data:image/png;base64,")
    assert parts.folder_figures(tmp_path / "missing") == []


def test_curve_units_name_a_transformed_target() -> None:
    config = "data: {target: quality}\npreprocessing: {target: {transform: minmax}}\n"
    assert parts.curve_units(config, "regression") == "min-max-scaled quality"
    assert parts.curve_units("not: [valid", "regression") == ""
    assert parts.curve_units(config.replace("minmax", "none"), "regression") == ""


def test_unreadable_json_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "summary.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="readable JSON"):
        parts.read_json(bad)
