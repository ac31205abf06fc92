"""Tests of dlrun.spec.models: cross-field checks of a section report at the field, with its dotted path."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import tiny_spec
from pydantic import ValidationError

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.errors import SpecError
from dlrun.spec.models import EvaluationSpec, FieldProblem
from dlrun.spec.validation import validate


@pytest.mark.parametrize(
    ("data", "evaluation", "path", "text"),
    [
        pytest.param(None, {"mode": "repeated_kfold", "repeats": 0}, "evaluation.repeats", "positive integer", id="0"),
        pytest.param(None, {"mode": "kfold", "repeats": 3}, "evaluation.repeats", "'repeated_kfold'", id="kfold"),
        pytest.param(None, {"mode": "split", "repeats": 2}, "evaluation.repeats", "'repeated_split'", id="split"),
        pytest.param(None, {"mode": "split", "repeats": "auto"}, "evaluation.repeats", "auto needs mode", id="auto"),
        pytest.param(
            None, {"mode": "kfold", "repeats": "auto"}, "evaluation.repeats", "needs target_halfwidth", id="halfwidth"
        ),
        pytest.param(
            None, {"mode": "validation_split"}, "evaluation.validation_split", "must be > 0", id="validation-split"
        ),
        pytest.param(
            None, {"mode": "kfold", "test_rows": "source"}, "evaluation.test_rows", "needs mode split", id="rows-mode"
        ),
        pytest.param(
            {"source": "sklearn:iris"},
            {"test_rows": "source"},
            "evaluation.test_rows",
            "own test rows",
            id="rows-source",
        ),
    ],
)
def test_cross_field_problems_name_the_field(
    data: dict[str, Any] | None, evaluation: dict[str, Any], path: str, text: str
) -> None:
    raw = tiny_spec("binary", evaluation=evaluation, **({"data": data} if data else {}))
    with pytest.raises(SpecError) as info:
        validate(raw)
    problems = dict(info.value.problems)
    assert path in problems, info.value.problems
    assert text in problems[path]
    assert "evaluation" not in problems and "" not in problems, "reported at the section, not the field"
    assert f"{path}: " in str(info.value)


def test_field_problem_reads_as_field_and_message() -> None:
    problem = FieldProblem("repeats", "must be a positive integer or 'auto', got 0")
    assert str(problem) == "repeats: must be a positive integer or 'auto', got 0"
    with pytest.raises(ValidationError, match="repeats: must be a positive integer"):
        EvaluationSpec(mode="repeated_kfold", repeats=0)


@pytest.mark.parametrize("mode", [*TRAIN_MODES, *CV_MODES])
def test_every_mode_validates_and_is_cv_matches(mode: str) -> None:
    evaluation: dict[str, Any] = {"mode": mode}
    if mode == "validation_split":
        evaluation["validation_split"] = 0.25
    if mode.startswith("repeated"):
        evaluation["repeats"] = 3
    spec = validate(tiny_spec("binary", evaluation=evaluation))
    assert spec.is_cv == (mode in CV_MODES)


@pytest.mark.parametrize("mode", ["repeated_kfold", "repeated_split"])
def test_repeated_modes_accept_repeats(mode: str) -> None:
    spec = validate(tiny_spec("binary", evaluation={"mode": mode, "repeats": 4}))
    assert spec.evaluation.repeats == 4


def test_tracking_section_validates_and_stays_out_of_the_fingerprint() -> None:
    from dlrun.spec.validation import resolved_dict
    from dlrun.store.fingerprint import spec_fields

    raw = tiny_spec(tracking={"mlflow": {"tracking_uri": "sqlite:///m.db", "experiment": "night"}})
    spec = validate(raw)
    assert spec.tracking is not None and spec.tracking.mlflow is not None
    assert spec.tracking.mlflow.experiment == "night"
    assert not any(k.startswith("tracking") for k in spec_fields(resolved_dict(spec)))


@pytest.mark.parametrize(
    ("tracking", "path"),
    [({"mlfow": {}}, "tracking.mlfow"), ({"mlflow": {"uri": "x"}}, "tracking.mlflow.uri")],
)
def test_tracking_typos_name_the_field(tracking: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        validate(tiny_spec(tracking=tracking))
    assert path in str(info.value)
