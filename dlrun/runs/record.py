"""A run folder's record while it runs: state, config, env, fingerprint, failure and stop handling.

Every command marks its folder ``running`` before anything slow, ``failed`` or ``interrupted``
when it ends early (with the resume command), and ``finished`` last.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.errors import InputError, Interrupted, SpecError
from dlrun.protocol.jobs import Prepared
from dlrun.protocol.splits import splits_digest
from dlrun.reporting import Reporter
from dlrun.runs import lifecycle
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import io as report

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- stop signals
class StopSignals:
    """Turn SIGTERM into KeyboardInterrupt while a run trains, so state is saved and marked.

    A no-op where :func:`dlrun.runs.lifecycle.install_signal_handlers` is in effect (the CLI): there
    both signals set a flag that the run checks at safe points, for the whole command.
    """

    def __enter__(self) -> StopSignals:
        self.old = None
        if lifecycle.handlers_installed():
            return self
        self.old = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread
            self.old = None
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


# ----------------------------------------------------------------------------- run bookkeeping
@dataclass
class RunOutcome:
    """What a finished run produced (also written to its directory).

    Attributes:
        path: The run directory.
        summary: The content of ``summary.json``.
        engine: The engine that trained.
    """

    path: Path
    summary: dict[str, Any]
    engine: str
    notes: list[str] = field(default_factory=list)


def _env(spec: Spec, device: dict[str, Any], argv: list[str] | None) -> dict[str, Any]:
    from dlrun.engines.runtime import versions

    return {**versions(), "device": device, "seed": spec.seed, "command": argv or sys.argv, "time": report.now_iso()}


def starting_state(spec: Spec, writer: report.RunWriter, command: str, argv: list[str] | None) -> dict[str, Any]:
    """Mark the run ``running`` (phase ``starting``) before anything slow, so that a run killed or
    stopped during start-up is visible to ``status`` and ``clean``. Keeps the first start time.
    Returns the new state, with the previous one under the key ``"previous"`` (not written)."""
    old = writer.read_state()
    state = {
        "name": spec.name,
        "command": command,
        "mode": spec.evaluation.mode,
        "status": "running",
        "phase": "starting",
        "started": (old or {}).get("started") or report.now_iso(),
        "resumed": old is not None,
        "total_models": int((old or {}).get("total_models", 0) or 0),
        "finished_models": 0,
        "epochs": spec.training.epochs,
        "resume_command": lifecycle.resume_command(argv, writer.path, command),
    }
    if old and old.get("engine"):
        state["engine"] = old["engine"]  # which engine trained the saved folds: resume keeps it
    writer.write_state(state)
    return {**state, "previous": old or {}}


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "previous"}


def begin_run(
    spec: Spec,
    writer: report.RunWriter,
    command: str,
    total: int,
    argv: list[str] | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Set up the device, write config.yaml and env.json, mark the run ``running`` with ``total`` models.

    Args:
        state: The state :func:`starting_state` returned, updated in place; None reads the folder's own.
    """
    from dlrun.engines.runtime import setup

    device = setup(spec.runtime)
    if lifecycle.stop_requested():  # setup imports the backend: seconds in which a signal may arrive
        st = state if state is not None else (writer.read_state() or {})
        mark_failed(writer, st, Interrupted("stopped"))
        raise Interrupted(interrupted_message(st, writer.path, argv, command))
    writer.write_config(resolved_dict(spec))
    writer.write_env(_env(spec, device, argv))
    if state is None:
        old = writer.read_state() or {}
        state = {
            "name": spec.name,
            "command": command,
            "mode": spec.evaluation.mode,
            "started": old.get("started", report.now_iso()),
            "resumed": bool(old.get("resumed")) if old.get("phase") == "starting" else bool(old),
            "epochs": spec.training.epochs,
            "resume_command": lifecycle.resume_command(argv, writer.path, command),
        }
    state.update(status="running", phase="training", total_models=total, finished_models=0, device=device["device"])
    writer.write_state(public_state(state))
    writer.append_progress({"event": "start", "command": command, "total_models": total})
    return state


