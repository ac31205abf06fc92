"""The sections of an experiment spec as pydantic models.

Each section forbids unknown keys and refuses a YAML boolean where a number is meant. A check
that involves several fields of a section raises :class:`FieldProblem`, naming the field the
problem is reported at, so every problem carries its full dotted path
(``evaluation.repeats``), never just the section's. Nothing here imports Keras.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dlrun.catalog import CV_MODES, SEARCH_SETTINGS
from dlrun.spec.dotted import suggest

Task = Literal["auto", "binary", "multiclass", "regression"]
Mode = Literal["split", "validation_split", "none", "kfold", "repeated_kfold", "repeated_split"]

NAMED_DATASETS = (
    "sonar",
    "pima",
    "wine-quality-red",
    "wine-quality-white",
    "mammography",
    "housing",
    "ionosphere",
    "iris",
)
SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits", "linnerud")
SYNTHETIC = ("make_regression", "make_classification")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")

CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "log_loss", "balanced_accuracy")
REGRESSION_METRICS = ("mae", "rmse", "mse", "r2")


class FieldProblem(ValueError):
    """A problem a section's cross-field check finds, reported at one of its fields.

    ``str()`` is ``"<field>: <message>"`` (what pydantic shows); :func:`dlrun.spec.validation.validate`
    reports ``message`` at the section's path plus ``field``.

    Args:
        field: Dotted path of the field below the section that raises, e.g. ``repeats``.
        message: What is wrong, e.g. ``must be a positive integer or 'auto', got 0``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field's type admits a boolean (``bool`` itself, ``Any``, or a union holding one)."""
    if annotation is bool or annotation is Any:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in args)
    return any(_accepts_bool(a) for a in args if typing.get_origin(annotation) not in (list, dict))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: Any) -> Any:
        # YAML reads yes/no/on/off as booleans, and pydantic would take True as 1 for `epochs: yes`
        if isinstance(v, bool):
            field = cls.model_fields.get(info.field_name)
            if field is not None and not _accepts_bool(field.annotation):
                raise ValueError(f"must not be a boolean (YAML reads yes/no/on/off as true/false), got {v!r}")
        return v


# ----------------------------------------------------------------------------- data
class CsvOptions(_Section):
    """How to read a CSV file (``pandas.read_csv`` arguments)."""

    header: int | Literal["infer"] | None = "infer"
    sep: str = ","
    names: list[str] | None = None
    na_values: list[str] | None = None


class DataSpec(_Section):
    """Where the rows come from and which column(s) to predict."""

    source: str
    target: int | str | list[int | str] | None = None
    drop: list[int | str] = Field(default_factory=list)
    task: Task = "auto"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    params: dict[str, Any] = Field(default_factory=dict)
    max_rows: int | None = Field(default=None, gt=0)

    @field_validator("source")
    @classmethod
    def _check_source(cls, v: str) -> str:
        if v in NAMED_DATASETS:
            return v
        if ":" in v and not re.match(r"^(https?|file)://", v) and not re.match(r"^[A-Za-z]:[\\/]", v):
            kind, _, name = v.partition(":")
            table = {"sklearn": SKLEARN_DATASETS, "keras": KERAS_DATASETS}
            if kind not in table:
                raise ValueError(f"must start with 'sklearn:' or 'keras:', got '{kind}:'{suggest(kind, list(table))}")
            if name not in table[kind]:
                raise ValueError(
                    f"must be one of {', '.join(kind + ':' + n for n in table[kind])}, got '{v}'"
                    f"{suggest(name, table[kind])}"
                )
            return v
        if v in SYNTHETIC:
            return v
        if re.match(r"^https?://", v) or v.lower().endswith((".csv", ".csv.gz", ".txt", ".data")) or "/" in v:
            return v
        choices = list(NAMED_DATASETS) + list(SYNTHETIC)
        raise ValueError(
            "must be a named dataset (" + ", ".join(NAMED_DATASETS) + "), a CSV path or URL, "
            "'sklearn:NAME', 'keras:NAME' or a generator (make_regression, make_classification); "
            f"got '{v}'{suggest(v, choices)}"
        )

    @property
    def kind(self) -> Literal["named", "sklearn", "keras", "synthetic", "csv"]:
        """Which loader reads this source."""
        if self.source in NAMED_DATASETS:
            return "named"
        if self.source in SYNTHETIC:
            return "synthetic"
        if self.source.startswith("sklearn:"):
            return "sklearn"
        if self.source.startswith("keras:"):
            return "keras"
        return "csv"


# ----------------------------------------------------------------------------- preprocessing
class ImageSpec(_Section):
    """Pixel scaling and shape for image data."""

    rescale: float | None = None
    flatten: bool = False
    reshape: list[int] | None = None


class TargetSpec(_Section):
    """How the target is encoded for training (and decoded for predictions)."""

    onehot: bool = False
    transform: Literal["none", "log", "standard", "minmax"] = "none"


