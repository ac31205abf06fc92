"""The pure train, test and predict step of one model, as Keras' JAX trainer runs them.

:class:`Step` holds the Keras objects of the one model the stacked engine builds (model,
optimizer, loss, compiled metrics) and never changes them: every variable comes in and goes
out as a value, in the shape of ``keras/src/backend/jax/trainer.py`` (``model.stateless_call``
inside ``jax.value_and_grad``, ``optimizer.stateless_apply``, metrics updated in a
``StatelessScope``). ``jax.vmap``, ``lax.scan`` and ``jit`` are added around it in
:mod:`dlrun.engines.stacked.program`.

A state is ``{"tv": trainable, "ntv": non-trainable, "ov": optimizer, "mv": metric variables}``
(lists of arrays in the Keras objects' own order); ``hp`` maps per-model scalar paths to this
model's values (:mod:`dlrun.engines.stacked.hparams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dlrun.engines.keras_compat as kc
from dlrun.engines.stacked.hparams import Overrides


@dataclass
class Step:
    """Keras' training, test and predict step of one model on padded batches.

    Attributes:
        model: The built, compiled Keras model.
        optimizer: Its optimizer, built on the model's trainable variables.
        loss: The compiled loss object.
        reduction: The loss' reduction (``sum_over_batch_size`` divides by the real rows).
        has_bn: The model has BatchNormalization (padded rows are masked out of its statistics).
        mvars: The compiled metrics' variables.
        metric_objs: ``(metric, weighted)`` of each compiled metric.
        metric_names: Names of the metrics' results, without ``loss``.
    """

    model: Any
    optimizer: Any
    loss: Any
    reduction: str
    has_bn: bool
    mvars: list[Any]
    metric_objs: list[tuple[Any, bool]]
    metric_names: list[str]

    @property
    def log_names(self) -> list[str]:
        """Names of one part's log vector: the loss, then each metric."""
        return ["loss", *self.metric_names]

    def _scaled(self, w: Any, n_rows: int, n_real: Any) -> Any:
        """Sample weights for the loss: Keras divides by the batch size, a padded batch by its real rows."""
        import jax.numpy as jnp

        if self.reduction in ("sum_over_batch_size", "mean"):
            return w * (n_rows / jnp.maximum(n_real, 1.0))
        return w

    def train_step(
        self, state: dict[str, Any], data: tuple[Any, ...], hp: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """One Keras training step: ``data`` is ``(x, y, w, valid)`` of a padded batch.

        Returns:
            ``(loss, state)``: the batch's loss and the updated variables.
        """
        import jax
        import jax.numpy as jnp
        import keras

        x, y, w, valid = data
        model = self.model
        nval = jnp.sum(valid.astype(jnp.float32))
        loss_w = self._scaled(w, valid.shape[0], nval)
        mask = valid if self.has_bn else None
        tv_in = state["tv"]

        def loss_fn(tv: Any) -> Any:
            with Overrides(model, self.optimizer, hp):
                if mask is not None:  # padded rows stay out of BatchNormalization's batch statistics
                    y_pred, ntv, losses = kc.stateless_call_with_row_mask(model, tv, state["ntv"], x, mask)
                else:
                    y_pred, ntv, losses = model.stateless_call(tv, state["ntv"], x, training=True, return_losses=True)
                y_pred = kc.strip_mask(y_pred)
                loss = self.loss(y, y_pred, sample_weight=loss_w)
                if losses:
                    loss = loss + sum(losses)
            return loss, (y_pred, ntv)

        (loss, (y_pred, ntv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv_in)
        with Overrides(model, self.optimizer, hp):
            tv, ov = self.optimizer.stateless_apply(state["ov"], grads, tv_in)
        mv = state["mv"]
        with keras.StatelessScope(state_mapping=list(zip(self.mvars, mv))) as scope:
            self.update_metrics(y, y_pred, w, valid)
        mv2 = [scope.get_current_value(v) if scope.get_current_value(v) is not None else old
               for v, old in zip(self.mvars, mv)]  # fmt: skip
        return loss, {"tv": list(tv), "ntv": list(ntv), "ov": list(ov), "mv": mv2}

    def test_step(self, state: dict[str, Any], data: tuple[Any, ...], hp: dict[str, Any]) -> Any:
        """Inference-mode loss and metrics on one part, as ``evaluate`` gives them.

        ``data`` is ``(x, y, n)``: the part's padded rows and its real row count; ``state["mv"]``
        holds fresh metric variables.

        Returns:
            The log vector (:attr:`log_names`).
        """
        import jax.numpy as jnp
        import keras

        x, y, n = data
        valid = jnp.arange(x.shape[0]) < n
        w = valid.astype(jnp.float32)
        # the regularizers' factors are this model's own, as in its training step
        with Overrides(self.model, self.optimizer, hp):
            y_pred, _, losses = self.model.stateless_call(
                state["tv"], state["ntv"], x, training=False, return_losses=True
            )
            y_pred = kc.strip_mask(y_pred)
            loss = self.loss(y, y_pred, sample_weight=self._scaled(w, x.shape[0], n.astype(jnp.float32)))
            if losses:
                loss = loss + sum(losses)
        with keras.StatelessScope(state_mapping=list(zip(self.mvars, state["mv"]))):
            self.update_metrics(y, y_pred, None, valid)
            res = self.model.get_metrics_result()
        return jnp.stack(
            [jnp.asarray(loss, jnp.float32), *[jnp.asarray(res[k], jnp.float32) for k in self.metric_names]]
        )

    def predict_step(self, tv: Any, ntv: Any, x: Any) -> Any:
        """Inference outputs of one model on ``x``."""
        out, _ = self.model.stateless_call(tv, ntv, x, training=False)
        return kc.strip_mask(out)

    def metric_results(self, mv: Any) -> list[Any]:
        """The metrics' results for the metric variables ``mv``, in :attr:`metric_names` order."""
        import jax.numpy as jnp
        import keras

        with keras.StatelessScope(state_mapping=list(zip(self.mvars, mv))):
            res = self.model.get_metrics_result()
        return [jnp.asarray(res[k], jnp.float32) for k in self.metric_names]

    def update_metrics(self, y: Any, y_pred: Any, w: Any, valid: Any) -> None:
        """Keras' compiled metrics on the real rows (``metrics`` unweighted, ``weighted_metrics`` by ``w``)."""
        mask = valid.astype("float32")
        for metric, weighted in self.metric_objs:
            metric.update_state(y, y_pred, sample_weight=mask * w if weighted and w is not None else mask)
