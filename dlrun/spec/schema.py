"""The experiment spec: YAML → pydantic models, validated in full before TensorFlow loads.

Every problem is collected and reported at once with its dotted path
(``model.layers[2].Dense.units``), what was expected, what was given, and the
nearest valid name for a typo. Nothing in this module imports TensorFlow or Keras.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dlrun.catalog import CV_MODES, SEARCH_SETTINGS
from dlrun.errors import SpecError
from dlrun.spec import keras_names as kn
from dlrun.spec.dotted import set_path, suggest
from dlrun.spec.search_space import check_search

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
def _entry(v: Any) -> tuple[str, dict[str, Any]] | str:
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
    got = _entry(v)
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
            raise ValueError(
                f"test_rows: source needs mode split (train on the source's training rows, test on its test rows), "
                f"got mode '{self.mode}'"
            )
        if self.mode == "validation_split" and self.validation_split <= 0:
            raise ValueError("mode 'validation_split' needs validation_split > 0 (e.g. 0.33)")
        if self.repeats == "auto":
            if self.mode not in ("kfold", "repeated_kfold", "repeated_split"):
                raise ValueError(f"repeats: auto needs mode kfold, repeated_kfold or repeated_split, got '{self.mode}'")
            if self.target_halfwidth is None:
                raise ValueError(
                    "repeats: auto needs target_halfwidth (the headline interval's half-width to reach, "
                    "in the main metric's units, e.g. 0.02)"
                )
            return self
        if self.repeats < 1:
            raise ValueError(f"repeats must be a positive integer or 'auto', got {self.repeats}")
        if self.mode in ("split", "validation_split", "none", "kfold") and self.repeats > 1:
            better = "repeated_kfold" if self.mode == "kfold" else "repeated_split"
            raise ValueError(f"repeats={self.repeats} needs mode '{better}', got mode '{self.mode}'")
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

    @property
    def is_cv(self) -> bool:
        """Whether the evaluation mode is one of the resampling modes of ``dlrun cv``."""
        return self.evaluation.mode in CV_MODES

    @model_validator(mode="after")
    def _check_test_rows(self) -> Spec:
        if self.evaluation.test_rows == "source" and self.data.kind != "keras":
            raise ValueError(
                "evaluation.test_rows: source needs a data source with its own test rows (keras:mnist, "
                f"keras:fashion_mnist, keras:cifar10), got data.source '{self.data.source}'; use test_rows: split"
            )
        return self


# ----------------------------------------------------------------------------- name checks


def _sub(raw: Any, *keys: str) -> Any:
    for k in keys:
        raw = raw.get(k) if isinstance(raw, dict) else None
    return raw


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_layer_args(path: str, name: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """Static checks of the arguments users get wrong most (the rest is checked by Keras at build time)."""
    problems: list[tuple[str, str]] = []
    if name == "Dense":
        if "units" not in args:
            problems.append((f"{path}.units", "is required: the number of output units, e.g. units: 64"))
        elif not _is_int(args["units"]) or args["units"] <= 0:
            problems.append((f"{path}.units", f"must be a positive integer, got {args['units']!r}"))
    if name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "AlphaDropout", "GaussianDropout"):
        rate = args.get("rate")
        if rate is None:
            problems.append((f"{path}.rate", "is required: the fraction of inputs to drop, e.g. rate: 0.2"))
        elif not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            problems.append((f"{path}.rate", f"must be a number in [0, 1), got {rate!r}"))
    if name == "GaussianNoise" and "stddev" not in args:
        problems.append((f"{path}.stddev", "is required: the noise standard deviation, e.g. stddev: 0.1"))
    if "input_shape" in args or "batch_input_shape" in args:
        problems.append((path, "input_shape comes from the data; remove it"))
    for key, val in args.items():
        problems += _check_nested(f"{path}.{key}", key, val)
    return problems


def _check_names(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Check Keras names and common layer arguments on the raw mapping (no Keras import).

    Works on the raw data so that these problems are reported together with schema errors.
    """
    problems: list[tuple[str, str]] = []
    layers = _sub(raw, "model", "layers")
    for i, entry in enumerate(layers if isinstance(layers, list) else []):
        got = _entry(entry)
        if isinstance(got, str):
            problems.append((f"model.layers[{i}]", got))
            continue
        name, args = got
        if name not in kn.LAYERS:
            problems.append((f"model.layers[{i}].{name}", f"unknown Keras layer '{name}'{suggest(name, kn.LAYERS)}"))
            continue
        problems += _check_layer_args(f"model.layers[{i}].{name}", name, args)
    opt = _sub(raw, "compile", "optimizer")
    if opt is not None:
        got = _entry(opt)
        if isinstance(got, str):
            problems.append(("compile.optimizer", got))
        elif got[0].lower() not in {o.lower() for o in kn.OPTIMIZERS}:
            problems.append(("compile.optimizer", f"unknown optimizer '{got[0]}'{suggest(got[0], kn.OPTIMIZERS)}"))
    loss = _sub(raw, "compile", "loss")
    if loss is not None:
        got = _entry(loss)
        if isinstance(got, str):
            problems.append(("compile.loss", got))
        elif got[0] not in kn.LOSSES:
            problems.append(("compile.loss", f"unknown loss '{got[0]}'{suggest(got[0], kn.LOSSES)}"))
    metrics = _sub(raw, "compile", "metrics")
    for j, m in enumerate(metrics if isinstance(metrics, list) else []):
        if isinstance(m, str) and m not in kn.METRICS:
            problems.append((f"compile.metrics[{j}]", f"unknown Keras metric '{m}'{suggest(m, kn.METRICS)}"))
    callbacks = _sub(raw, "training", "callbacks")
    for j, entry in enumerate(callbacks if isinstance(callbacks, list) else []):
        got = _entry(entry)
        if isinstance(got, str):
            problems.append((f"training.callbacks[{j}]", got))
        elif got[0] not in kn.CALLBACKS:
            problems.append(
                (f"training.callbacks[{j}].{got[0]}", f"unknown callback '{got[0]}'{suggest(got[0], kn.CALLBACKS)}")
            )
    valid = CLASSIFICATION_METRICS + REGRESSION_METRICS
    ev_metrics = _sub(raw, "evaluation", "metrics")
    for j, m in enumerate(ev_metrics if isinstance(ev_metrics, list) else []):
        if isinstance(m, str) and m not in valid:
            problems.append(
                (f"evaluation.metrics[{j}]", f"must be one of {', '.join(valid)}, got '{m}'{suggest(m, valid)}")
            )
    grid = _sub(raw, "sweep", "grid")
    for key, values in grid.items() if isinstance(grid, dict) else []:
        if isinstance(values, list) and not values:
            problems.append((f"sweep.grid.{key}", "needs at least one value"))
    return problems


