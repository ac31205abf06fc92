"""The loops around :class:`~dlrun.engines.stacked.step.Step`: steps and epochs of one model in
``lax.scan``, every model of a block under ``jax.vmap``, the whole in one ``jax.jit`` program.

Validation and held-out (``test_``) scores and early stopping run inside the program, so a
block's epochs need no host round trip.
"""

from __future__ import annotations

import functools
from typing import Any

import dlrun.engines.stacked.early_stopping as early_stopping
from dlrun.engines.stacked.early_stopping import Stop
from dlrun.engines.stacked.step import Step


def _select(ok: Any, new: Any, old: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def model_epochs(
    step: Step,
    stops: list[Stop],
    state: Any,
    es: Any,
    data: Any,
    hp: Any,
    perms: Any,
    epochs: Any,
    parts: tuple[bool, bool],
    gated: bool = True,
) -> Any:
    """One model through the epochs of ``epochs``: ``perms`` ``(E, steps, B)`` are its batches' rows.

    Args:
        parts: Whether any model of the block has validation and test rows (else those
            scores are NaN placeholders and cost nothing).
        gated: Some step or epoch of some model must leave it untouched (fewer steps, early
            stopping, a later start); else every step updates every model and selects are skipped.

    Returns:
        ``(state, es, logs (E, 3K), active (E,))``.
    """
    import jax
    import jax.numpy as jnp

    n_logs = len(step.log_names)

    def epoch_body(carry: Any, inp: Any) -> Any:
        state, es = carry
        perm, epoch = inp
        active = es["running"] & (epoch >= data["start"])
        mv0 = state["mv"]

        def step_body(c: Any, idx: Any) -> Any:
            st, lsum, cnt = c
            valid = idx < data["n_train"]
            x = data["x_train"][idx]
            y = data["y_train"][idx]
            w = data["w_train"][idx] * valid
            loss, new = step.train_step(st, (x, y, w, valid), hp)
            nval = jnp.sum(valid.astype(jnp.float32))
            ok = active & (nval > 0)
            st = _select(ok, new, st) if gated else new
            return (st, lsum + jnp.where(ok, loss * nval, 0.0), cnt + jnp.where(ok, nval, 0.0)), None

        init = ({k: state[k] for k in ("tv", "ntv", "ov", "mv")}, jnp.float32(0.0), jnp.float32(0.0))
        (st, lsum, cnt), _ = jax.lax.scan(step_body, init, perm)
        train_logs = jnp.stack([lsum / jnp.maximum(cnt, 1.0), *step.metric_results(st["mv"])])
        blank = jnp.full((n_logs,), jnp.nan, jnp.float32)
        fresh = {**st, "mv": mv0}  # scores of a part start from fresh metric variables, as evaluate does
        val_logs = step.test_step(fresh, (data["x_val"], data["y_val"], data["n_val"]), hp) if parts[0] else blank
        test_logs = step.test_step(fresh, (data["x_test"], data["y_test"], data["n_test"]), hp) if parts[1] else blank
        logs = jnp.concatenate([train_logs, val_logs, test_logs])
        es = early_stopping.update(stops, n_logs, es, st, logs, epoch, active, data)
        return (fresh, es), (logs, active)

    (state, es), (logs, active) = jax.lax.scan(epoch_body, (state, es), (perms, epochs))
    return state, es, logs, active


def block_program(step: Step, stops: list[Stop], parts: tuple[bool, bool], gated: bool, jit: bool = True) -> Any:
    """``(state, es, data, hp, perms, epochs) -> (state, es, logs, active)`` for a block of models:
    :func:`model_epochs` vmapped over the leading model axis of all but ``epochs``."""
    import jax

    block = functools.partial(model_epochs, step, stops, parts=parts, gated=gated)
    fn = jax.vmap(block, in_axes=(0, 0, 0, 0, 0, None))
    return jax.jit(fn) if jit else fn


def predict_program(step: Step) -> Any:
    """``(tv, ntv, x) -> outputs`` for a block of models, vmapped and jitted."""
    import jax

    return jax.jit(jax.vmap(step.predict_step))
