"""The experiment spec's public names, kept at their first home for the modules that import them here.

The spec lives in :mod:`dlrun.spec.models` (the pydantic sections), :mod:`dlrun.spec.keras_checks`
(Keras names and arguments), :mod:`dlrun.spec.yaml_io` (reading YAML, ``--set`` overrides) and
:mod:`dlrun.spec.validation` (every problem at once, with its dotted path).
"""

from __future__ import annotations

from dlrun.spec.keras_checks import CLASSIFICATION_LOSSES, SPARSE_LOSSES
from dlrun.spec.models import (
    CLASSIFICATION_METRICS,
    KERAS_DATASETS,
    NAMED_DATASETS,
    REGRESSION_METRICS,
    SKLEARN_DATASETS,
    SYNTHETIC,
    CompileSpec,
    CsvOptions,
    DataSpec,
    EvaluationSpec,
    ImageSpec,
    Mode,
    ModelSpec,
    OuterSpec,
    PreprocessingSpec,
    RuntimeSpec,
    SearchSpec,
    Spec,
    SweepSpec,
    TargetSpec,
    Task,
    TrainingSpec,
)
from dlrun.spec.validation import json_schema, load_spec, resolved_dict, validate
from dlrun.spec.yaml_io import apply_overrides, load_yaml_text, parse_override, read_yaml

__all__ = [
    "CLASSIFICATION_LOSSES",
    "CLASSIFICATION_METRICS",
    "KERAS_DATASETS",
    "NAMED_DATASETS",
    "REGRESSION_METRICS",
    "SKLEARN_DATASETS",
    "SPARSE_LOSSES",
    "SYNTHETIC",
    "CompileSpec",
    "CsvOptions",
    "DataSpec",
    "EvaluationSpec",
    "ImageSpec",
    "Mode",
    "ModelSpec",
    "OuterSpec",
    "PreprocessingSpec",
    "RuntimeSpec",
    "SearchSpec",
    "Spec",
    "SweepSpec",
    "TargetSpec",
    "Task",
    "TrainingSpec",
    "apply_overrides",
    "json_schema",
    "load_spec",
    "load_yaml_text",
    "parse_override",
    "read_yaml",
    "resolved_dict",
    "validate",
]