class PreprocessingSpec(_Section):
    """Feature and target preprocessing; every step is fit on training rows only."""

    scaling: Literal["standard", "minmax", "robust", "power", "none"] = "standard"
    categorical: Literal["auto", "none"] | list[int | str] = "auto"
    impute: Literal["none", "mean", "median", "most_frequent"] = "none"
    image: ImageSpec = Field(default_factory=ImageSpec)
    target: TargetSpec = Field(default_factory=TargetSpec)


# ----------------------------------------------------------------------------- model
def entry_of(v: Any) -> tuple[str, dict[str, Any]] | str:
    """``(name, args)`` of a ``Name`` / ``{Name: {args}}`` entry, or a message saying what is wrong."""
    if isinstance(v, str):
        return v, {}
    if isinstance(v, dict) and len(v) == 1:
        name, args = next(iter(v.items()))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return f"the arguments of '{name}' must be a mapping, got {type(args).__name__}"
        return str(name), args
    if isinstance(v, dict):
        return f"must be a one-key mapping {{Name: {{args}}}}, got keys {', '.join(map(str, v))}"
    return f"must be a name or a one-key mapping {{Name: {{args}}}}, got {v!r}"


def _named_entry(v: Any, what: str) -> tuple[str, dict[str, Any]]:
    """Normalise ``"Name"`` or ``{"Name": {args}}`` to ``(name, args)``; ValueError if malformed."""
    got = entry_of(v)
    if isinstance(got, str):
        raise ValueError(f"a {what} entry {got}")
    return got[0], dict(got[1])


def _normalise_entries(v: Any, what: str) -> Any:
    """Turn each ``"Name"`` of a list into ``{Name: {}}``; malformed entries stay for the name checks to report."""
    if not isinstance(v, list):
        return v
    out: list[Any] = []
    for entry in v:
        try:
            name, args = _named_entry(entry, what)
        except ValueError:
            out.append(entry)
            continue
        out.append({name: args})
    return out


