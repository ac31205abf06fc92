"""Per-model scalars: which of a spec's values may differ per model inside one stacked program.

This module is the one definition of which specs share a program (:func:`program_key`,
:func:`share_groups`). It imports neither Keras nor JAX: a search or sweep groups its specs
before any engine is built.

A scalar belongs here only when the stacked engine really trains each model with its own
value inside one compiled program:

- optimizer scalars that Keras only compares with 0 while it traces and otherwise computes
  with through Python arithmetic or ``ops.cast`` (``learning_rate`` is an optimizer variable
  set per model; the others are set on the optimizer as :class:`Scalar` while the step
  traces): :data:`OPTIMIZER_SCALARS` and :data:`OPTIMIZER_OWN_SCALARS`;
- L1/L2 factors of weight regularizers (``l1``, ``l2``: the regularizer multiplies by them);
- the rate of dropout layers and the stddev of Gaussian noise (the JAX backend's ``dropout``
  puts ``1 - rate`` into ``jax.random.bernoulli``; ``normal(...) * stddev``), so a traced
  per-model value draws exactly what a model built with that value draws.

Not here, so specs that differ in them train in separate programs: optimizer scalars Keras
passes to ``ops.add``/``ops.multiply``/``ops.clip`` as Python floats (``epsilon``, ``rho``,
RMSprop's ``momentum``, ``clipnorm``, ``clipvalue``: the backend converts a float by its value,
so the traced per-model value would be lost), ``initial_accumulator_value`` (Adagrad, Ftrl: it
fills the accumulators when the optimizer is built, once per program), ``GaussianDropout`` and
``AlphaDropout`` rates (Keras turns them into constants with ``math.sqrt``) and every other value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dlrun.spec.schema import Spec, resolved_dict

OPTIMIZER_SCALARS = ("learning_rate", "weight_decay", "global_clipnorm")
"""Scalars every optimizer computes with through Python arithmetic or ``ops.cast`` (the learning
rate is an optimizer variable)."""

OPTIMIZER_OWN_SCALARS = {
    "sgd": ("momentum",),
    "adam": ("beta_1", "beta_2"),
    "adamw": ("beta_1", "beta_2"),
}
"""Further scalars of one optimizer class (by lower-case name) that its update computes with the
same way. Others go into ``ops.add`` or ``ops.multiply`` as Python floats (Adam's ``epsilon``,
RMSprop's ``rho`` and ``momentum``, ``clipnorm``, ``clipvalue``): the backend converts such a
float by its value, so a per-model value would be lost, and specs that differ in them train
in separate programs."""
REGULARIZER_SCALARS = ("l1", "l2")
NOISE_SCALARS = {
    "Dropout": "rate",
    "SpatialDropout1D": "rate",
    "SpatialDropout2D": "rate",
    "SpatialDropout3D": "rate",
    "GaussianNoise": "stddev",
}
"""Noise layers and the argument that may differ per model."""

# spec keys that never reach the compiled program
_NOT_IN_PROGRAM = ("name", "output_dir", "sweep")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hparam_paths(spec: Spec) -> dict[str, float]:
    """The spec's scalars that may differ per model inside one program, by dotted path.

    Paths are the ones ``--set`` takes: ``compile.optimizer.Adam.learning_rate``,
    ``model.layers[0].Dense.kernel_regularizer.L2.l2`` and ``model.layers[0].Dropout.rate``.
    Values are the spec's own (Keras' default where the spec leaves one out is not listed:
    give it in the spec to sweep it).
    """
    out: dict[str, float] = {}
    name, args = spec.compile.optimizer_entry
    own = OPTIMIZER_OWN_SCALARS.get(name.lower(), ())
    for key, val in args.items():
        if (key in OPTIMIZER_SCALARS or key in own) and _number(val):
            out[f"compile.optimizer.{name}.{key}"] = float(val)
    for i, (lname, largs) in enumerate(spec.model.entries):
        noise = NOISE_SCALARS.get(lname)
        if noise is not None and _number(largs.get(noise)):
            out[f"model.layers[{i}].{lname}.{noise}"] = float(largs[noise])
        for key, val in largs.items():
            if key.endswith("_regularizer") and isinstance(val, dict) and len(val) == 1:
                rname, rargs = next(iter(val.items()))
                for rk, rv in (rargs or {}).items():
                    if rk in REGULARIZER_SCALARS and _number(rv):
                        out[f"model.layers[{i}].{lname}.{key}.{rname}.{rk}"] = float(rv)
    return out


def _without(raw: Any, paths: set[str], prefix: str = "") -> Any:
    """``raw`` (a resolved spec dict) with the leaves at ``paths`` blanked out."""
    if isinstance(raw, dict):
        return {k: _without(v, paths, f"{prefix}.{k}" if prefix else str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_without(v, paths, f"{prefix}[{i}]") for i, v in enumerate(raw)]
    return None if prefix in paths else raw


def program_key(spec: Spec) -> str:
    """What two specs must share to train in one program: everything but the per-model scalars' values.

    The scalars' signs stay in the key: Keras branches on ``momentum != 0``, ``clipnorm > 0``
    or ``rate > 0`` while it traces, so every model of a program must take the same branch.
    """
    # resolved_dict spells paths as --set does, so hparam_paths' paths address its leaves
    blanked = _without(resolved_dict(spec), set(hparam_paths(spec)))
    for key in _NOT_IN_PROGRAM:
        blanked.pop(key, None)
    signs = {k: (v > 0) - (v < 0) for k, v in hparam_paths(spec).items()}
    return json.dumps([blanked, sorted(signs.items())], sort_keys=True, default=str)


def share_groups(specs: Sequence[Spec]) -> list[list[int]]:
    """Group specs that can train as one stacked program (equal :func:`program_key`).

    Returns:
        Lists of indices into ``specs``, in first-seen order; train each with ``fit_many``.
    """
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(program_key(spec), []).append(i)
    return list(groups.values())


# ----------------------------------------------------------------------------- setting them while tracing
def target(model: Any, optimizer: Any, path: str) -> tuple[Any, str]:
    """The Keras object and attribute a per-model scalar's path sets.

    ``learning_rate`` has none (``None``): it is an optimizer variable, set per model in the
    stacked optimizer state instead.
    """
    parts = path.split(".")
    if parts[0] == "compile":
        attr = parts[-1]
        return (None, attr) if attr == "learning_rate" else (optimizer, attr)
    layer = model.layers[int(parts[1].split("[")[1].rstrip("]"))]
    if len(parts) == 4:  # model.layers[i].Dropout.rate
        return layer, parts[3]
    # model.layers[i].Name.<x>_regularizer.Reg.<l1|l2>
    return getattr(layer, parts[3]), parts[-1]


class Overrides:
    """Within ``with``: the optimizer's, regularizers' and noise layers' per-model scalars are
    :class:`Scalar` s carrying this model's traced values; restored on exit."""

    def __init__(self, model: Any, optimizer: Any, hp: dict[str, Any]) -> None:
        self.targets = [(*target(model, optimizer, path), value) for path, value in hp.items()]
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        for obj, attr, value in self.targets:
            if obj is None:
                continue
            self.saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, Scalar(getattr(obj, attr), value))

    def __exit__(self, *exc: Any) -> None:
        for obj, attr, old in reversed(self.saved):
            setattr(obj, attr, old)
        self.saved.clear()


class Scalar(float):
    """A Python float for Keras' control flow (``momentum != 0``) that computes with a traced value.

    Keras optimizers branch on their scalars while tracing and compute with them; the
    branch must agree for all models of a program (:func:`program_key` keeps the signs), the
    arithmetic uses each model's own value.
    """

    traced: Any

    def __new__(cls, base: Any, traced: Any) -> Scalar:
        obj = super().__new__(cls, float(base) if base is not None else 0.0)
        obj.traced = traced
        return obj

    def __jax_array__(self) -> Any:
        return self.traced

    def __add__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced + o

    def __radd__(self, o: Any) -> Any:  # type: ignore[override]
        return o + self.traced

    def __sub__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced - o

    def __rsub__(self, o: Any) -> Any:  # type: ignore[override]
        return o - self.traced

    def __mul__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced * o

    def __rmul__(self, o: Any) -> Any:  # type: ignore[override]
        return o * self.traced

    def __truediv__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced / o

    def __rtruediv__(self, o: Any) -> Any:  # type: ignore[override]
        return o / self.traced

    def __pow__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced**o

    def __rpow__(self, o: Any) -> Any:  # type: ignore[override]
        return o**self.traced

    def __neg__(self) -> Any:
        return -self.traced