def mark_failed(writer: report.RunWriter, state: dict[str, Any], exc: BaseException) -> None:
    interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
    state["status"] = "interrupted" if interrupted else "failed"
    if interrupted:
        state["error"] = "stopped by a signal"
    elif isinstance(exc, SpecError):
        state["error"] = "; ".join(f"{p}: {m}" for p, m in exc.problems)
    else:
        state["error"] = " ".join(str(exc).split()) or type(exc).__name__
    state["ended"] = report.now_iso()
    writer.write_state(public_state(state))
    writer.append_progress({"event": state["status"], "error": state["error"]})


def interrupted_message(state: dict[str, Any], run_dir: Path, argv: list[str] | None, command: str) -> str:
    """``interrupted after 3/10 folds; resume with: dlrun cv cfg.yaml --out DIR --resume``."""
    done, total = state.get("finished_models", 0), state.get("total_models", 0)
    where = f" after {done}/{total} folds" if command == "cv" and total else ""
    resume = state.get("resume_command") or lifecycle.resume_command(argv, run_dir, command)
    return f"interrupted ({lifecycle.stop_signal_name()}){where}; resume with: {resume}"


def check_command(spec: Spec, command: str) -> None:
    """Refuse a spec whose evaluation mode belongs to the other command (before any folder is made).

    Raises:
        InputError: ``train`` on a cv mode or ``cv`` on a train mode.
    """
    if command == "cv" and spec.evaluation.mode not in CV_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(CV_MODES)} for `dlrun cv`, got '{spec.evaluation.mode}'; "
            "use `dlrun train` for split, validation_split and none"
        )
    if command == "train" and spec.evaluation.mode not in TRAIN_MODES:
        raise InputError(
            f"evaluation.mode must be one of {', '.join(TRAIN_MODES)} for `dlrun train`, got '{spec.evaluation.mode}'; "
            "use `dlrun cv` for kfold, repeated_kfold and repeated_split"
        )


def check_resumable(spec: Spec, run_dir: Path) -> None:
    """Before anything is loaded or written: no pickles, and the same spec as the run recorded."""
    report.refuse_legacy_pickles(run_dir)
    lifecycle.check_fingerprint(run_dir, lifecycle.make_fingerprint(resolved_dict(spec), None, None), spec_only=True)


def record_fingerprint(prep: Prepared, run_dir: Path) -> None:
    """Compare the full fingerprint (spec, data, splits) with the folder's, or record it for a new run."""
    fp = lifecycle.make_fingerprint(
        resolved_dict(prep.spec),
        lifecycle.data_checksum(prep.data.X, prep.data.y),
        splits_digest(prep.folds),
    )
    if not (Path(run_dir) / report.FINGERPRINT).exists():
        lifecycle.check_fingerprint(run_dir, fp)  # a folder from before fingerprints: its config.yaml
        lifecycle.write_fingerprint(run_dir, fp)
    else:
        lifecycle.check_fingerprint(run_dir, fp)


def stopping_relay(reporter: Reporter, writer: report.RunWriter | None = None) -> Any:
    """The engines' per-epoch callback: progress, then a safe point for stop signals.

    With ``writer``, an ``epoch`` event goes to ``progress.jsonl`` at most once a second, so
    ``dlrun status`` can show the epoch and an ETA while a chunk of models trains.
    """
    last = [0.0]

    def on_epoch(event: Any) -> None:
        reporter.epoch(event)
        now = time.monotonic()
        if writer is not None and (now - last[0] >= 1.0 or event.epoch == event.epochs):
            last[0] = now
            writer.append_progress(
                {"event": "epoch", "epoch": event.epoch, "epochs": event.epochs, "models": len(event.keys)}
            )
        lifecycle.check_stop()

    return on_epoch


@contextlib.contextmanager
def guard_startup(writer: report.RunWriter, state: dict[str, Any], argv: list[str] | None, command: str) -> Any:
    """Start-up (data, folds, fingerprint): a failure or stop signal here marks the run too."""
    try:
        yield state
        lifecycle.check_stop()
    except lifecycle.FingerprintMismatch:
        if state.get("previous"):  # the folder is another run's: leave its record as it was
            writer.write_state(state["previous"])
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        mark_failed(writer, state, exc)
        raise Interrupted(interrupted_message(state, writer.path, argv, command)) from None
    except BaseException as exc:
        mark_failed(writer, state, exc)
        raise
