"""Mid-training checkpoints of ``dlrun train``: resume a long run where it stopped.

Every ``training.checkpoint_every`` epochs the model's variables (weights, seed
state), the optimizer's variables and the history so far are saved atomically, as a
sealed NPZ (plain arrays, loaded with ``allow_pickle=False``, SHA-256 checked). A
checkpoint that fails its check is moved aside and training starts again from epoch 0,
which ends with the same results, only later.
With the per-epoch batch order a pure function of ``(seed, epoch)``
(:func:`dlrun.engines.sequential.epoch_permutation`), a resumed run continues with
the same weights, optimizer state and batches as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from dlrun.errors import CorruptFileError
from dlrun.store import io as report
from dlrun.store import layout


class Resumable(Protocol):
    """What a checkpoint restores into: a training job's first epoch (an engine's ``FitJob``)."""

    initial_epoch: int


def encode_checkpoint(state: dict[str, Any]) -> bytes:
    """``{epoch, history, model_variables, optimizer_variables}`` as NPZ bytes (plain arrays only)."""
    arrays: dict[str, np.ndarray] = {
        "epoch": np.asarray(int(state["epoch"])),
        "history_json": np.asarray(json.dumps(state["history"])),
    }
    for i, v in enumerate(state["model_variables"]):
        arrays[f"model_{i:05d}"] = np.asarray(v)
    for i, v in enumerate(state["optimizer_variables"]):
        arrays[f"optimizer_{i:05d}"] = np.asarray(v)
    return report.npz_bytes(arrays)


def decode_checkpoint(payload: bytes, path: Any) -> dict[str, Any]:
    """Inverse of :func:`encode_checkpoint`.

    Raises:
        CorruptFileError: Not a checkpoint of plain arrays.
    """
    arrays = report.npz_arrays(payload, path)
    try:
        return {
            "epoch": int(arrays["epoch"]),
            "history": json.loads(str(arrays["history_json"])),
            "model_variables": [arrays[k] for k in sorted(a for a in arrays if a.startswith("model_"))],
            "optimizer_variables": [arrays[k] for k in sorted(a for a in arrays if a.startswith("optimizer_"))],
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptFileError(path, f"is not a dlrun checkpoint ({exc})") from None


class TrainCheckpoint:
    """Saves and restores the state of one training run.

    Args:
        writer: The run directory's writer.
        every: Save every N epochs (and never on the last epoch: the outputs follow).
    """

    def __init__(self, writer: report.RunWriter, every: int, note: Callable[[str], None] | None = None) -> None:
        self.writer = writer
        self.note = note
        self.every = max(1, every)
        self.path = layout.checkpoint_file(writer.path)
        self.saved: dict[str, Any] | None = None
        self.history: dict[str, list[float]] = {}

    def restore_into(self, job: Resumable) -> bool:
        """Point ``job`` at the saved epoch; return whether a checkpoint was found."""
        if not self.path.exists():
            return False
        try:
            self.saved = decode_checkpoint(report.read_sealed(self.path), self.path)
        except CorruptFileError as exc:
            dest = report.move_aside(self.path)
            if self.note is not None:
                self.note(f"{exc}; moved to {dest.name}, training starts again from epoch 0")
            self.saved = None
            return False
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
                report.write_sealed(outer.path, encode_checkpoint(state))
                outer.writer.append_progress({"event": "checkpoint", "epoch": done})

        return Checkpointer()
