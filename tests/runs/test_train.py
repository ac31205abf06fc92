"""runs.train: one model through its RunFolder, its outputs, and a finished run left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_spec

from dlrun.errors import InputError
from dlrun.reporting import NullReporter
from dlrun.runs.train import check_smoothing, run_train
from dlrun.spec.schema import validate
from dlrun.store import layout


class Notes(NullReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_a_train_run_writes_its_model_and_a_finished_one_is_left_alone(tmp_path: Path) -> None:
    spec = validate(tiny_spec(epochs=1))
    out = run_train(spec, tmp_path / "run")
    run = tmp_path / "run"
    assert out.engine == "sequential" and "held-out test rows" in out.summary["headline"]["text"]
    assert (run / layout.MODEL).exists() and (run / layout.PREPROCESSOR).exists()
    state = json.loads((run / layout.STATE).read_text())
    assert state["status"] == "finished" and state["engine"] == "sequential" and state["finished_models"] == 1
    assert not (run / layout.CHECKPOINT / layout.CHECKPOINT_STATE).exists()  # cleared once written
    mtime = (run / layout.MODEL).stat().st_mtime_ns
    notes = Notes()
    again = run_train(spec, run, notes)
    assert again.summary == out.summary and (run / layout.MODEL).stat().st_mtime_ns == mtime
    assert notes.lines == [f"{run}: finished earlier; nothing to resume"]


@pytest.mark.parametrize("smoothing", [-0.1, 1.0])
def test_smoothing_out_of_range_is_refused(smoothing: float) -> None:
    with pytest.raises(InputError, match="--smoothing must be in"):
        check_smoothing(smoothing)


def test_a_cv_mode_is_refused_before_any_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dlrun cv"):
        run_train(validate(tiny_spec(mode="kfold")), tmp_path / "run")
    assert not (tmp_path / "run").exists()
