"""What the stacked engine can train: :func:`unsupported_reason`, checked before anything is built."""

from __future__ import annotations

import sys

from dlrun.engines.base import check_spec
from dlrun.engines.runtime import backend_name
from dlrun.spec.schema import Spec


def unsupported_reason(spec: Spec, task: str) -> str | None:
    """``None`` when the stacked engine can run ``spec``; else one line naming what and why.

    Raises:
        SpecError: A problem any engine would refuse (e.g. early stopping on ``test_``).
    """
    check_spec(spec)
    # without importing Keras: a support check may run before setup chose the backend
    asked = spec.runtime.backend
    backend = asked if asked != "auto" and "keras" not in sys.modules else backend_name()
    if backend != "jax":
        return f"the stacked engine runs on the JAX backend, and Keras runs on {backend}"
    if spec.runtime.mixed_precision:
        return "runtime.mixed_precision: the stacked engine trains in float32 only"
    for j, (name, _args) in enumerate(spec.training.callback_entries):
        if name != "EarlyStopping":
            return f"training.callbacks[{j}].{name}: the stacked engine supports only the EarlyStopping callback"
    for i, (name, args) in enumerate(spec.model.entries):
        if args.get("activity_regularizer") is not None:
            return (
                f"model.layers[{i}].{name}.activity_regularizer: Keras sums it over the rows of a batch, "
                "which padded batches would change"
            )
    opt_name, opt_args = spec.compile.optimizer_entry
    if opt_args.get("use_ema"):
        return f"compile.optimizer.{opt_name}.use_ema: the stacked engine does not keep moving averages of weights"
    if (opt_args.get("gradient_accumulation_steps") or 1) > 1:
        return f"compile.optimizer.{opt_name}.gradient_accumulation_steps: not supported by the stacked engine"
    if opt_name.lower() in ("lossscaleoptimizer", "multioptimizer"):
        return f"compile.optimizer.{opt_name}: wraps other optimizers; the stacked engine needs one optimizer"
    return None
