"""The one owner of a run folder (``dlrun train`` / ``dlrun cv``); folders of runs: :mod:`dlrun.store.runs_folder`.

:class:`RunFolder` is to a run folder what Optuna's ``BaseStorage`` is to a study: every read and
write of its state goes through it, and nothing else opens ``state.json``.

Crash guarantees (stated once, here):

* Every file is written to a temporary name in the same folder and renamed into place
  (:mod:`dlrun.store.io`), so a killed process leaves each file either as it was or complete; the
  next holder of the lock removes the temporary files a killed holder left.
* One live process per folder: :meth:`RunFolder.open` takes an advisory ``flock`` the kernel drops
  when its holder dies (even by SIGKILL), so a killed run never leaves a stale lock.
* ``state.json`` is a progress display, rewritten atomically; the sealed part files (SHA-256 on
  their last line, verified on every read) are the record of the finished folds. A part that fails
  its checksum is moved aside and its folds train again.
* ``--resume`` is refused when the folder's fingerprint (spec, data, splits) differs, naming the
  changed fields, so results of two configs are never mixed.
* A run that failed before it trained anything holds no result: :meth:`RunFolder.open` starts it
  afresh (its ``progress.jsonl`` keeps the failed attempt).
* Whatever ends a run, :meth:`RunFolder.running` records it: ``finished``, ``failed`` (with the
  error) or ``interrupted`` (with the command that resumes it).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlrun.catalog import CV_MODES, TRAIN_MODES
from dlrun.errors import CorruptFileError, InputError, Interrupted, SpecError
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store import io
from dlrun.store.fingerprint import (
    RUN_HINT,
    FingerprintMismatch,
    check_fingerprint,
    make_fingerprint,
    write_fingerprint,
)
from dlrun.store.layout import BATCH_CSV, FINGERPRINT, SEARCH_STATE, STATE, SUMMARY_JSON, SWEEP_STATE
from dlrun.store.lock import RunLock
from dlrun.store.signals import StopSignals, stop_requested, stop_signal_name


def resume_command(argv: list[str] | None, out_dir: Path, command: str = "") -> str:
    """The command line that continues this one in ``out_dir``: the same arguments (config path,
    ``--set``, ``--grid``, ...) with ``--out out_dir --resume``.

    Args:
        argv: ``sys.argv`` of the interrupted command (``[prog, subcommand, ...]``), or None.
        out_dir: The run, sweep, batch or search folder.
        command: The subcommand, used when ``argv`` does not hold one.
    """
    args = list(argv[1:]) if argv else []
    if not args and command:
        args = [command]
    if args and command in ("train", "cv") and args[0] in FOLDERS_OF_RUNS:
        # a run inside a sweep, batch or search: resuming it alone would start another search in
        # the run's folder, so the hint continues the whole folder of runs
        out_dir = enclosing_runs_folder(out_dir)
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out=") or a == "--resume":
            continue
        kept.append(a)
    return shlex.join(["dlrun", *kept, "--out", str(out_dir), "--resume"])


FOLDERS_OF_RUNS = ("sweep", "batch", "search")
# what marks a folder of runs (the subfolder ``outer`` marks a nested search)
_RUNS_MARKS = (SEARCH_STATE, SWEEP_STATE, BATCH_CSV, "outer")


def enclosing_runs_folder(run_dir: Path, depth: int = 5) -> Path:
    """The outermost folder of runs (sweep, batch, search, nested search) that holds ``run_dir``,
    within ``depth`` levels; ``run_dir`` itself when none does."""
    found, p = Path(run_dir), Path(run_dir)
    for _ in range(depth):
        p = p.parent
        if p == p.parent:
            break
        if any((p / m).exists() for m in _RUNS_MARKS):
            found = p
    return found


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


def read_state(path: Path) -> dict[str, Any] | None:
    """The ``state.json`` of the folder ``path``, or None when it has none.

    Raises:
        CorruptFileError: The file cannot be read as JSON.
    """
    p = Path(path) / STATE
    if not p.is_file():
        return None
    state = io.read_json(p)
    return state if isinstance(state, dict) else {}


def state_of(path: Path) -> dict[str, Any]:
    """The ``state.json`` of ``path``; ``{}`` when it has none or it cannot be read (a truncated one)."""
    try:
        return read_state(path) or {}
    except (CorruptFileError, OSError):
        return {}


class RunFolder:
    """One run folder: its lock, fingerprint, state, progress and parts (see the module's guarantees).

    ``RunFolder(path)`` is a folder whose lock the caller holds already (or that is only read);
    :meth:`open` resolves, reclaims and locks one for a new or resumed run.

    Args:
        path: The run folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: io.RunWriter | None = None
        self._lock: RunLock | None = None

    # ------------------------------------------------------------------ opening and the lock
    @classmethod
    def open(
        cls,
        spec: Spec,
        out: str | Path | None,
        resume: bool,
        *,
        command: str | None = None,
        note: Callable[[str], None] | None = None,
    ) -> RunFolder:
        """The folder a run writes into (``out``, or ``output_dir/name/<timestamp>``), locked.

        A folder whose run failed before it trained anything holds no results, so it is started
        afresh, with or without ``resume``: the fixed config may then differ from the failed one.
        Resuming another config is refused here, before anything is loaded. Use the result as a
        context manager: leaving it releases the lock.

        Args:
            spec: The validated spec.
            out: The folder asked for, or None.
            resume: Continue the run in ``out``.
            command: ``train`` or ``cv``: a spec for the other command is refused before any folder is made.
            note: Told, in one line, when a failed run's folder is started afresh.

        Raises:
            InputError: ``resume`` without ``out``; ``out`` is a file, or holds a run and ``resume`` is off;
                the spec's mode belongs to the other command; the fingerprint differs (resume).
            LockError: Another live process holds the folder.
        """
        if command is not None:
            check_command(spec, command)
        if out is not None and Path(out).exists() and not Path(out).is_dir():
            raise InputError(f"--out '{out}' is a file; give a folder")
        if resume and out is None:
            raise InputError("--resume needs --out RUN_DIR: the run directory to continue")
        if out is None:
            folder = cls(io.new_run_dir(spec.output_dir, spec.name))
            folder.lock()
            return folder
        folder = cls(Path(out))
        folder.lock()
        try:
            error = folder.reclaim_failed_start()
            if error is not None and note is not None:
                note(io.afresh_note(out, error))
            if not resume and (folder.path / STATE).exists():
                raise InputError(
                    f"--out '{folder.path}' already holds a run; add --resume to continue it, or choose another folder"
                )
            if resume:
                folder.check_spec(spec, note)
        except BaseException:
            folder.unlock()
            raise
        return folder

    def lock(self) -> RunFolder:
        """Take the folder's lock (creating the folder); :meth:`unlock` or leaving a ``with`` releases it."""
        lock = RunLock(self.path)
        lock.__enter__()
        self._lock = lock
        return self

    def unlock(self) -> None:
        """Release the lock :meth:`lock` took."""
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    def reclaim_failed_start(self) -> str | None:
        """Clear the folder if its run failed before training anything (its log stays); return that error."""
        return io.reclaim_failed_run(self.path)

    # ------------------------------------------------------------------ fingerprint
    def check_spec(self, spec: Spec, note: Callable[[str], None] | None = None, hint: str = RUN_HINT) -> None:
        """Before anything is loaded or written: no pickles, and the same spec as the run recorded
        (a damaged ``fingerprint.json`` is moved aside, told to ``note``, and its ``config.yaml`` read instead).

        Args:
            spec: The spec of the command now.
            note: Told, in one line, of a damaged fingerprint moved aside.
            hint: What to do instead, closing a refusal (a run in a batch: the batch's own options).

        Raises:
            FingerprintMismatch: The folder was run with another config (naming the changed fields).
            CorruptFileError: The folder holds pickles of an older dlrun.
        """
        io.refuse_legacy_pickles(self.path)
        fp = make_fingerprint(resolved_dict(spec), None, None)
        check_fingerprint(self.path, fp, spec_only=True, note=note, hint=hint)

    def record_fingerprint(self, spec: Spec, data_sha256: str, splits: str) -> None:
        """Compare the full fingerprint (spec, data, splits) with the folder's, or record it for a new run.

        Raises:
            FingerprintMismatch: It differs from the recorded one.
        """
        fp = make_fingerprint(resolved_dict(spec), data_sha256, splits)
        check_fingerprint(self.path, fp)  # without one: a folder from before fingerprints, by its config.yaml
        if not (self.path / FINGERPRINT).exists():  # new, or its damaged one moved aside
            write_fingerprint(self.path, fp)

    def read_fingerprint(self) -> dict[str, Any] | None:
        """``fingerprint.json``, or None when the folder has none."""
        p = self.path / FINGERPRINT
        return io.read_json(p) if p.exists() else None

    def write_fingerprint(self, fp: dict[str, Any]) -> None:
        """Record ``fp`` (a cv folder grown by more repeats is re-recorded for the longer run)."""
        write_fingerprint(self.path, fp)

    # ------------------------------------------------------------------ state, progress, parts
    @property
    def writer(self) -> io.RunWriter:
        """The writer of this folder's files (creates the folder)."""
        if self._writer is None:
            self._writer = io.RunWriter(self.path)
        return self._writer

    def read_state(self) -> dict[str, Any] | None:
        """``state.json`` or None; an unreadable one (truncated) counts as ``{}``: it is rewritten."""
        try:
            return read_state(self.path)
        except CorruptFileError:
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        """``state.json``: status and progress, rewritten atomically (without in-memory keys)."""
        self.writer.write_state({k: v for k, v in state.items() if k != "previous"})

    def append_progress(self, event: dict[str, Any]) -> None:
        """One line of ``progress.jsonl``."""
        self.writer.append_progress(event)

    def read_parts(self, on_corrupt: Any = None) -> dict[tuple[int, int], dict[str, Any]]:
        """Every finished fold saved so far, verified (see :meth:`dlrun.store.io.RunWriter.read_parts`)."""
        return self.writer.read_parts(on_corrupt=on_corrupt)

    def write_parts(self, parts: list[dict[str, Any]]) -> None:
        """Save finished folds as one sealed file: committed together or not at all."""
        self.writer.write_parts(parts)

    def finished_summary(self) -> dict[str, Any] | None:
        """The summary of a run that finished earlier, else None."""
        state = self.read_state() or {}
        if state.get("status") == "finished" and (self.path / SUMMARY_JSON).exists():
            summary = io.read_json(self.path / SUMMARY_JSON)
            return summary if isinstance(summary, dict) else None
        return None

    def mark_failed(self, state: dict[str, Any], exc: BaseException) -> None:
        """Record that the run ended early: ``interrupted`` (a signal) or ``failed`` (with its error)."""
        interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
        state["status"] = "interrupted" if interrupted else "failed"
        if interrupted:
            state["error"] = "stopped by a signal"
        elif isinstance(exc, SpecError):
            state["error"] = "; ".join(f"{p}: {m}" for p, m in exc.problems)
        else:
            state["error"] = " ".join(str(exc).split()) or type(exc).__name__
        state["ended"] = io.now_iso()
        self.write_state(state)
        self.append_progress({"event": state["status"], "error": state["error"]})

    # ------------------------------------------------------------------ one run's life
    @contextlib.contextmanager
    def running(
        self, spec: Spec, command: str, argv: list[str] | None = None, *, on_end: Callable[[], None] | None = None
    ) -> Iterator[Run]:
        """Run ``command`` here: state ``starting`` now, then (:meth:`Run.begin`) ``running``, then
        ``finished`` (:meth:`Run.finish`), ``failed`` or ``interrupted``: the one place that records how a run ended.

        A :class:`FingerprintMismatch` during start-up leaves the folder's record as it was (the
        folder is another run's). SIGTERM outside the CLI is turned into an interruption.

        Args:
            spec: The spec the run trains.
            command: ``train`` or ``cv``.
            argv: The command line, for ``env.json`` and the resume command.
            on_end: Called when the run ends early (e.g. the reporter's ``finish``).

        Raises:
            Interrupted: Ctrl-C or SIGTERM, with the command that resumes the run.
        """
        run = Run(self, spec, command, argv)
        try:
            with StopSignals():
                yield run
        except FingerprintMismatch:
            if run.phase == "starting" and run.previous:
                self.write_state(run.previous)
            raise
        except (KeyboardInterrupt, Interrupted) as exc:
            if on_end is not None:
                on_end()
            self.mark_failed(run.state, exc)
            raise Interrupted(run.interrupted_message()) from None
        except BaseException as exc:
            if on_end is not None:
                on_end()
            self.mark_failed(run.state, exc)
            raise


class Run:
    """The live state of one run inside :meth:`RunFolder.running`.

    Attributes:
        state: What ``state.json`` shows (written by :meth:`save`).
        previous: The folder's state before this command (``{}`` for a new run).
        phase: ``starting`` until :meth:`begin`, then ``training``, ``writing``.
    """

    def __init__(self, folder: RunFolder, spec: Spec, command: str, argv: list[str] | None) -> None:
        self.folder, self.spec, self.command, self.argv = folder, spec, command, argv
        old = folder.read_state()
        self.previous: dict[str, Any] = old or {}
        self.resume = resume_command(argv, folder.path, command)
        state: dict[str, Any] = {
            "name": spec.name,
            "command": command,
            "mode": spec.evaluation.mode,
            "status": "running",
            "phase": "starting",
            "started": (old or {}).get("started") or io.now_iso(),
            "resumed": old is not None,
            "total_models": int((old or {}).get("total_models", 0) or 0),
            "finished_models": 0,
            "epochs": spec.training.epochs,
            "resume_command": self.resume,
        }
        if old and old.get("engine"):
            state["engine"] = old["engine"]  # which engine trained the saved folds: resume keeps it
        self.state = state
        # the engine that trained the folds already saved: a resumed run keeps it
        self.previous_engine: str | None = state.get("engine")
        folder.write_state(state)

    @property
    def phase(self) -> str:
        return str(self.state.get("phase", ""))

    def begin(self, total: int, device: dict[str, Any], versions: dict[str, Any], spec: Spec | None = None) -> None:
        """Start-up is done: write ``config.yaml`` and ``env.json``, mark the run ``running`` with ``total`` models.

        Args:
            total: How many models the run trains.
            device: What the runtime set up (its ``device`` is recorded).
            versions: The library versions for ``env.json``.
            spec: The spec to record, when it differs from the one trained (default: the run's).

        Raises:
            Interrupted: A stop signal arrived during start-up.
        """
        spec = spec or self.spec
        if stop_requested():  # the runtime's set-up imports the backend: seconds in which a signal may arrive
            raise Interrupted("stopped")
        self.folder.writer.write_config(resolved_dict(spec))
        env = {
            **versions,
            "device": device,
            "seed": spec.seed,
            "command": self.argv or sys.argv,
            "time": io.now_iso(),
        }
        self.folder.writer.write_env(env)
        old = self.state
        self.state = {
            "name": spec.name,
            "command": self.command,
            "mode": spec.evaluation.mode,
            "started": old.get("started", io.now_iso()),
            "resumed": bool(old.get("resumed")),
            "epochs": spec.training.epochs,
            "resume_command": self.resume,
            "status": "running",
            "phase": "training",
            "total_models": total,
            "finished_models": 0,
            "device": device["device"],
        }
        self.save()
        self.folder.append_progress({"event": "start", "command": self.command, "total_models": total})

    def save(self) -> None:
        """Write the state as it is now."""
        self.folder.write_state(self.state)

    def finish(self, finished_models: int, *, write: bool = True) -> dict[str, Any]:
        """Mark the run ``finished``; ``write=False`` returns the state for a deferred writer instead."""
        self.state.update(status="finished", ended=io.now_iso(), finished_models=finished_models)
        if write:
            self.save()
            self.folder.append_progress({"event": "finished"})
        return self.state

    def interrupted_message(self) -> str:
        """``interrupted after 3/10 folds; resume with: dlrun cv cfg.yaml --out DIR --resume``."""
        done, total = self.state.get("finished_models", 0), self.state.get("total_models", 0)
        where = f" after {done}/{total} folds" if self.command == "cv" and total else ""
        resume = self.state.get("resume_command") or self.resume
        return f"interrupted ({stop_signal_name()}){where}; resume with: {resume}"
