"""Keras' ``EarlyStopping`` for every model of a program, kept inside the program.

Each model carries its own wait counters, best values and (with ``restore_best_weights``) best
weights; a stopped model is frozen, so the epoch loop runs on without a host round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import dlrun.engines.keras_compat as kc
from dlrun.engines.stacked.data import put


@dataclass
class Stop:
    """One ``EarlyStopping`` callback, as numbers the program compares with."""

    monitor: str
    index: int  # position of the monitored value in the epoch's log vector
    sign: float  # +1: larger is better, -1: smaller is better
    min_delta: float  # Keras' signed min_delta (negative for mode min)
    patience: int
    baseline: float | None
    restore: bool
    start_from_epoch: int


def stops_from(callbacks: list[Any], log_names: list[str], model: Any) -> list[Stop]:
    """The callbacks that can stop training (one whose monitor is not logged never stops, as in Keras)."""
    out = []
    for cb in callbacks:
        monitor = str(cb.monitor)
        base = monitor.removeprefix("val_")
        if base not in log_names:
            continue  # Keras warns and never stops
        mode, delta = kc.early_stopping_rule(cb, model)
        out.append(
            Stop(
                monitor=monitor,
                index=log_names.index(base),
                sign=1.0 if mode == "max" else -1.0,
                min_delta=delta,
                patience=int(cb.patience),
                baseline=None if cb.baseline is None else float(cb.baseline),
                restore=bool(cb.restore_best_weights),
                start_from_epoch=int(cb.start_from_epoch),
            )
        )
    return out


def restores(stops: list[Stop]) -> bool:
    """Whether some callback keeps the best weights."""
    return any(s.restore for s in stops)


def initial(stops: list[Stop], m: int, state: dict[str, Any]) -> dict[str, Any]:
    """The stopping state of ``m`` models before their first epoch (``state``: their variables)."""
    k = max(1, len(stops))
    restore = restores(stops)
    return {
        "running": put(np.ones((m,), bool)),
        "wait": put(np.zeros((m, k), np.int32)),
        "best": put(np.full((m, k), np.nan, np.float32)),
        "has_best": put(np.zeros((m,), bool)),
        "best_tv": list(state["tv"]) if restore else [],
        "best_ntv": list(state["ntv"]) if restore else [],
    }


def update(stops: list[Stop], n_logs: int, es: Any, st: Any, logs: Any, epoch: Any, active: Any, data: Any) -> Any:
    """Keras' ``EarlyStopping.on_epoch_end`` for each callback, for one model; a stopped model stops running.

    ``logs`` holds the training, ``val_`` and ``test_`` values (``n_logs`` each) of this epoch.
    """
    import jax.numpy as jnp

    if not stops:
        return es
    stop_now = jnp.bool_(False)
    snap = jnp.bool_(False)
    wait, best = es["wait"], es["best"]
    new_wait, new_best = [], []
    for c, s in enumerate(stops):
        if s.monitor.startswith("val_"):
            current = logs[n_logs + s.index]
            present = data["n_val"] > 0
        else:
            current = logs[s.index]
            present = jnp.bool_(True)
        look = active & present & (epoch >= s.start_from_epoch)
        ref = best[c]
        first = jnp.isnan(ref)
        improved = first | better(s, current, ref)
        if s.restore:
            snap = snap | (look & (~es["has_best"] | improved))
        w = wait[c] + 1
        beats_base = True if s.baseline is None else better(s, current, jnp.float32(s.baseline))
        w = jnp.where(improved & beats_base, 0, w)
        stop = (~improved) & (w >= s.patience) & (epoch > 0)
        new_wait.append(jnp.where(look, w, wait[c]))
        new_best.append(jnp.where(look & improved, current, ref))
        stop_now = stop_now | (look & stop)
    out = dict(es)
    out["wait"] = jnp.stack(new_wait)
    out["best"] = jnp.stack(new_best)
    out["running"] = es["running"] & ~stop_now
    if restores(stops):
        out["has_best"] = es["has_best"] | snap
        out["best_tv"] = [jnp.where(snap, a, b) for a, b in zip(st["tv"], es["best_tv"])]
        out["best_ntv"] = [jnp.where(snap, a, b) for a, b in zip(st["ntv"], es["best_ntv"])]
    return out


def best_weights(stops: list[Stop], es: Any, tv: list[np.ndarray], ntv: list[np.ndarray]) -> None:
    """Put each model's best weights into ``tv`` and ``ntv`` (in place) where a callback restores them."""
    if not restores(stops):
        return
    restore = np.asarray(es["has_best"])
    for dest, best in ((tv, es["best_tv"]), (ntv, es["best_ntv"])):
        for i, b in enumerate(best):
            b = np.asarray(b)
            dest[i] = np.where(restore.reshape((-1,) + (1,) * (b.ndim - 1)), b, dest[i])


def better(s: Stop, current: Any, ref: Any) -> Any:
    """Keras' ``monitor_op(current - min_delta, ref)``."""
    if s.sign > 0:
        return (current - s.min_delta) > ref
    return (current - s.min_delta) < ref