class ModelSpec(_Section):
    """The layer stack: an ordered list of ``{LayerClass: {constructor args}}``."""

    layers: list[dict[str, dict[str, Any]]] = Field(min_length=1)

    @field_validator("layers", mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        return _normalise_entries(v, "layer")

    @property
    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """``(class_name, args)`` of each layer, in order."""
        return [next(iter(e.items())) for e in self.layers]


class CompileSpec(_Section):
    """Optimizer, loss and training metrics; ``None`` picks a default by task."""

    optimizer: str | dict[str, dict[str, Any]] = "adam"
    loss: str | dict[str, dict[str, Any]] | None = None
    metrics: list[str] | None = None

    @field_validator("optimizer", "loss", mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            name, args = next(iter(v.items()))
            return {str(name): dict(args or {})}
        return v

    @property
    def optimizer_entry(self) -> tuple[str, dict[str, Any]]:
        """``(name, args)`` of the optimizer."""
        return _named_entry(self.optimizer, "optimizer")

    @property
    def loss_entry(self) -> tuple[str, dict[str, Any]] | None:
        """``(name, args)`` of the loss, or ``None`` for the task default."""
        return None if self.loss is None else _named_entry(self.loss, "loss")


class TrainingSpec(_Section):
    """``model.fit`` settings."""

    batch_size: int = Field(default=32, gt=0)
    epochs: int = Field(default=10, gt=0)
    shuffle: bool = True
    class_weight: Literal["balanced"] | dict[int | str, float] | None = None
    callbacks: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    verbose: int = Field(default=0, ge=0, le=2)
    steps_per_execution: int | Literal["auto"] = "auto"
    checkpoint_every: int = Field(default=25, gt=0)

    @field_validator("callbacks", mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        return _normalise_entries(v, "callback")

    @property
    def callback_entries(self) -> list[tuple[str, dict[str, Any]]]:
        """``(class_name, args)`` of each callback."""
        return [next(iter(e.items())) for e in self.callbacks]


class OuterSpec(_Section):
    """Nested cross-validation of a search: the outer split around the whole search (``dlrun search``)."""

    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=1, ge=1)


class EvaluationSpec(_Section):
    """How held-out scores are obtained."""

    mode: Mode = "split"
    test_size: float = Field(default=0.33, gt=0.0, lt=1.0)
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    stratify: bool | None = None
    folds: int = Field(default=10, ge=2)
    # "auto": add repeats in chunks until the headline interval's half-width is at most
    # target_halfwidth (main metric units) or max_repeats is reached (dlrun.runs.cv.run_cv).
    repeats: int | Literal["auto"] = 1
    target_halfwidth: float | None = Field(default=None, gt=0.0)
    max_repeats: int = Field(default=20, ge=1)
    shuffle: bool = True
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    metrics: list[str] | None = None
    # None: dlrun.protocol.splits.DEFAULT_SPLIT_SEED, fixed and independent of `seed`, so runs that
    # differ only in seed share their folds and compare pairs them.
    split_seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    outer: OuterSpec | None = None
    # "source": test on the data source's own test rows (Keras' official test sets), not a random split
    test_rows: Literal["split", "source"] = "split"

    @model_validator(mode="after")
    def _check_mode(self) -> EvaluationSpec:
        if self.test_rows == "source" and self.mode != "split":
            raise FieldProblem(
                "test_rows",
                "source needs mode split (train on the source's training rows, test on its test rows), "
                f"got mode '{self.mode}'",
            )
        if self.mode == "validation_split" and self.validation_split <= 0:
            raise FieldProblem(
                "validation_split",
                f"must be > 0 with mode 'validation_split' (e.g. 0.33), got {self.validation_split}",
            )
        if self.repeats == "auto":
            if self.mode not in ("kfold", "repeated_kfold", "repeated_split"):
                raise FieldProblem(
                    "repeats", f"auto needs mode kfold, repeated_kfold or repeated_split, got mode '{self.mode}'"
                )
            if self.target_halfwidth is None:
                raise FieldProblem(
                    "repeats",
                    "auto needs target_halfwidth (the headline interval's half-width to reach, "
                    "in the main metric's units, e.g. 0.02)",
                )
            return self
        if self.repeats < 1:
            raise FieldProblem("repeats", f"must be a positive integer or 'auto', got {self.repeats}")
        if self.mode in ("split", "validation_split", "none", "kfold") and self.repeats > 1:
            better = "repeated_kfold" if self.mode == "kfold" else "repeated_split"
            raise FieldProblem("repeats", f"{self.repeats} repeats need mode '{better}', got mode '{self.mode}'")
        return self


class RuntimeSpec(_Section):
    """Where and how training runs."""

    device: Literal["auto", "cpu", "gpu"] = "auto"
    backend: Literal["auto", "jax", "tensorflow"] = "auto"
    deterministic: bool = False
    mixed_precision: bool = False
    engine: Literal["auto", "stacked", "sequential"] = "auto"
    executor: Literal["local", "ray"] = "local"
    address: str | None = None
    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=2, ge=0)
    memory_budget_mb: float = Field(default=1024.0, gt=0)
    max_models_per_chunk: int | None = Field(default=None, gt=0)


class SweepSpec(_Section):
    """A grid of overrides: ``{dotted.path: [values]}``; every combination runs."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)


class SearchSpec(_Section):
    """``dlrun search``: distributions over dotted spec paths, and how the sampler runs.

    Entries whose key is a dotted path (``compile.optimizer.SGD.learning_rate: {type: float, ...}``)
    are the search space (kept in ``space``); their checks live in :mod:`dlrun.spec.search_space`.
    """

    space: dict[str, Any] = Field(default_factory=dict)
    trials: int = Field(default=20, gt=0)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    seed: int | None = None
    batch: int | None = Field(default=None, gt=0)
    racing: bool = False
    racing_stages: int = Field(default=2, ge=2)
    top: int = Field(default=10, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _collect_space(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {k: val for k, val in v.items() if k in SEARCH_SETTINGS or not _is_path(k)}
        space = out.get("space") or {}
        if isinstance(space, dict):
            space = {**space, **{k: val for k, val in v.items() if k not in SEARCH_SETTINGS and _is_path(k)}}
        out["space"] = space
        return out


def _is_path(key: Any) -> bool:
    return isinstance(key, str) and ("." in key or "[" in key)


class MlflowTrackingSpec(_Section):
    """Log each finished run into MLflow (needs ``pip install 'dlrun[mlflow]'``)."""

    tracking_uri: str | None = None  # None: MLflow's own default (MLFLOW_TRACKING_URI, else ./mlruns)
    experiment: str | None = None  # None: "dlrun"


class TrackingSpec(_Section):
    """Experiment trackers a finished run is logged into; they never change its results."""

    mlflow: MlflowTrackingSpec | None = None


class Spec(_Section):
    """A whole experiment."""

    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    output_dir: str = "outputs"
    data: DataSpec
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    model: ModelSpec
    compile: CompileSpec = Field(default_factory=CompileSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    sweep: SweepSpec | None = None
    search: SearchSpec | None = None
    tracking: TrackingSpec | None = None

    @property
    def is_cv(self) -> bool:
        """Whether the evaluation mode is one of the resampling modes of ``dlrun cv``."""
        return self.evaluation.mode in CV_MODES

    @model_validator(mode="after")
    def _check_test_rows(self) -> Spec:
        if self.evaluation.test_rows == "source" and self.data.kind != "keras":
            raise FieldProblem(
                "evaluation.test_rows",
                "source needs a data source with its own test rows (keras:mnist, keras:fashion_mnist, "
                f"keras:cifar10), got data.source '{self.data.source}'; use test_rows: split",
            )
        return self
