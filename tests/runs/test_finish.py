"""`dlrun.runs.finish.Finisher`: runs finished by helper processes, errors raised, a stop signal honoured,
and a cv run's plot helper."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import tiny_spec

import dlrun
from dlrun.errors import Interrupted
from dlrun.runs import cv
from dlrun.runs.finish import Finisher
from dlrun.store import signals


def test_a_helper_error_is_raised_when_waiting() -> None:
    with pytest.raises(ValueError, match="invalid literal"), Finisher(workers=1) as helpers:
        helpers.submit(int, "not a number")


def test_a_stop_signal_while_waiting_cancels_what_has_not_started() -> None:
    helpers = Finisher(workers=1)
    for _ in range(24):
        helpers.submit(time.sleep, 0.5)  # 12 s in all if nothing were cancelled
    signals._handler(signal.SIGTERM, None)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted), helpers:
            pass
    finally:
        signals.reset_stop()
    # the helper's start, the job it is running and the one queued for it: the rest never ran
    assert time.monotonic() - t0 < 8.0


def test_a_cv_run_with_a_plot_helper_writes_what_a_run_without_one_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[str] = []

    class Recording(Finisher):
        def submit(self, fn: Any, *args: Any) -> None:
            submitted.append(fn.__name__)
            super().submit(fn, *args)

    monkeypatch.setattr(cv, "Finisher", Recording)
    monkeypatch.setattr(cv, "PLOT_HELPER_MIN_EPOCHS", 1)
    raw = tiny_spec(epochs=2, evaluation={"mode": "repeated_kfold", "folds": 3, "repeats": 2})
    with_helper = dlrun.run(raw, out=tmp_path / "helper", command="cv")
    assert submitted == ["helper_warm", "draw_history"]
    monkeypatch.setattr(cv, "PLOT_HELPER_MIN_EPOCHS", 10**9)
    alone = dlrun.run(raw, out=tmp_path / "alone", command="cv")
    assert submitted == ["helper_warm", "draw_history"]  # no helper below the threshold

    def files(run: Path) -> set[str]:
        return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}

    assert files(with_helper.path) == files(alone.path)
    assert {"plots/learning_curve_loss.png", "plots/confusion_matrix.png", "report.html"} <= files(alone.path)
    for name in ("history.csv", "scores.csv", "predictions.csv"):
        a = pd.read_csv(with_helper.path / name).drop(columns=["seconds"], errors="ignore")
        b = pd.read_csv(alone.path / name).drop(columns=["seconds"], errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    page = (with_helper.path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(list((with_helper.path / "plots").glob("*.png")))
    assert json.loads((with_helper.path / "state.json").read_text())["status"] == "finished"
