"""The fold-parallel "stacked" engine: train many copies of one small model as one program.

Every weight carries a leading model axis ``M``: a Dense kernel of a single model
``(in, out)`` becomes ``(M, in, out)``. One compiled TensorFlow function (XLA where
it helps) runs a whole epoch: it shuffles each model's own rows, gathers each
model's own mini-batches, runs the forward and backward pass as batched matmuls,
and applies each model's own optimizer update. The total loss is the sum over
models of each model's own mean batch loss, so each model gets exactly its own
gradient; the optimizer rules are elementwise and are re-implemented here with a
per-model step counter and a per-model update mask, so a model whose epoch has
fewer steps (a smaller fold) or that early stopping has frozen keeps its weights
and optimizer state untouched. ``tests/test_engine_stacked.py`` checks the weights
against Keras step by step.

What is per model, exactly as for a single Keras model:

* initialization (each weight drawn by the layer's own Keras initializer on the
  single model's shape, with a seed derived from ``job.seed``);
* the shuffle of each epoch (a function of ``(job.seed, epoch)``, so a resumed run
  draws the same batches), the batch size and the smaller last batch;
* dropout masks and Gaussian noise (counter-based hashing of ``(seed, epoch, step, unit)``,
  so results do not depend on how models are grouped into chunks);
* class weights, weight and activity regularizers (L1, L2, L1L2), constraints
  (MaxNorm, UnitNorm, MinMaxNorm, NonNeg: the Keras constraint with its axis shifted
  by the model axis), BatchNormalization statistics;
* EarlyStopping (all of its arguments) and the Keras ``History`` (``loss`` is the
  batch-size-weighted mean of the batch losses, metrics are unweighted means, the
  ``val_`` entries are computed in inference mode at the end of each epoch).

Resume: ``job.initial_weights`` and ``job.initial_epoch`` are honoured, but no
optimizer state travels with a job, so a resumed model restarts its optimizer
(momentum, Adam moments, step counter), as a fresh ``keras.Model.fit(initial_epoch=...)``
would. With plain SGD (no momentum) a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.engines.base import EpochCallback, EpochEvent, FitJob, FitResult
from dlrun.spec import Spec

SUPPORTED_LAYERS = ("Dense", "Dropout", "Activation", "BatchNormalization", "GaussianNoise", "Flatten", "Reshape")
SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion")
SUPPORTED_CALLBACKS = ("EarlyStopping",)
SUPPORTED_REGULARIZERS = ("L1", "L2", "L1L2")
SUPPORTED_CONSTRAINTS = ("MaxNorm", "UnitNorm", "MinMaxNorm", "NonNeg")

_COMMON_LAYER_ARGS = {"name", "dtype", "activity_regularizer"}
_LAYER_ARGS: dict[str, set[str]] = {
    "Dense": {
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "kernel_constraint",
        "bias_constraint",
    },
    "Dropout": {"rate", "noise_shape", "seed"},
    "Activation": {"activation"},
    "BatchNormalization": {
        "axis",
        "momentum",
        "epsilon",
        "center",
        "scale",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
        "beta_regularizer",
        "gamma_regularizer",
        "beta_constraint",
        "gamma_constraint",
        "synchronized",
    },
    "GaussianNoise": {"stddev", "seed"},
    "Flatten": {"data_format"},
    "Reshape": {"target_shape"},
}
_EARLY_STOPPING_ARGS = {
    "monitor",
    "min_delta",
    "patience",
    "verbose",
    "mode",
    "baseline",
    "restore_best_weights",
    "start_from_epoch",
}

BYTES = 4
SAFETY = 4.0

_M32 = 0xFFFFFFFF


class _Unsupported(Exception):
    """Raised while planning: the stacked engine cannot run this spec."""


# ============================================================================= support check
def unsupported_reason(spec: Spec, task: str) -> str | None:
    """``None`` when the stacked engine can run ``spec``; else one line saying what and why."""
    try:
        _check_layers(spec)
        _check_callbacks(spec)
        if spec.runtime.mixed_precision:
            raise _Unsupported("runtime.mixed_precision: the stacked engine trains in float32 only")
        _check_compile(spec, task)
    except _Unsupported as exc:
        return str(exc)
    return None


def _nested_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return repr(value)


def _norm(name: str) -> str:
    return name.lower().replace("_", "")


def _check_layers(spec: Spec) -> None:
    for i, (name, args) in enumerate(spec.model.entries):
        path = f"model.layers[{i}].{name}"
        if name not in _LAYER_ARGS:
            raise _Unsupported(f"{path}: the stacked engine supports {', '.join(SUPPORTED_LAYERS)}")
        for key, val in args.items():
            if key not in _LAYER_ARGS[name] | _COMMON_LAYER_ARGS:
                raise _Unsupported(f"{path}.{key}: not supported by the stacked engine")
            if key == "dtype" and val not in (None, "float32"):
                raise _Unsupported(f"{path}.dtype: the stacked engine trains in float32 only")
            if key.endswith("regularizer") and val is not None:
                reg = _nested_name(val) or ""
                if _norm(reg) not in {"l1", "l2", "l1l2"}:
                    names = ", ".join(SUPPORTED_REGULARIZERS)
                    raise _Unsupported(f"{path}.{key}: the stacked engine supports the regularizers {names}")
            if key.endswith("constraint") and val is not None:
                con = _nested_name(val) or ""
                if _norm(con) not in {"maxnorm", "unitnorm", "minmaxnorm", "nonneg"}:
                    raise _Unsupported(
                        f"{path}.{key}: the stacked engine supports the constraints {', '.join(SUPPORTED_CONSTRAINTS)}"
                    )
        if name == "Dropout" and args.get("noise_shape") is not None:
            raise _Unsupported(f"{path}.noise_shape: the stacked engine draws one mask element per unit")
        if name == "BatchNormalization" and args.get("axis", -1) != -1:
            raise _Unsupported(f"{path}.axis: the stacked engine normalizes the last axis only (axis: -1)")


def _check_callbacks(spec: Spec) -> None:
    for j, (name, args) in enumerate(spec.training.callback_entries):
        path = f"training.callbacks[{j}].{name}"
        if name not in SUPPORTED_CALLBACKS:
            raise _Unsupported(f"{path}: the stacked engine supports only the EarlyStopping callback")
        for key in args:
            if key not in _EARLY_STOPPING_ARGS:
                raise _Unsupported(f"{path}.{key}: not an EarlyStopping argument")
        if args.get("mode", "auto") not in ("auto", "min", "max"):
            raise _Unsupported(f"{path}.mode: must be auto, min or max")


def _check_compile(spec: Spec, task: str) -> None:
    from dlrun.errors import SpecError
    from dlrun.models import resolve_compile

    cfg = resolve_compile(spec, task)
    try:
        _OptimizerPlan.from_config(cfg)
        _LossPlan.from_config(cfg)
    except SpecError as exc:
        raise _Unsupported(str(exc)) from None
    for j, metric in enumerate(cfg.metrics):
        if not _metric_supported(metric):
            raise _Unsupported(
                f"compile.metrics[{j}]: the stacked engine computes accuracy and mean-type metrics "
                f"(mae, mse, ...) and RootMeanSquaredError, not '{metric}'"
            )


# ============================================================================= optimizer
@dataclass
class _OptimizerPlan:
    """The hyperparameters of one Keras optimizer, applied per model."""

    kind: str
    lr: Any  # float, or a Keras LearningRateSchedule called with the per-model step
    hyper: dict[str, Any]
    weight_decay: float | None
    clipnorm: float | None
    global_clipnorm: float | None
    clipvalue: float | None

    @staticmethod
    def from_config(cfg: Any) -> _OptimizerPlan:
        from dlrun.models import make_optimizer

        opt = make_optimizer(cfg)
        kind = type(opt).__name__
        if kind not in SUPPORTED_OPTIMIZERS:
            raise _Unsupported(f"compile.optimizer: the stacked engine supports {', '.join(SUPPORTED_OPTIMIZERS)}")
        if getattr(opt, "use_ema", False):
            raise _Unsupported("compile.optimizer.use_ema: not supported by the stacked engine")
        if getattr(opt, "loss_scale_factor", None) is not None:
            raise _Unsupported("compile.optimizer.loss_scale_factor: not supported by the stacked engine")
        if getattr(opt, "gradient_accumulation_steps", None):
            raise _Unsupported("compile.optimizer.gradient_accumulation_steps: not supported by the stacked engine")
        import keras

        raw_lr = opt._learning_rate
        if isinstance(raw_lr, keras.optimizers.schedules.LearningRateSchedule):
            try:
                probe = np.asarray(raw_lr(np.array([0.0, 1.0, 5.0], dtype="float32")))
            except Exception:
                probe = np.zeros(())
            if probe.shape != (3,):
                raise _Unsupported(
                    "compile.optimizer.learning_rate: this schedule cannot be evaluated per model by the stacked engine"
                )
            lr: Any = raw_lr
        else:
            lr = float(np.asarray(opt.learning_rate))
        names = ("momentum", "nesterov", "beta_1", "beta_2", "epsilon", "amsgrad", "rho", "centered")
        hyper = {n: getattr(opt, n) for n in names if hasattr(opt, n)}
        if kind == "Adagrad":
            hyper["initial_accumulator_value"] = opt.initial_accumulator_value
        return _OptimizerPlan(
            kind=kind,
            lr=lr,
            hyper=hyper,
            weight_decay=opt.weight_decay,
            clipnorm=opt.clipnorm,
            global_clipnorm=opt.global_clipnorm,
            clipvalue=opt.clipvalue,
        )

    def slot_names(self) -> list[str]:
        """Per-variable state kept by this optimizer, in a fixed order."""
        h = self.hyper
        if self.kind == "SGD":
            return ["momentum"] if h["momentum"] != 0 else []
        if self.kind in ("Adam", "AdamW"):
            return ["m", "v", "vhat"] if h["amsgrad"] else ["m", "v"]
        if self.kind == "RMSprop":
            out = ["velocity"]
            if h["momentum"] > 0:
                out.append("momentum")
            if h["centered"]:
                out.append("average_gradient")
            return out
        if self.kind == "Adagrad":
            return ["accumulator"]
        if self.kind == "Adadelta":
            return ["accumulated_grad", "accumulated_delta_var"]
        if self.kind == "Adamax":
            return ["m", "u"]
        if self.kind == "Nadam":
            return ["m", "v"]
        return ["momentum"]  # Lion

    def slot_init(self, name: str) -> float:
        if name == "accumulator":
            return float(self.hyper["initial_accumulator_value"])
        return 0.0

    def learning_rate(self, step: Any) -> Any:
        """Per-model learning rate ``(M,)`` at 0-based ``step`` ``(M,)`` (the optimizer's ``iterations``)."""
        import tensorflow as tf

        if isinstance(self.lr, float):
            return tf.fill(tf.shape(step), tf.constant(self.lr, tf.float32))
        return tf.cast(self.lr(step), tf.float32)

    def update(
        self, var: Any, grad: Any, slots: list[Any], t: Any, lr: Any, extra: dict[str, Any]
    ) -> tuple[Any, list[Any]]:
        """One Keras update of ``var`` ``(M, ...)``; ``t`` = iterations + 1 and ``lr`` broadcast to ``var``."""
        import tensorflow as tf

        h = self.hyper
        k = self.kind
        if k == "SGD":
            if h["momentum"] != 0:
                mom = tf.constant(h["momentum"], tf.float32)
                m = slots[0] * mom - grad * lr
                if h["nesterov"]:
                    return var + (m * mom - grad * lr), [m]
                return var + m, [m]
            return var - grad * lr, []
        if k in ("Adam", "AdamW"):
            b1, b2, eps = h["beta_1"], h["beta_2"], h["epsilon"]
            b1p = tf.pow(tf.constant(b1, tf.float32), t)
            b2p = tf.pow(tf.constant(b2, tf.float32), t)
            alpha = lr * tf.sqrt(1 - b2p) / (1 - b1p)
            m = slots[0] + (grad - slots[0]) * (1 - b1)
            v = slots[1] + (tf.square(grad) - slots[1]) * (1 - b2)
            if h["amsgrad"]:
                vh = tf.maximum(slots[2], v)
                return var - (m * alpha) / (tf.sqrt(vh) + eps), [m, v, vh]
            return var - (m * alpha) / (tf.sqrt(v) + eps), [m, v]
        if k == "RMSprop":
            rho, eps = h["rho"], h["epsilon"]
            vel = rho * slots[0] + (1 - rho) * tf.square(grad)
            new = [vel]
            i = 1
            mom_slot = None
            if h["momentum"] > 0:
                mom_slot = slots[i]
                i += 1
            if h["centered"]:
                avg = rho * slots[i] + (1 - rho) * grad
                denom = vel - tf.square(avg) + eps
            else:
                denom = vel + eps
            inc = (lr * grad) / tf.sqrt(denom)
            if mom_slot is not None:
                mom = h["momentum"] * mom_slot + inc
                new.append(mom)
                var = var - mom
            else:
                var = var - inc
            if h["centered"]:
                new.append(avg)
            return var, new
        if k == "Adagrad":
            acc = slots[0] + tf.square(grad)
            return var - (lr * grad) / tf.sqrt(acc + h["epsilon"]), [acc]
        if k == "Adadelta":
            rho, eps = h["rho"], h["epsilon"]
            ag = rho * slots[0] + (1 - rho) * tf.square(grad)
            delta = -((tf.sqrt(slots[1] + eps) * grad) / tf.sqrt(ag + eps))
            ad = rho * slots[1] + (1 - rho) * tf.square(delta)
            return var + lr * delta, [ag, ad]
        if k == "Adamax":
            b1, b2, eps = h["beta_1"], h["beta_2"], h["epsilon"]
            b1p = tf.pow(tf.constant(b1, tf.float32), t)
            m = slots[0] + (grad - slots[0]) * (1 - b1)
            u = tf.maximum(b2 * slots[1], tf.abs(grad))
            return var - (lr * m) / ((1 - b1p) * (u + eps)), [m, u]
        if k == "Nadam":
            b1, b2, eps = h["beta_1"], h["beta_2"], h["epsilon"]
            decay = tf.constant(0.96, tf.float32)
            u_t = b1 * (1.0 - 0.5 * tf.pow(decay, t))
            u_t_1 = b1 * (1.0 - 0.5 * tf.pow(decay, t + 1))
            u_prod = extra["u_product"]  # already includes u_t
            u_prod_1 = u_prod * u_t_1
            b2p = tf.pow(tf.constant(b2, tf.float32), t)
            m = slots[0] + (grad - slots[0]) * (1 - b1)
            v = slots[1] + (tf.square(grad) - slots[1]) * (1 - b2)
            m_hat = (u_t_1 * m) / (1 - u_prod_1) + ((1 - u_t) * grad) / (1 - u_prod)
            v_hat = v / (1 - b2p)
            return var - (m_hat * lr) / (tf.sqrt(v_hat) + eps), [m, v]
        # Lion
        b1, b2 = h["beta_1"], h["beta_2"]
        new_var = var - lr * tf.sign(slots[0] * b1 + grad * (1.0 - b1))
        return new_var, [slots[0] * b2 + grad * (1.0 - b2)]


# ============================================================================= loss and metrics
@dataclass
class _LossPlan:
    """A Keras loss as a per-sample function ``(M, B, ...) -> (M, B)``."""

    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    name: str

    @staticmethod
    def from_config(cfg: Any) -> _LossPlan:
        import keras

        from dlrun.models import make_loss

        loss = make_loss(cfg)
        from keras.src.losses.losses import LossFunctionWrapper as wrapper

        if isinstance(loss, keras.losses.Loss):
            if not isinstance(loss, wrapper):
                raise _Unsupported(f"compile.loss: the stacked engine cannot vectorize {type(loss).__name__}")
            if loss.reduction not in ("sum_over_batch_size", "mean"):
                raise _Unsupported("compile.loss.reduction: the stacked engine supports sum_over_batch_size only")
            return _LossPlan(fn=loss.fn, kwargs=dict(loss._fn_kwargs), name=type(loss).__name__)
        if callable(loss) and getattr(loss, "__module__", "").startswith("keras"):
            return _LossPlan(fn=loss, kwargs={}, name=getattr(loss, "__name__", "loss"))
        raise _Unsupported("compile.loss: the stacked engine supports the built-in Keras losses only")


def _metric_supported(identifier: str) -> bool:
    import keras

    if str(identifier).lower() in ("accuracy", "acc"):
        return True
    try:
        obj = keras.metrics.get(identifier)
    except (ValueError, TypeError):
        return False
    return _metric_kind(obj) is not None


def _metric_kind(obj: Any) -> str | None:
    import keras

    rmse = keras.metrics.RootMeanSquaredError
    mmw = keras.metrics.MeanMetricWrapper
    if isinstance(obj, rmse):
        return "rmse"
    if isinstance(obj, mmw) and type(obj).update_state is mmw.update_state:
        return "mean"
    return None


@dataclass
class _MetricPlan:
    name: str
    kind: str  # "mean" or "rmse"
    fn: Callable[..., Any] | None
    kwargs: dict[str, Any]
    direction: str | None


def _metric_plans(metrics: Sequence[str], y_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[_MetricPlan]:
    import keras
    from keras.src.trainers import compile_utils

    yt = keras.ops.zeros((2, *y_shape))
    yp = keras.ops.zeros((2, *out_shape))
    out = []
    for ident in metrics:
        obj = compile_utils.get_metric(ident, yt, yp)
        kind = _metric_kind(obj)
        if kind is None:
            raise _Unsupported(f"compile.metrics: the stacked engine cannot compute '{ident}'")
        fn = None if kind == "rmse" else obj._fn
        kwargs = {} if kind == "rmse" else dict(obj._fn_kwargs)
        out.append(_MetricPlan(str(obj.name), kind, fn, kwargs, getattr(obj, "_direction", None)))
    return out


# ============================================================================= model plan
@dataclass
class _WeightSpec:
    layer: int
    name: str
    shape: tuple[int, ...]
    trainable: bool
    initializer: Any
    regularizer: tuple[float, float] | None  # (l1, l2)
    constraint: Any  # a Keras constraint working on the stacked weight, or None


@dataclass
class _LayerPlan:
    kind: str
    weights: dict[str, int] = field(default_factory=dict)  # weight name -> index in the weight list
    activation: Callable[..., Any] | None = None
    act_reg: tuple[float, float] | None = None
    rate: float = 0.0
    momentum: float = 0.99
    epsilon: float = 1e-3
    shape: tuple[int, ...] = ()


def _reg_pair(reg: Any, where: str) -> tuple[float, float] | None:
    if reg is None:
        return None
    name = type(reg).__name__
    if name not in SUPPORTED_REGULARIZERS:
        raise _Unsupported(f"{where}: the stacked engine supports the regularizers {', '.join(SUPPORTED_REGULARIZERS)}")
    return float(getattr(reg, "l1", 0.0) or 0.0), float(getattr(reg, "l2", 0.0) or 0.0)


def _shift_constraint(con: Any, where: str) -> Any:
    """The Keras constraint with its axis moved past the leading model axis."""
    if con is None:
        return None
    name = type(con).__name__
    if name not in SUPPORTED_CONSTRAINTS:
        raise _Unsupported(f"{where}: the stacked engine supports the constraints {', '.join(SUPPORTED_CONSTRAINTS)}")
    cfg = con.get_config()
    if "axis" in cfg:
        axis = cfg["axis"]
        if isinstance(axis, (list, tuple)):
            cfg["axis"] = [a + 1 if a >= 0 else a for a in axis]
        else:
            cfg["axis"] = axis + 1 if axis >= 0 else axis
    return type(con).from_config(cfg)


def _plan_model(
    spec: Spec, task: str, input_shape: tuple[int, ...], n_outputs: int
) -> tuple[list[_LayerPlan], list[_WeightSpec], Any]:
    """Build the single reference Keras model and read its layers into a stacked plan."""
    import keras

    from dlrun.models import build_model

    model = build_model(spec, input_shape, n_outputs, task)
    layers: list[_LayerPlan] = []
    weights: list[_WeightSpec] = []
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__
        path = f"model.layers[{i}].{kind}"
        plan = _LayerPlan(kind=kind)
        plan.act_reg = _reg_pair(layer.activity_regularizer, f"{path}.activity_regularizer")
        for v in layer.weights:
            short = v.path.split("/")[-1]
            init = getattr(layer, f"{short}_initializer", None)
            reg = getattr(layer, f"{short}_regularizer", None)
            con = getattr(layer, f"{short}_constraint", None)
            plan.weights[short] = len(weights)
            weights.append(
                _WeightSpec(
                    layer=i,
                    name=short,
                    shape=tuple(int(d) for d in v.shape),
                    trainable=bool(v.trainable),
                    initializer=init,
                    regularizer=_reg_pair(reg, f"{path}.{short}_regularizer"),
                    constraint=_shift_constraint(con, f"{path}.{short}_constraint"),
                )
            )
        if kind == "Dense":
            if getattr(layer, "lora_enabled", False):
                raise _Unsupported(f"{path}.lora_rank: not supported by the stacked engine")
            plan.activation = layer.activation
        elif kind == "Activation":
            plan.activation = layer.activation
        elif kind == "Dropout":
            plan.rate = float(layer.rate)
        elif kind == "GaussianNoise":
            plan.rate = float(layer.stddev)
        elif kind == "BatchNormalization":
            if getattr(layer, "renorm", False):
                raise _Unsupported(f"{path}.renorm: not supported by the stacked engine")
            plan.momentum = float(layer.momentum)
            plan.epsilon = float(layer.epsilon)
        elif kind in ("Flatten", "Reshape"):
            plan.shape = tuple(int(d) for d in layer.output.shape[1:])
        else:
            raise _Unsupported(f"{path}: the stacked engine supports {', '.join(SUPPORTED_LAYERS)}")
        if not layer.trainable:
            raise _Unsupported(f"{path}.trainable: frozen layers are not supported by the stacked engine")
        layers.append(plan)
    del keras
    return layers, weights, model


def _seed_for(seed: int, *salt: int) -> int:
    return int(np.random.SeedSequence([int(seed) & _M32, *salt]).generate_state(1)[0] & 0x7FFFFFFF)


def _init_weight(ws: _WeightSpec, seed: int, index: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    """One model's initial value of a weight, drawn as the layer's Keras initializer draws it.

    The common random initializers (RandomNormal/Uniform, TruncatedNormal and the
    VarianceScaling family: Glorot, He, LeCun) are sampled with NumPy from the same
    distribution, with fan-in/fan-out of the single model's shape: calling Keras once per
    model and weight costs about a millisecond each. Deterministic initializers are
    computed once; any other initializer is called through Keras with a per-model seed.
    """
    from keras.src.initializers.random_initializers import compute_fans

    init = ws.initializer
    if init is None:
        raise _Unsupported(f"model.layers[{ws.layer}]: weight '{ws.name}' has no initializer")
    cfg = init.get_config()
    if "seed" not in cfg:
        if index not in cache:
            cache[index] = np.asarray(init(ws.shape, dtype="float32"), dtype=np.float32)
        return cache[index]
    rng = np.random.default_rng([int(seed) & _M32, 1, index])
    kind = type(init).__name__
    shape = ws.shape

    def truncated(mean: float, std: float) -> np.ndarray:
        out = rng.standard_normal(shape)
        bad = np.abs(out) > 2.0
        while bad.any():
            out[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(out) > 2.0
        return out * std + mean

    if kind == "RandomNormal":
        return (rng.standard_normal(shape) * init.stddev + init.mean).astype(np.float32)
    if kind == "RandomUniform":
        return rng.uniform(init.minval, init.maxval, shape).astype(np.float32)
    if kind == "TruncatedNormal":
        return truncated(init.mean, init.stddev).astype(np.float32)
    if hasattr(init, "mode") and hasattr(init, "distribution") and hasattr(init, "scale"):
        scale = float(init.scale)
        fan_in, fan_out = compute_fans(shape)
        if init.mode == "fan_in":
            scale /= max(1.0, fan_in)
        elif init.mode == "fan_out":
            scale /= max(1.0, fan_out)
        else:
            scale /= max(1.0, (fan_in + fan_out) / 2.0)
        if init.distribution == "truncated_normal":
            return truncated(0.0, math.sqrt(scale) / 0.87962566103423978).astype(np.float32)
        if init.distribution == "untruncated_normal":
            return (rng.standard_normal(shape) * math.sqrt(scale)).astype(np.float32)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    init = type(init).from_config({**cfg, "seed": _seed_for(seed, 1, index)})
    return np.asarray(init(shape, dtype="float32"), dtype=np.float32)


# ============================================================================= random numbers
def _fmix(h: Any) -> Any:
    """murmur3's 32-bit finalizer on uint32 tensors."""
    import tensorflow as tf

    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
    h = h * tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = h * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _hash_bits(keys: Any, shape: Sequence[int], *salt: Any) -> Any:
    """Per-model pseudo-random uint32 of ``shape[1:]`` keyed on ``keys`` ``(M,)`` and salts."""
    import tensorflow as tf

    base = keys
    for s in salt:
        base = _fmix(
            base ^ (tf.cast(s, tf.uint32) * tf.constant(0x9E3779B9, tf.uint32)) + tf.constant(0x7F4A7C15, tf.uint32)
        )
    n = int(np.prod(shape[1:]))
    idx = tf.reshape(tf.cast(tf.range(n, dtype=tf.int32), tf.uint32), (1, *shape[1:]))
    b = tf.reshape(base, (-1,) + (1,) * (len(shape) - 1))
    return _fmix(b + idx * tf.constant(0x9E3779B9, tf.uint32))


def _uniform(keys: Any, shape: Sequence[int], *salt: Any) -> Any:
    import tensorflow as tf

    bits = _hash_bits(keys, shape, *salt)
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (1.0 / 16777216.0)


# ============================================================================= products
# Rows per step up to which the kernel gradient is a fused multiply-and-reduce rather than a dot.
# XLA's CPU dot is slow when the contracted axis is short (x^T @ dy contracts the 16 rows of a
# mini-batch): measured on two cores, 150 models of 60x60 at 16 rows took 1.2 ms as a dot and
# 0.56 ms as a multiply-and-reduce; past 32 rows XLA stops fusing the reduce and the dot wins.
_REDUCE_GRAD_ROWS = 32


def _batched_dense(x: Any, w: Any) -> Any:
    """``x @ w`` per model: ``x`` ``(M, R, I)``, ``w`` ``(M, I, O)`` -> ``(M, R, O)``.

    The same product as ``tf.matmul``, with a kernel gradient that XLA compiles into faster
    code for mini-batch sized ``R`` (see ``_REDUCE_GRAD_ROWS``).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def product(x: Any, w: Any) -> Any:
        def grad(dy: Any) -> tuple[Any, Any]:
            dx = tf.matmul(dy, w, transpose_b=True)
            if x.shape[1] is not None and x.shape[1] <= _REDUCE_GRAD_ROWS:
                dw = tf.reduce_sum(x[:, :, :, None] * dy[:, :, None, :], axis=1)
            else:
                dw = tf.matmul(x, dy, transpose_a=True)
            return dx, dw

        return tf.matmul(x, w), grad

    return product(x, w)


# ============================================================================= the engine
@dataclass
class _EarlyStop:
    """Keras' EarlyStopping, for one model."""

    monitor: str
    min_delta: float
    patience: int
    sign: float  # -1 for "min" (smaller is better), +1 for "max"
    baseline: float | None
    restore: bool
    start_from_epoch: int
    wait: int = 0
    best: float | None = None
    has_best_weights: bool = False
    stopped: bool = False

    def improved(self, value: float, ref: float | None) -> bool:
        if ref is None:
            return True
        # Keras negates min_delta for "min": an improvement must beat the reference by min_delta
        if self.sign < 0:
            return value + self.min_delta < ref
        return value - self.min_delta > ref

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> tuple[bool, bool]:
        """Returns ``(snapshot weights now, stop training)``."""
        current = logs.get(self.monitor)
        if current is None or epoch < self.start_from_epoch:
            return False, False
        snap = False
        if self.restore and not self.has_best_weights:
            self.has_best_weights = True
            snap = True
        self.wait += 1
        if self.improved(current, self.best):
            self.best = current
            if self.restore:
                snap = True
            if self.baseline is None or self.improved(current, self.baseline):
                self.wait = 0
            return snap, False
        if self.wait >= self.patience and epoch > 0:
            self.stopped = True
            return snap, True
        return snap, False


class StackedEngine:
    """Train many models of one architecture at once (see the module docstring)."""

    name = "stacked"

    def __init__(
        self,
        spec: Spec,
        task: str,
        input_shape: tuple[int, ...],
        n_outputs: int,
        jit: bool = True,
        threads: int | None = None,
    ) -> None:
        from dlrun.models import resolve_compile
        from dlrun.runtime import quiet_tensorflow

        quiet_tensorflow()  # dlrun's XLA flags, read when the first program compiles
        reason = unsupported_reason(spec, task)
        if reason is not None:
            raise ValueError(f"the stacked engine cannot run this spec: {reason}")
        self.spec = spec
        self.task = task
        self.input_shape = tuple(int(d) for d in input_shape)
        self.n_outputs = int(n_outputs)
        self.jit = jit
        self.threads = threads
        cfg = resolve_compile(spec, task)
        self.compile_config = cfg
        self.opt = _OptimizerPlan.from_config(cfg)
        self.loss = _LossPlan.from_config(cfg)
        self.layers, self.wspecs, ref = _plan_model(spec, task, self.input_shape, self.n_outputs)
        self.out_shape = tuple(int(d) for d in ref.output_shape[1:])
        self.slot_names = self.opt.slot_names()
        self.trainable = [i for i, w in enumerate(self.wspecs) if w.trainable]
        self.batch_size = spec.training.batch_size
        self.epochs = spec.training.epochs
        self.callbacks = spec.training.callback_entries
        self._fns: dict[tuple[Any, ...], Any] = {}
        self._metric_cache: dict[tuple[int, ...], list[_MetricPlan]] = {}

    # ------------------------------------------------------------------ sizing
    def _params_per_model(self) -> int:
        return sum(int(np.prod(w.shape)) for w in self.wspecs)

    def _widest(self) -> int:
        widths = [int(np.prod(self.input_shape))]
        for w in self.wspecs:
            widths.append(int(np.prod(w.shape[1:])) if len(w.shape) > 1 else int(w.shape[0]))
        for layer in self.layers:
            if layer.shape:
                widths.append(int(np.prod(layer.shape)))
        return max(widths)

    def models_per_chunk(self, jobs: Sequence[FitJob]) -> int:
        """How many models fit the memory budget (and ``max_models_per_chunk``) at once."""
        params = self._params_per_model()
        n_state = 2 + len(self.slot_names) + (1 if self._needs_best() else 0)
        rows = max(len(j.x_train) for j in jobs)
        vrows = max((len(j.x_val) for j in jobs if j.x_val is not None), default=0)
        feat = int(np.prod(self.input_shape))
        acts = (self.batch_size + vrows) * self._widest() * (2 * len(self.layers) + 2)
        per_model = (params * n_state + acts + (rows + vrows) * (feat + 2)) * BYTES * SAFETY
        budget = self.spec.runtime.memory_budget_mb * 1024 * 1024
        m = max(1, int(budget // per_model))
        cap = self.spec.runtime.max_models_per_chunk
        if cap is not None:
            m = min(m, cap)
        return m

    def _needs_best(self) -> bool:
        return any(name == "EarlyStopping" and args.get("restore_best_weights") for name, args in self.callbacks)

    # ------------------------------------------------------------------ public
    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        """Train ``jobs`` chunk by chunk; yield one result per job, in job order."""
        if not jobs:
            return
        per = self.models_per_chunk(jobs)
        n_chunks = math.ceil(len(jobs) / per)
        size = math.ceil(len(jobs) / n_chunks)  # even chunks: fewer shapes to compile
        for start in range(0, len(jobs), size):
            yield from self._fit_chunk(jobs[start : start + size], on_epoch)

    # ------------------------------------------------------------------ chunk
    def _metrics_for(self, y_shape: tuple[int, ...]) -> list[_MetricPlan]:
        if y_shape not in self._metric_cache:
            self._metric_cache[y_shape] = _metric_plans(self.compile_config.metrics, y_shape, self.out_shape)
        return self._metric_cache[y_shape]

    def _target_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample target shape after Keras' squeeze-or-expand against the output."""
        from keras.src.losses.loss import squeeze_or_expand_to_same_rank

        yt = np.zeros((2, *y_shape), np.float32)
        yp = np.zeros((2, *self.out_shape), np.float32)
        a, _ = squeeze_or_expand_to_same_rank(yt, yp)
        return tuple(int(d) for d in a.shape[1:])

    def _fit_chunk(self, jobs: list[FitJob], on_epoch: EpochCallback | None) -> Iterator[FitResult]:
        import tensorflow as tf

        t0 = time.perf_counter()
        m_count = len(jobs)
        y_shape = tuple(jobs[0].y_train.shape[1:])
        metrics = self._metrics_for(y_shape)
        t_shape = self._target_shape(y_shape)

        x, y, cw, n = self._pad(jobs, "train")
        has_val = [j.x_val is not None and j.y_val is not None and len(j.x_val) > 0 for j in jobs]
        if any(has_val):
            xv, yv, _, nv = self._pad(jobs, "val")
        else:
            xv = np.zeros((m_count, 1, *self.input_shape), np.float32)
            yv = np.zeros((m_count, 1, *t_shape), np.float32)
            nv = np.zeros((m_count,), np.int32)
        y = y.reshape((m_count, y.shape[1], *t_shape))
        yv = yv.reshape((m_count, yv.shape[1], *t_shape))
        init = self._initial_weights(jobs)
        keys = np.array([_seed_for(j.seed, 2) for j in jobs], dtype=np.uint32)

        # Independent groups of equal size, one per core: XLA runs one program on one
        # thread, TensorFlow releases the GIL, so the groups train in parallel threads.
        n_groups = self._n_groups(m_count)
        g_size = math.ceil(m_count / n_groups)
        order = np.arange(n_groups * g_size) % m_count  # the last group may repeat models (ghosts)
        groups: list[dict[str, Any]] = []
        for gi in range(n_groups):
            sel = order[gi * g_size : (gi + 1) * g_size]
            real = np.arange(gi * g_size, (gi + 1) * g_size) < m_count
            params = [tf.constant(p[sel]) for p in init]
            groups.append(
                {
                    "sel": sel,
                    "real": real,
                    "params": params,
                    "slots": [
                        [
                            tf.fill(params[i].shape, tf.constant(self.opt.slot_init(nm), tf.float32))
                            for nm in self.slot_names
                        ]
                        for i in self.trainable
                    ],
                    "step": tf.zeros((len(sel),), tf.float32),
                    "u": tf.ones((len(sel),), tf.float32),
                    "best": list(params) if self._needs_best() else None,
                    "data": {
                        "x": tf.constant(x[sel]),
                        "y": tf.constant(y[sel]),
                        "cw": tf.constant(cw[sel]),
                        "n": tf.constant(n[sel]),
                        "xv": tf.constant(xv[sel]),
                        "yv": tf.constant(yv[sel]),
                        "nv": tf.constant(nv[sel]),
                        "keys": tf.constant(keys[sel]),
                    },
                }
            )
        epoch_fn = self._epoch_function(len(metrics), metrics)

        stoppers = [self._make_stoppers(metrics) for _ in jobs]
        history: list[dict[str, list[float]]] = [{} for _ in jobs]
        start_epoch = np.array([max(0, int(j.initial_epoch)) for j in jobs])
        stopped = np.zeros(m_count, bool)
        epochs_run = np.zeros(m_count, int)
        names = ["loss"] + [mp.name for mp in metrics]
        pool = ThreadPoolExecutor(max_workers=n_groups) if n_groups > 1 else None

        def run(g: dict[str, Any], epoch: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            act = active[g["sel"]] & g["real"]
            out = epoch_fn(
                tuple(g["params"]),
                tuple(tuple(sl) for sl in g["slots"]),
                g["step"],
                g["u"],
                g["data"],
                tf.constant(epoch, tf.int32),
                tf.constant(act),
            )
            params, slots_t, g["step"], g["u"], train_vals, val_vals = out
            g["params"] = list(params)
            g["slots"] = [list(sl) for sl in slots_t]
            return np.asarray(train_vals), np.asarray(val_vals)

        try:
            for epoch in range(int(start_epoch.min()), self.epochs):
                active = (~stopped) & (start_epoch <= epoch)
                if not active.any():
                    break
                if pool is not None:
                    futures = [pool.submit(run, g, epoch, active) for g in groups]
                    outs = [f.result() for f in futures]
                else:
                    outs = [run(g, epoch, active) for g in groups]
                tv = np.zeros((len(names), m_count), np.float32)
                vv = np.zeros((len(names), m_count), np.float32)
                for g, (t_vals, v_vals) in zip(groups, outs):
                    dest = np.asarray(g["sel"][g["real"]], dtype=np.int64)
                    tv[:, dest] = t_vals[:, g["real"]]
                    vv[:, dest] = v_vals[:, g["real"]]
                snap = np.zeros(m_count, bool)
                sums: dict[str, float] = {}
                for m in np.flatnonzero(active):
                    logs = {k: float(tv[i, m]) for i, k in enumerate(names)}
                    if has_val[m]:
                        logs.update({f"val_{k}": float(vv[i, m]) for i, k in enumerate(names)})
                    for k, v in logs.items():
                        history[m].setdefault(k, []).append(v)
                        sums[k] = sums.get(k, 0.0) + v
                    epochs_run[m] += 1
                    for st in stoppers[m]:
                        snap_now, stop = st.on_epoch_end(epoch, logs)
                        snap[m] |= snap_now
                        stopped[m] |= stop
                if snap.any():
                    for g in groups:
                        if g["best"] is not None:
                            sel = tf.constant(snap[g["sel"]] & g["real"])
                            g["best"] = [self._select(sel, p, b) for p, b in zip(g["params"], g["best"])]
                if on_epoch is not None:
                    k_act = int(active.sum())
                    on_epoch(
                        EpochEvent(
                            keys=tuple(jobs[m].key for m in np.flatnonzero(active)),
                            epoch=epoch + 1,
                            epochs=self.epochs,
                            logs={k: v / k_act for k, v in sums.items()},
                        )
                    )
        finally:
            if pool is not None:
                pool.shutdown()

        restore = np.array([any(st.restore and st.has_best_weights for st in sts) for sts in stoppers])
        final = [np.zeros((m_count, *ws.shape), np.float32) for ws in self.wspecs]
        for g in groups:
            mine = g["sel"][g["real"]]
            for i, p in enumerate(g["params"]):
                val = np.asarray(p)[g["real"]]
                if g["best"] is not None:
                    best = np.asarray(g["best"][i])[g["real"]]
                    val = np.where(restore[mine].reshape((-1,) + (1,) * (val.ndim - 1)), best, val)
                final[i][mine] = val
        train_pred = self._predict(final, [j.x_train for j in jobs])
        test_pred = self._predict(final, [j.x_test for j in jobs])
        seconds = (time.perf_counter() - t0) / m_count
        for idx, job in enumerate(jobs):
            tp = train_pred[idx]
            assert tp is not None
            yield FitResult(
                repeat=job.repeat,
                fold=job.fold,
                history=history[idx],
                train_pred=tp,
                test_pred=test_pred[idx],
                epochs_run=int(epochs_run[idx]),
                seconds=seconds,
                engine=self.name,
                weights=[w[idx].copy() for w in final],
            )

    def _n_groups(self, m_count: int) -> int:
        """Parallel groups for a chunk of ``m_count`` models: one per core, at least 16 models each."""
        if self.threads is not None:
            cores = self.threads
        else:
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not Linux
                cores = os.cpu_count() or 1
        return max(1, min(cores, m_count // 16))

    @staticmethod
    def _select(mask: Any, a: Any, b: Any) -> Any:
        import tensorflow as tf

        return tf.where(tf.reshape(mask, (-1,) + (1,) * (len(a.shape) - 1)), a, b)

    def _make_stoppers(self, metrics: list[_MetricPlan]) -> list[_EarlyStop]:
        out = []
        directions = {"loss": "down"} | {mp.name: mp.direction for mp in metrics}
        for _name, args in self.callbacks:
            monitor = str(args.get("monitor", "val_loss"))
            mode = args.get("mode", "auto")
            if mode == "auto":
                d = directions.get(monitor.removeprefix("val_"))
                if d is None:
                    raise ValueError(
                        f"EarlyStopping callback received monitor={monitor}, but Keras isn't able to automatically "
                        "determine whether that metric should be maximized or minimized. Pass `mode='max'` in "
                        "order to monitor based on the highest metric value, or pass `mode='min'` in order to "
                        "use the lowest value."
                    )
                mode = "max" if d == "up" else "min"
            baseline = args.get("baseline")
            out.append(
                _EarlyStop(
                    monitor=monitor,
                    min_delta=abs(float(args.get("min_delta", 0.0))),
                    patience=int(args.get("patience", 0)),
                    sign=1.0 if mode == "max" else -1.0,
                    baseline=None if baseline is None else float(baseline),
                    restore=bool(args.get("restore_best_weights", False)),
                    start_from_epoch=int(args.get("start_from_epoch", 0)),
                )
            )
        return out

    # ------------------------------------------------------------------ data
    def _pad(self, jobs: list[FitJob], which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xs = [j.x_train if which == "train" else j.x_val for j in jobs]
        ys = [j.y_train if which == "train" else j.y_val for j in jobs]
        n = np.array([0 if v is None else len(v) for v in xs], np.int32)
        nmax = max(1, int(n.max()))
        y_shape = tuple(jobs[0].y_train.shape[1:])
        x = np.zeros((len(jobs), nmax, *self.input_shape), np.float32)
        y = np.zeros((len(jobs), nmax, *y_shape), np.float32)
        cw = np.zeros((len(jobs), nmax), np.float32)
        for m, (xi, yi, job) in enumerate(zip(xs, ys, jobs)):
            if xi is None or yi is None:
                continue
            k = len(xi)
            x[m, :k] = np.asarray(xi, np.float32).reshape((k, *self.input_shape))
            y[m, :k] = np.asarray(yi, np.float32).reshape((k, *y_shape))
            cw[m, :k] = _class_weights(np.asarray(yi), job.class_weight if which == "train" else None)
        return x, y, cw, n

    def _initial_weights(self, jobs: list[FitJob]) -> list[np.ndarray]:
        stacked = []
        cache: dict[int, np.ndarray] = {}
        for i, ws in enumerate(self.wspecs):
            per = []
            for job in jobs:
                if job.initial_weights is not None:
                    w = np.asarray(job.initial_weights[i], np.float32)
                    if w.shape != ws.shape:
                        raise ValueError(f"initial_weights[{i}] has shape {w.shape}, expected {ws.shape}")
                    per.append(w)
                else:
                    per.append(_init_weight(ws, job.seed, i, cache))
            stacked.append(np.stack(per))
        return stacked

    # ------------------------------------------------------------------ compute
    def _forward(
        self,
        params: Sequence[Any],
        x: Any,
        training: bool,
        valid: Any,
        nb: Any,
        rng: tuple[Any, Any, Any] | None,
    ) -> tuple[Any, dict[int, Any], Any]:
        """Forward pass of all models: ``x`` ``(M, B, ...)`` -> outputs, BN stat updates, activity loss ``(M,)``."""
        import tensorflow as tf

        updates: dict[int, Any] = {}
        act_loss = tf.zeros(tf.shape(x)[:1], tf.float32)
        m_dim = tf.shape(x)[0]
        for li, layer in enumerate(self.layers):
            k = layer.kind
            if k == "Dense":
                w = params[layer.weights["kernel"]]
                if len(x.shape) == 3 and w.shape[-1] == 1:
                    # a (B, I) x (I, 1) product is a poor batched matmul: multiply and reduce
                    x = tf.reduce_sum(x * tf.reshape(w, [m_dim, 1, w.shape[1]]), axis=-1, keepdims=True)
                elif len(x.shape) == 3:
                    x = _batched_dense(x, w)
                else:
                    x = tf.einsum("mb...i,mio->mb...o", x, w)
                if "bias" in layer.weights:
                    b = params[layer.weights["bias"]]
                    x = x + tf.reshape(b, [m_dim] + [1] * (len(x.shape) - 2) + [b.shape[-1]])
                if layer.activation is not None:
                    x = layer.activation(x)
            elif k == "Activation":
                assert layer.activation is not None
                x = layer.activation(x)
            elif k == "Dropout":
                if training and layer.rate > 0 and rng is not None:
                    keys, epoch, step = rng
                    u = _uniform(keys, x.shape if None not in x.shape else tf.shape(x), epoch, step, li)
                    x = tf.where(u >= layer.rate, x / (1.0 - layer.rate), tf.zeros_like(x))
            elif k == "GaussianNoise":
                if training and layer.rate > 0 and rng is not None:
                    keys, epoch, step = rng
                    u1 = _uniform(keys, x.shape, epoch, step, li, 1)
                    u2 = _uniform(keys, x.shape, epoch, step, li, 2)
                    z = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)
                    x = x + layer.rate * z
            elif k == "BatchNormalization":
                bshape = [m_dim] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
                wmap = layer.weights
                mm = params[wmap["moving_mean"]]
                mv = params[wmap["moving_variance"]]
                if training:
                    axes = list(range(1, len(x.shape) - 1))
                    vmask = tf.reshape(valid, [m_dim, -1] + [1] * (len(x.shape) - 2))
                    count = tf.reshape(tf.maximum(nb, 1.0), [m_dim] + [1] * (len(x.shape) - 1))
                    count = count * float(np.prod(x.shape[2:-1])) if len(x.shape) > 3 else count
                    mean = tf.reduce_sum(x * vmask, axis=axes, keepdims=True) / count
                    var = tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)) * vmask, axis=axes, keepdims=True) / count
                    mean_f = tf.reshape(mean, tf.shape(mm))
                    var_f = tf.reshape(var, tf.shape(mv))
                    updates[wmap["moving_mean"]] = mm * layer.momentum + mean_f * (1.0 - layer.momentum)
                    updates[wmap["moving_variance"]] = mv * layer.momentum + var_f * (1.0 - layer.momentum)
                else:
                    mean = tf.reshape(mm, bshape)
                    var = tf.reshape(mv, bshape)
                inv = tf.math.rsqrt(var + layer.epsilon)
                if "gamma" in wmap:
                    inv = inv * tf.reshape(params[wmap["gamma"]], bshape)
                offset = tf.reshape(params[wmap["beta"]], bshape) if "beta" in wmap else 0.0
                x = x * inv + (offset - mean * inv)
            elif k in ("Flatten", "Reshape"):
                x = tf.reshape(x, [m_dim, tf.shape(x)[1], *layer.shape])
            if layer.act_reg is not None:
                vm = tf.reshape(valid, [m_dim, -1] + [1] * (len(x.shape) - 2))
                axes = list(range(1, len(x.shape)))
                l1, l2 = layer.act_reg
                r = tf.zeros_like(act_loss)
                if l1:
                    r += l1 * tf.reduce_sum(tf.abs(x) * vm, axis=axes)
                if l2:
                    r += l2 * tf.reduce_sum(tf.square(x) * vm, axis=axes)
                act_loss = act_loss + r / tf.maximum(nb, 1.0)
        return x, updates, act_loss

    def _weight_reg(self, params: Sequence[Any], m_dim: Any) -> Any:
        import tensorflow as tf

        total = tf.zeros((m_dim,), tf.float32)
        for i, ws in enumerate(self.wspecs):
            if ws.regularizer is None:
                continue
            l1, l2 = ws.regularizer
            axes = list(range(1, len(params[i].shape)))
            if l1:
                total += l1 * tf.reduce_sum(tf.abs(params[i]), axis=axes)
            if l2:
                total += l2 * tf.reduce_sum(tf.square(params[i]), axis=axes)
        return total

    def _per_sample_loss(self, y: Any, out: Any) -> Any:
        import tensorflow as tf

        val = self.loss.fn(y, out, **self.loss.kwargs)
        if len(val.shape) > 2:
            val = tf.reduce_mean(val, axis=list(range(2, len(val.shape))))
        return val

    @staticmethod
    def _per_sample_metric(mp: _MetricPlan, y: Any, out: Any) -> Any:
        import tensorflow as tf

        if mp.kind == "rmse":
            val = tf.square(out - y)
        else:
            assert mp.fn is not None
            val = mp.fn(y, out, **mp.kwargs)
        val = tf.cast(val, tf.float32)
        if len(val.shape) > 2:
            val = tf.reduce_mean(val, axis=list(range(2, len(val.shape))))
        return val

    def _epoch_function(self, n_metrics: int, metrics: list[_MetricPlan]) -> Any:
        key = (n_metrics, tuple(mp.name for mp in metrics))
        if key in self._fns:
            return self._fns[key]
        import tensorflow as tf

        engine = self
        opt = self.opt
        bsz = self.batch_size
        shuffle = self.spec.training.shuffle
        trainable = self.trainable
        n_w = len(self.wspecs)

        def bcast(v: Any, like: Any) -> Any:
            return tf.reshape(v, [-1] + [1] * (len(like.shape) - 1))

        def epoch_fn(params, slots, step, u_product, data, epoch, active):  # type: ignore[no-untyped-def]
            x, y, cw, n, keys = data["x"], data["y"], data["cw"], data["n"], data["keys"]
            m_dim = tf.shape(x)[0]
            nmax = x.shape[1]
            n_steps = -(-nmax // bsz)
            total = n_steps * bsz
            pos = tf.range(total, dtype=tf.int32)
            if shuffle:
                bits = _hash_bits(keys, (x.shape[0], nmax), epoch, 0xABCD)
                score = tf.cast(bits, tf.int64)
                rows = tf.range(nmax, dtype=tf.int64)[None, :]
                pad_rows = tf.cast(rows, tf.int32) >= n[:, None]
                score = tf.where(pad_rows, (1 << 40) + rows, score)
                perm = tf.cast(tf.argsort(score, axis=1, stable=True), tf.int32)
            else:
                perm = tf.tile(tf.range(nmax, dtype=tf.int32)[None, :], [m_dim, 1])
            if total > nmax:
                perm = tf.concat([perm, tf.fill([m_dim, total - nmax], nmax - 1)], axis=1)
            perm = tf.reshape(perm, [m_dim, n_steps, bsz])
            validpos = tf.cast(tf.reshape(pos, [1, n_steps, bsz]) < n[:, None, None], tf.float32)

            def body(s, params, slots, step, u_product, acc):  # type: ignore[no-untyped-def]
                idx = perm[:, s]
                valid = validpos[:, s]
                nb = tf.reduce_sum(valid, axis=1)
                live = tf.logical_and(active, nb > 0)
                xb = tf.gather(x, idx, batch_dims=1)
                yb = tf.gather(y, idx, batch_dims=1)
                wb = tf.gather(cw, idx, batch_dims=1) * valid
                tvars = [params[i] for i in trainable]
                with tf.GradientTape() as tape:
                    tape.watch(tvars)
                    full = list(params)
                    for j, i in enumerate(trainable):
                        full[i] = tvars[j]
                    out, updates, act = engine._forward(full, xb, True, valid, nb, (keys, epoch, s))
                    per = engine._per_sample_loss(yb, out)
                    data_loss = tf.reduce_sum(per * wb, axis=1) / tf.maximum(nb, 1.0)
                    loss_m = data_loss + act + engine._weight_reg(full, m_dim)
                    total_loss = tf.reduce_sum(loss_m)
                grads = tape.gradient(total_loss, tvars)
                grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, tvars)]
                grads = engine._clip(grads)
                livef = tf.cast(live, tf.float32)
                lr_m = opt.learning_rate(step)
                t = step + 1.0
                new_u = u_product
                extra: dict[str, Any] = {}
                if opt.kind == "Nadam":
                    b1 = opt.hyper["beta_1"]
                    new_u = u_product * b1 * (1.0 - 0.5 * tf.pow(tf.constant(0.96, tf.float32), t))
                    extra["u_product"] = new_u
                new_params = list(params)
                new_slots = []
                for j, i in enumerate(trainable):
                    v = params[i]
                    g = grads[j]
                    lr = bcast(lr_m, v)
                    tt = bcast(t, v)
                    ex = {k2: bcast(val, v) for k2, val in extra.items()}
                    nv = v
                    if opt.weight_decay is not None:
                        nv = nv - nv * opt.weight_decay * lr
                    nv, ns = opt.update(nv, g, list(slots[j]), tt, lr, ex)
                    con = engine.wspecs[i].constraint
                    if con is not None:
                        nv = con(nv)
                    keep = bcast(live, v)
                    new_params[i] = tf.where(keep, nv, v)
                    new_slots.append(tuple(tf.where(keep, a, b) for a, b in zip(ns, slots[j])))
                for i, upd in updates.items():
                    new_params[i] = tf.where(bcast(live, upd), upd, params[i])
                step = step + livef
                new_u = tf.where(live, new_u, u_product)
                mets = [engine._per_sample_metric(mp, yb, out) for mp in metrics]
                rows = [nb * loss_m] + [tf.reduce_sum(v * valid, axis=1) for v in mets]
                acc = acc + tf.stack(rows) * livef[None, :]
                return s + 1, tuple(new_params), tuple(new_slots), step, new_u, acc

            acc0 = tf.zeros([1 + n_metrics, m_dim], tf.float32)
            _, params, slots, step, u_product, acc = tf.while_loop(
                lambda s, *_: s < n_steps,
                body,
                (tf.constant(0), tuple(params), tuple(slots), step, u_product, acc0),
                maximum_iterations=n_steps,
            )
            count = tf.reduce_sum(validpos, axis=[1, 2])
            train_vals = acc / tf.maximum(count, 1.0)[None, :]
            train_vals = engine._finish_metrics(train_vals, metrics)
            val_vals = engine._evaluate(params, data["xv"], data["yv"], data["nv"], metrics)
            return params, slots, step, u_product, train_vals, val_vals

        fn = tf.function(epoch_fn, jit_compile=self.jit, autograph=False)
        del n_w
        self._fns[key] = fn
        return fn

    def _finish_metrics(self, vals: Any, metrics: list[_MetricPlan]) -> Any:
        import tensorflow as tf

        rows = [vals[0]]
        for i, mp in enumerate(metrics):
            rows.append(tf.sqrt(vals[i + 1]) if mp.kind == "rmse" else vals[i + 1])
        return tf.stack(rows)

    def _evaluate(self, params: Sequence[Any], xv: Any, yv: Any, nv: Any, metrics: list[_MetricPlan]) -> Any:
        """Keras ``evaluate``: mean per-sample loss + activity and weight regularization, and metrics."""
        import tensorflow as tf

        m_dim = tf.shape(xv)[0]
        valid = tf.cast(tf.range(xv.shape[1])[None, :] < nv[:, None], tf.float32)
        nvf = tf.cast(nv, tf.float32)
        # activity regularization is normalized per batch in Keras; over a whole pass that is the
        # sum over rows divided by the number of rows, which _forward gives with nb = n
        out, _, act = self._forward(params, xv, False, valid, nvf, None)
        per = self._per_sample_loss(yv, out)
        loss = tf.reduce_sum(per * valid, axis=1) / tf.maximum(nvf, 1.0) + act + self._weight_reg(params, m_dim)
        rows = [loss]
        for mp in metrics:
            v = tf.reduce_sum(self._per_sample_metric(mp, yv, out) * valid, axis=1) / tf.maximum(nvf, 1.0)
            rows.append(tf.sqrt(v) if mp.kind == "rmse" else v)
        return tf.stack(rows)

    def _clip(self, grads: list[Any]) -> list[Any]:
        import tensorflow as tf

        opt = self.opt
        if opt.clipnorm and opt.clipnorm > 0:
            return [tf.clip_by_norm(g, opt.clipnorm, axes=list(range(1, len(g.shape)))) for g in grads]
        if opt.global_clipnorm and opt.global_clipnorm > 0:
            sq = tf.add_n([tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape)))) for g in grads])
            norm = tf.sqrt(sq)
            c = opt.global_clipnorm
            scale = c * tf.minimum(1.0 / norm, 1.0 / c) + (norm - norm)
            return [g * tf.reshape(scale, [-1] + [1] * (len(g.shape) - 1)) for g in grads]
        if opt.clipvalue and opt.clipvalue > 0:
            return [tf.clip_by_value(g, -opt.clipvalue, opt.clipvalue) for g in grads]
        return grads

    def _predict(self, weights: list[np.ndarray], xs: list[np.ndarray | None]) -> list[np.ndarray | None]:
        """Inference-mode outputs of each model on its own rows, in row blocks."""
        import tensorflow as tf

        m_count = len(xs)
        sizes = [0 if v is None else len(v) for v in xs]
        if max(sizes, default=0) == 0:
            return [None if v is None else np.zeros((0, *self.out_shape), np.float32) for v in xs]
        fn = self._fns.get(("predict",))
        if fn is None:

            def pred(params, x):  # type: ignore[no-untyped-def]
                m_dim = tf.shape(x)[0]
                ones = tf.ones(tf.shape(x)[:2], tf.float32)
                out, _, _ = self._forward(params, x, False, ones, tf.ones([m_dim], tf.float32), None)
                return out

            fn = tf.function(pred, jit_compile=False, autograph=False, reduce_retracing=True)
            self._fns[("predict",)] = fn
        params = tuple(tf.constant(w) for w in weights)
        block = 4096
        nmax = max(sizes)
        outs: list[list[np.ndarray]] = [[] for _ in range(m_count)]
        for start in range(0, nmax, block):
            stop = min(nmax, start + block)
            xb = np.zeros((m_count, stop - start, *self.input_shape), np.float32)
            for m, v in enumerate(xs):
                if v is not None and start < len(v):
                    part = np.asarray(v[start:stop], np.float32)
                    xb[m, : len(part)] = part.reshape((len(part), *self.input_shape))
            res = np.asarray(fn(params, tf.constant(xb)))
            for m, v in enumerate(xs):
                if v is not None and start < len(v):
                    outs[m].append(res[m, : min(stop, len(v)) - start])
        return [
            None if v is None else np.concatenate(outs[m]) if outs[m] else np.zeros((0, *self.out_shape))
            for m, v in enumerate(xs)
        ]


def _class_weights(y: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray:
    """Per-row weights as Keras derives them from ``class_weight`` (1 without one)."""
    if not class_weight:
        return np.ones(len(y), np.float32)
    if y.ndim > 1 and y.shape[-1] > 1:
        cls = np.argmax(y, axis=-1)
    else:
        cls = np.round(y.reshape(len(y))).astype(np.int64)
    table = {int(k): float(v) for k, v in class_weight.items()}
    return np.array([table.get(int(c), 1.0) for c in cls], np.float32)
