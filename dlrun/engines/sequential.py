"""The sequential engine: one ``keras.Model.fit`` per fold, exactly as a Keras script would."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dlrun.engines.base import EpochCallback, EpochEvent, FitJob, FitResult, check_spec
from dlrun.engines.keras_build import build_model, compile_model, make_callbacks, resolve_compile
from dlrun.engines.runtime import seed_everything
from dlrun.errors import RunError
from dlrun.spec.schema import Spec


class SequentialEngine:
    """Trains each job with its own Keras model, one after another.

    Args:
        spec: The validated spec.
        task: ``binary``, ``multiclass`` or ``regression``.
        input_shape: Shape of one preprocessed sample.
        n_outputs: Width of the model's output.
        keep_model: Return the Keras model in each result (``dlrun train`` saves it).
        extra_callbacks: Callbacks added to every fit (checkpointing, stop requests).
    """

    name = "sequential"
    shares_programs = False

    @staticmethod
    def supports(spec: Spec, task: str) -> str | None:
        """The sequential engine trains any spec Keras can build."""
        return None

    def models_per_chunk(self, jobs: Sequence[FitJob]) -> int:
        """One: models train one after another, so each fold is prepared just before it trains."""
        return 1

    def __init__(
        self,
        spec: Spec,
        task: str,
        input_shape: tuple[int, ...],
        n_outputs: int,
        keep_model: bool = False,
        extra_callbacks: list[Any] | None = None,
    ) -> None:
        self.spec = spec
        self.task = task
        self.input_shape = input_shape
        self.n_outputs = n_outputs
        self.keep_model = keep_model
        self.extra_callbacks = extra_callbacks or []
        self.compile_cfg = resolve_compile(spec, task)
        check_spec(spec)

    def build(self, seed: int) -> Any:
        """A fresh compiled model, seeded."""
        seed_everything(seed)
        model = build_model(self.spec, self.input_shape, self.n_outputs, self.task)
        return model

    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        """Train each job in turn; yield its result as soon as it is done."""
        for job in jobs:
            yield self.fit_one(job, on_epoch)

    def fit_one(self, job: FitJob, on_epoch: EpochCallback | None = None) -> FitResult:
        """Train one job."""
        import keras

        t0 = time.perf_counter()
        tr = self.spec.training
        model = self.build(job.seed)
        steps = max(1, math.ceil(len(job.x_train) / tr.batch_size))
        spe = steps if tr.steps_per_execution == "auto" else int(tr.steps_per_execution)
        compile_model(model, self.compile_cfg, steps_per_execution=spe)
        if job.initial_weights is not None:
            model.set_weights(job.initial_weights)
        # test_ scores first, so History and checkpoints record them (check_spec keeps them
        # out of every callback's monitor)
        callbacks: list[Any] = [
            _TestScores(job, max(tr.batch_size, 256)),
            *make_callbacks(self.spec),
            _Relay(job, tr.epochs, on_epoch),
            keras.callbacks.TerminateOnNaN(),
        ]
        callbacks += self.extra_callbacks
        val = (job.x_val, job.y_val) if job.x_val is not None and len(job.x_val) else None
        dataset = epoch_batches(job, tr.batch_size, tr.epochs, tr.shuffle)
        hist = model.fit(
            dataset,
            epochs=tr.epochs,
            initial_epoch=job.initial_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the batches are already shuffled per epoch
            class_weight=job.class_weight,
            validation_data=val,
            callbacks=callbacks,
            verbose=tr.verbose,
        )
        history = {k: [float(v) for v in vals] for k, vals in hist.history.items() if k != "learning_rate"}
        losses = history.get("loss", [])
        if losses and not np.isfinite(losses[-1]):
            raise RunError(
                f"the loss became NaN at epoch {job.initial_epoch + len(losses)} "
                f"of repeat {job.repeat} fold {job.fold}; "
                "lower compile.optimizer's learning_rate, scale the features (preprocessing.scaling), "
                "or add clipvalue to the optimizer"
            )
        pred_bs = max(tr.batch_size, 1024)
        train_pred = np.asarray(model.predict(job.x_train, batch_size=pred_bs, verbose=0))
        test_pred = None
        if job.x_test is not None and len(job.x_test):
            test_pred = np.asarray(model.predict(job.x_test, batch_size=pred_bs, verbose=0))
        return FitResult(
            repeat=job.repeat,
            fold=job.fold,
            history=history,
            train_pred=train_pred,
            test_pred=test_pred,
            epochs_run=job.initial_epoch + len(losses),
            seconds=time.perf_counter() - t0,
            engine=self.name,
            model=model if self.keep_model else None,
            weights=[np.asarray(w) for w in model.get_weights()],
        )


def epoch_permutation(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    """The order in which a model sees its ``n`` training rows in ``epoch`` (0-based).

    A pure function of ``(seed, epoch)``, so a resumed run draws the same batches
    as an uninterrupted one, and both engines share it (see :func:`epoch_permutations`).
    """
    return epoch_permutations(seed, range(epoch, epoch + 1), n, shuffle)[0]


def epoch_permutations(seed: int, epochs: range, n: int, shuffle: bool = True) -> np.ndarray:
    """:func:`epoch_permutation` for consecutive ``epochs`` at once: ``(len(epochs), n)``.

    Epoch ``e`` sorts the ``n`` uniform doubles at position ``e * n`` of the model's own
    PCG64 stream (seeded by ``seed``); the stream is advanced, not drawn, to reach it, so
    any epoch costs O(n) and a block of epochs is one draw and one sort (the stacked engine
    orders 300 models x 300 epochs in a fraction of a second).
    """
    if not shuffle:
        return np.tile(np.arange(n), (len(epochs), 1))
    bits = np.random.PCG64([seed & 0xFFFFFFFF, 0x5EED])
    bits.advance(epochs.start * n)
    keys = np.random.Generator(bits).random((len(epochs), n))
    return np.argsort(keys, axis=1, kind="stable")


def epoch_batches(job: FitJob, batch_size: int, epochs: int, shuffle: bool) -> Any:
    """A ``keras.utils.PyDataset`` of the mini-batches of epochs ``job.initial_epoch .. epochs-1``.

    Backend-neutral (no ``tf.data``). Batch ``i`` is a pure function of ``(seed, epoch, i)``;
    batches never straddle two epochs and the last batch of an epoch may be smaller,
    exactly as ``model.fit`` on arrays does. ``model.fit`` must get
    ``steps_per_epoch=ceil(n / batch_size)`` so it reads on across epochs.
    """
    import keras

    n = len(job.x_train)
    steps = max(1, math.ceil(n / batch_size))
    first = job.initial_epoch

    class EpochBatches(keras.utils.PyDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._perm: tuple[int, np.ndarray] | None = None

        def __len__(self) -> int:
            return steps * max(1, epochs - first)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            epoch, b = first + i // steps, i % steps
            if self._perm is None or self._perm[0] != epoch:
                self._perm = (epoch, epoch_permutation(job.seed, epoch, n, shuffle))
            rows = self._perm[1][b * batch_size : (b + 1) * batch_size]
            return job.x_train[rows], job.y_train[rows]

    return EpochBatches()


class _TestScores:
    """A Keras callback adding held-out ``test_`` loss and metrics to each epoch's logs.

    Registered first, so History and checkpoints record the values;
    :func:`dlrun.engines.base.check_spec` refuses any callback monitoring them.
    """

    def __new__(cls, job: FitJob, batch_size: int) -> Any:
        import keras

        class TestScores(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                if logs is None or job.x_test is None or job.y_test is None or not len(job.x_test):
                    return
                scores = self.model.evaluate(job.x_test, job.y_test, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"test_{k}": float(v) for k, v in scores.items()})

        return TestScores()


class _Relay:
    """A Keras callback that forwards epoch ends as :class:`EpochEvent`."""

    def __new__(cls, job: FitJob, epochs: int, on_epoch: EpochCallback | None) -> Any:
        import keras

        class Relay(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                if on_epoch is not None:
                    clean = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
                    on_epoch(EpochEvent(keys=(job.key,), epoch=epoch + 1, epochs=epochs, logs=clean))

        return Relay()