# ----------------------------------------------------------------------------- argument and value checks
# Losses for class labels: meaningless on a regression target; the sparse ones need integer codes.
CLASSIFICATION_LOSSES = (
    "binary_crossentropy",
    "BinaryCrossentropy",
    "binary_focal_crossentropy",
    "BinaryFocalCrossentropy",
    "categorical_crossentropy",
    "CategoricalCrossentropy",
    "categorical_focal_crossentropy",
    "CategoricalFocalCrossentropy",
    "sparse_categorical_crossentropy",
    "SparseCategoricalCrossentropy",
    "categorical_hinge",
    "CategoricalHinge",
    "hinge",
    "Hinge",
    "squared_hinge",
    "SquaredHinge",
)
SPARSE_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
# Callbacks that watch a metric, and their default monitor.
_MONITORS = {"EarlyStopping": "val_loss", "ReduceLROnPlateau": "val_loss", "ModelCheckpoint": "val_loss"}


def _class_of(name: str, table: dict[str, tuple[str, ...]]) -> str | None:
    """The class a (possibly lower-case alias) name refers to in an argument table, e.g. sgd → SGD."""
    if name in table:
        return name
    flat = name.lower().replace("_", "")
    return next((c for c in table if c.lower() == flat), None)


def _unknown_args(
    path: str, what: str, name: str, args: dict[str, Any], table: dict[str, tuple[str, ...]]
) -> list[tuple[str, str]]:
    """One problem per argument that the Keras class does not take, with the nearest valid name."""
    cls = _class_of(name, table)
    if cls is None:
        return []  # a class whose **kwargs are open: Keras checks it
    valid = table[cls]
    problems = []
    for key in args:
        if key not in valid:
            hint = suggest(str(key), valid) or f"; valid: {', '.join(valid)}"
            problems.append((f"{path}.{key}", f"unknown argument '{key}' of {what} {cls}{hint}"))
    return problems


