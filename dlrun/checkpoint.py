"""Mid-training checkpoints of ``dlrun train``: resume a long run where it stopped.

Every ``training.checkpoint_every`` epochs the model's variables (weights, seed
state), the optimizer's variables and the history so far are saved atomically.
With the per-epoch batch order a pure function of ``(seed, epoch)``
(:func:`dlrun.engines.sequential.epoch_permutation`), a resumed run continues with
the same weights, optimizer state and batches as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

from dlrun import report
from dlrun.engines.base import FitJob


class TrainCheckpoint:
    """Saves and restores the state of one training run.

    Args:
        writer: The run directory's writer.
        every: Save every N epochs (and never on the last epoch: the outputs follow).
    """

    def __init__(self, writer: report.RunWriter, every: int) -> None:
        self.writer = writer
        self.every = max(1, every)
        self.path = writer.path / report.CHECKPOINT / "state.pkl"
        self.saved: dict[str, Any] | None = None
        self.history: dict[str, list[float]] = {}

    def restore_into(self, job: FitJob) -> bool:
        """Point ``job`` at the saved epoch; return whether a checkpoint was found."""
        if not self.path.exists():
            return False
        self.saved = report.read_pickle(self.path)
        job.initial_epoch = int(self.saved["epoch"])
        self.history = {k: list(v) for k, v in self.saved["history"].items()}
        return True

    def full_history(self, tail: dict[str, list[float]]) -> dict[str, list[float]]:
        """The history before the checkpoint followed by ``tail``."""
        keys = list(dict.fromkeys([*self.history, *tail]))
        return {k: self.history.get(k, []) + tail.get(k, []) for k in keys}

    def clear(self) -> None:
        """Remove the checkpoint once the run's outputs are written."""
        if self.path.exists():
            self.path.unlink()

    def callback(self) -> Any:
        """A Keras callback that restores state at the start and saves it every N epochs."""
        import keras

        outer = self

        class Checkpointer(keras.callbacks.Callback):
            def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
                self.logs: dict[str, list[float]] = {}
                if outer.saved is None:
                    return
                model = self.model
                for var, value in zip(model.variables, outer.saved["model_variables"]):
                    var.assign(value)
                opt = model.optimizer
                if not opt.built:
                    opt.build(model.trainable_variables)
                for var, value in zip(opt.variables, outer.saved["optimizer_variables"]):
                    var.assign(value)

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                for k, v in (logs or {}).items():
                    if k != "learning_rate":
                        self.logs.setdefault(k, []).append(float(v))
                done = epoch + 1
                if done % outer.every or done >= self.params.get("epochs", done + 1):
                    return
                model = self.model
                state = {
                    "epoch": done,
                    "history": outer.full_history(self.logs),
                    "model_variables": [v.numpy() for v in model.variables],
                    "optimizer_variables": [v.numpy() for v in model.optimizer.variables],
                }
                report.write_pickle(outer.path, state)
                outer.writer.append_progress({"event": "checkpoint", "epoch": done})

        return Checkpointer()