def _nested_args(path: str, key: str, val: Any) -> list[tuple[str, str]]:
    """Arguments of a nested ``{MaxNorm: {max_value: 3}}`` initializer/regularizer/constraint."""
    tables = {
        "initializer": (kn.INITIALIZER_ARGS, "initializer"),
        "regularizer": (kn.REGULARIZER_ARGS, "regularizer"),
        "constraint": (kn.CONSTRAINT_ARGS, "constraint"),
    }
    kind = next((k for k in tables if key.endswith(k)), None)
    if kind is None or not isinstance(val, dict) or len(val) != 1:
        return []
    name, args = next(iter(val.items()))
    if not isinstance(args, dict):
        return []
    table, what = tables[kind]
    return _unknown_args(f"{path}.{name}", what, str(name), args, table)


def _positive_number(path: str, v: Any) -> list[tuple[str, str]]:
    if v is None or isinstance(v, (str, dict)):
        return []  # a schedule or a name: Keras checks it
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        return [(path, f"must be a positive number, e.g. 0.001, got {_short_repr(v)}")]
    return []


def _check_values(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Arguments of layers, optimizers, losses and callbacks against the Keras signatures (no Keras
    import), and values that only make sense together (sparse loss and one-hot targets, a callback
    watching validation scores without validation rows, image options on a table)."""
    problems: list[tuple[str, str]] = []
    layers = _sub(raw, "model", "layers")
    for i, entry in enumerate(layers if isinstance(layers, list) else []):
        got = _entry(entry)
        if isinstance(got, str) or got[0] not in kn.LAYERS:
            continue
        name, args = got
        path = f"model.layers[{i}].{name}"
        problems += [p for p in _unknown_args(path, "layer", name, args, kn.LAYER_ARGS) if "input_shape" not in p[0]]
        for key, val in args.items():
            problems += _nested_args(f"{path}.{key}", str(key), val)
    opt = _sub(raw, "compile", "optimizer")
    opt_entry = _entry(opt) if opt is not None else None
    if isinstance(opt_entry, tuple):
        name, args = opt_entry
        path = f"compile.optimizer.{name}"
        problems += _unknown_args(path, "optimizer", name, args, kn.OPTIMIZER_ARGS)
        problems += _positive_number(f"{path}.learning_rate", args.get("learning_rate"))
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            problems += _positive_number(f"{path}.{key}", args.get(key))
    loss = _sub(raw, "compile", "loss")
    loss_entry = _entry(loss) if loss is not None else None
    if isinstance(loss_entry, tuple):
        name, args = loss_entry
        problems += _unknown_args(f"compile.loss.{name}", "loss", name, args, kn.LOSS_ARGS)
        if name in SPARSE_LOSSES and _sub(raw, "preprocessing", "target", "onehot") is True:
            problems.append(
                (
                    "compile.loss",
                    f"{name} takes integer class codes, but preprocessing.target.onehot is true (one-hot targets); "
                    "use categorical_crossentropy, or set onehot: false",
                )
            )
    has_val = _has_validation_rows(raw)
    callbacks = _sub(raw, "training", "callbacks")
    for j, entry in enumerate(callbacks if isinstance(callbacks, list) else []):
        got = _entry(entry)
        if isinstance(got, str) or got[0] not in kn.CALLBACKS:
            continue
        name, args = got
        path = f"training.callbacks[{j}].{name}"
        problems += _unknown_args(path, "callback", name, args, kn.CALLBACK_ARGS)
        monitor = args.get("monitor", _MONITORS.get(name))
        if isinstance(monitor, str) and monitor.startswith("val_") and not has_val:
            problems.append(
                (
                    f"{path}.monitor",
                    f"watches '{monitor}' but the run has no validation rows, so it would never act; set "
                    "evaluation.validation_split (e.g. 0.2) or monitor a training metric such as 'loss'",
                )
            )
    image = _sub(raw, "preprocessing", "image")
    source = _sub(raw, "data", "source")
    if isinstance(image, dict) and isinstance(source, str) and not source.startswith("keras:"):
        for key in ("rescale", "flatten", "reshape"):
            if image.get(key) not in (None, False):
                problems.append(
                    (
                        f"preprocessing.image.{key}",
                        f"applies to image data (keras:mnist, keras:fashion_mnist, keras:cifar10) only, but "
                        f"data.source '{_short_repr(source)}' is a table; remove it",
                    )
                )
    return problems


def _has_validation_rows(raw: dict[str, Any]) -> bool:
    ev = _sub(raw, "evaluation") or {}
    if not isinstance(ev, dict):
        return True
    vs = ev.get("validation_split", 0.0)
    fraction = isinstance(vs, (int, float)) and not isinstance(vs, bool) and vs > 0
    return ev.get("mode") == "validation_split" or fraction


def _short_repr(v: Any, limit: int = 80) -> str:
    """``repr(v)``, cut to ``limit`` characters: an error line never echoes a huge value."""
    text = repr(v)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(text)} characters)"


_NESTED_TABLES = {
    "initializer": kn.INITIALIZERS,
    "regularizer": kn.REGULARIZERS,
    "constraint": kn.CONSTRAINTS,
    "activation": kn.ACTIVATIONS,
}


def _check_nested(path: str, key: str, val: Any) -> list[tuple[str, str]]:
    """Check an initializer/regularizer/constraint/activation argument by its key's suffix."""
    kind = next((k for k in _NESTED_TABLES if key.endswith(k)), None)
    if kind is None or val is None:
        return []
    table = _NESTED_TABLES[kind]
    if isinstance(val, str):
        name = val
    elif isinstance(val, dict) and len(val) == 1:
        name = str(next(iter(val)))
        if kind == "activation":
            return [(path, f"must be an activation name, got a mapping {val!r}")]
    elif isinstance(val, (int, float)) and kind == "regularizer":
        return [(path, f"must be a regularizer name or {{L2: {{l2: {val}}}}}, got {val!r}")]
    else:
        return [(path, f"must be a {kind} name or a one-key mapping {{Name: {{args}}}}, got {val!r}")]
    known = {t.lower().replace("_", "") for t in table}
    if name.lower().replace("_", "") not in known:
        return [(path, f"unknown {kind} '{name}'{suggest(name, table)}")]
    return []


# ----------------------------------------------------------------------------- loading
def _fmt_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the spec section that ``loc`` (the parent of a bad key) points into."""
    cls: Any = Spec
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        cls = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return list(getattr(cls, "model_fields", {})) if cls is not None else []


def _pydantic_problems(err: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = _fmt_loc(loc)
        typ = e["type"]
        given = e.get("input")
        if typ == "extra_forbidden":
            name = str(loc[-1])
            fields = _fields_at(loc[:-1])
            hint = suggest(name, fields)
            valid = f"; valid keys: {', '.join(fields)}" if fields and not hint else ""
            problems.append((path, f"unknown key '{name}'{hint}{valid}"))
        elif typ == "missing":
            problems.append((path, "is required"))
        elif typ in ("literal_error",):
            exp = e.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']+)'", exp)
            hint = suggest(str(given)[:100], choices)
            problems.append((path, f"must be one of {exp}, got {_short_repr(given)}{hint}"))
        elif typ in ("value_error", "assertion_error"):
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append((path, msg))
        else:
            problems.append((path, f"{e['msg'][0].lower()}{e['msg'][1:]}, got {_short_repr(given)}"))
    # pydantic reports each alternative of a union; keep one line per path and message
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return _collapse_unions(unique)


def _collapse_unions(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Where a union produced several lines for one path, keep the most informative."""
    by_path: dict[str, list[str]] = {}
    for path, msg in problems:
        by_path.setdefault(path, []).append(msg)
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    for path, _ in problems:
        if path in done:
            continue
        done.add(path)
        msgs = by_path[path]
        if len(msgs) == 1:
            out.append((path, msgs[0]))
        else:
            out.append((path, " or ".join(dict.fromkeys(m.split(", got ")[0] for m in msgs)) + _got(msgs)))
    return out


def _got(msgs: list[str]) -> str:
    for m in msgs:
        if ", got " in m:
            return ", got " + m.split(", got ", 1)[1]
    return ""


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is read as YAML (``0.01``, ``[1, 2]``, ``true``)."""
    if "=" not in text:
        raise SpecError([("--set", f"must look like key.path=value, got '{text}'")])
    key, _, raw = text.partition("=")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loading, but ``1e-3`` and ``5E-4`` are floats, as in YAML 1.2 (PyYAML reads them as strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    # PyYAML keeps the last of two equal keys: a second `model:` would silently replace the first
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key != "<<" and key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key '{key}' (first at line {seen[key] + 1}); the second would silently replace the first",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_text(text: str) -> Any:
    """Parse YAML with :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; malformed YAML is a SpecError with line and column."""
    p = Path(path)
    if not p.is_file():
        raise SpecError([("", f"config file not found: {p}")], source=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [("", f"is not a text (UTF-8) YAML file: undecodable byte at offset {exc.start}; is it the right file?")],
            source=str(p),
        ) from None
    except OSError as exc:
        raise SpecError([("", f"cannot read the config: {exc.strerror or exc}")], source=str(p)) from None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError([("", "the file is empty; a spec needs at least the data and model sections")], source=str(p))
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([("", f"malformed YAML at {where}{problem}")], source=str(p)) from None
    if not isinstance(data, dict):
        raise SpecError([("", f"the file must hold a mapping of sections, got {type(data).__name__}")], source=str(p))
    return data


def validate(raw: dict[str, Any], source: str | None = None) -> Spec:
    """Validate a raw mapping into a :class:`Spec`, reporting every problem at once.

    Raises:
        SpecError: With one ``(dotted.path, message)`` per problem.
    """
    problems: list[tuple[str, str]] = []
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as err:
        problems = _pydantic_problems(err)
    for p in _check_names(raw) + _check_values(raw):
        if p not in problems:
            problems.append(p)
    if isinstance(raw.get("search"), dict) or _sub(raw, "evaluation", "outer") is not None:
        problems += [p for p in check_search(raw, validate, values=not problems) if p not in problems]
    if problems or spec is None:
        # one readable line each: a huge value is never echoed in full
        problems = [(p, m if len(m) <= 400 else m[:380] + f"… ({len(m)} characters)") for p, m in problems]
        raise SpecError(problems, source=source)
    return _resolve_source(spec, source)


def _resolve_source(spec: Spec, config: str | None) -> Spec:
    """A relative CSV path is read from the config's folder (where it was written), if it is there."""
    src = spec.data.source
    if config is None or spec.data.kind != "csv" or re.match(r"^[a-z]+://", src) or Path(src).is_absolute():
        return spec
    beside = Path(config).parent / Path(src).expanduser()
    if beside.is_file() and Path(config).parent != Path("."):
        data = spec.data.model_copy(update={"source": str(beside)})
        return spec.model_copy(update={"data": data})
    return spec


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, override (``--set``) and validate a spec file."""
    raw = read_yaml(path)
    return validate(apply_overrides(raw, overrides or []), source=str(path))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` applied."""
    out = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        set_path(out, key, value)
    return out


def resolved_dict(spec: Spec) -> dict[str, Any]:
    """The fully resolved spec (defaults filled in) as plain data for ``config.yaml``."""
    return spec.model_dump(mode="json")


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlrun experiment spec"
    return schema
