"""The owner of a folder of runs (sweep, batch, search, nested search): its status file, fingerprint,
leftovers and resume line.

Guarantees, on top of each run's own (:mod:`dlrun.store.run_folder`):

* ``--resume`` with another spec is refused (:meth:`RunsFolder.check_spec`, exit 2, naming the
  changed fields), so a folder never mixes results of two configs.
* The resume line repeats the command line the folder was started with (config, ``--trials``,
  every ``--set``, ``--grid``, ``--executor``...), with ``--out`` this folder.
* A damaged status file (truncated by a full disk or a kill) is moved aside, named, and rebuilt by
  the caller from what it records elsewhere (a search's journal, a sweep's points).
* Whoever holds the folder's lock clears every temporary file a killed process left anywhere
  under it (:meth:`RunsFolder.clear_temporaries`), inside its runs too.
* A run the folder gave up on (an interrupted trial asked again as a new one) is marked
  ``abandoned``, with the folder's own resume line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from dlrun.errors import CorruptFileError, Interrupted
from dlrun.spec.schema import Spec, resolved_dict
from dlrun.store.atomic import move_aside, now_iso, read_json, write_json
from dlrun.store.fingerprint import check_fingerprint, make_fingerprint, write_fingerprint
from dlrun.store.layout import FINGERPRINT, LOCK
from dlrun.store.lock import RunLock, is_locked
from dlrun.store.run_folder import RunFolder, read_state, resume_command, state_of
from dlrun.store.signals import check_stop

Note = Callable[[str], None]

# what a killed writer leaves: .x.tmp (atomic writes), .model.keras.x.tmp.keras, .x.part
TEMP_PATTERNS = (".*.tmp", ".*.tmp.keras*", ".*.part")


F = TypeVar("F", bound=Callable[..., Any])


def records_failure(param: str, kind: str, name: str) -> Callable[[F], F]:
    """Decorate a function that runs a folder of runs (its folder the argument ``param``): an
    error that ends it while its status file ``name`` says ``running`` (a full disk, a bug) is
    recorded there as ``failed``, so the status file says what the exit code says."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (KeyboardInterrupt, Interrupted):
                raise
            except BaseException as exc:
                path = kwargs[param] if param in kwargs else args[list(inspect.signature(fn).parameters).index(param)]
                folder = RunsFolder(Path(path), kind)
                with contextlib.suppress(OSError, CorruptFileError):
                    if folder.read_status(name).get("status") == "running":
                        folder.update_status(name, status="failed", error=" ".join(str(exc).split()), updated=now_iso())
                raise

        return inner  # type: ignore[return-value]

    return wrap


class RunsFolder:
    """A folder of runs (sweep, batch, search): its lock, status file, fingerprint and resume line.

    Args:
        path: The folder.
        kind: ``sweep``, ``batch`` or ``search`` (the subcommand of its resume line).
        source: The config file, for a resume line when the command line is not known (the API).
    """

    def __init__(self, path: Path, kind: str, source: str | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.source = source

    def lock(self) -> RunLock:
        """The folder's lock, for a ``with`` block."""
        return RunLock(self.path)

    # ------------------------------------------------------------------ status file
    def read_status(self, name: str, note: Note | None = None) -> dict[str, Any]:
        """The folder's JSON status file ``name`` (``sweep.json``, ``search.json``); ``{}`` when absent.

        A damaged one is moved aside to ``<name>.corrupt`` and told to ``note``: the caller rebuilds
        it from its journal or runs (it reads as ``{}``).
        """
        p = self.path / name
        if not p.exists():
            return {}
        try:
            data = read_json(p)
        except CorruptFileError as exc:
            dest = move_aside(p)
            if note is not None:
                note(f"{p} {exc.reason}; moved to {dest.name}, rebuilt from the {self.kind}'s own records")
            return {}
        return data if isinstance(data, dict) else {}

    def write_status(self, name: str, status: dict[str, Any]) -> None:
        """Rewrite the status file ``name`` atomically."""
        write_json(self.path / name, status)

    def update_status(self, name: str, **fields: Any) -> None:
        """Change some fields of the status file ``name`` (the others stay)."""
        self.write_status(name, {**self.read_status(name), **fields})

    @contextlib.contextmanager
    def ending(self, name: str, argv: list[str] | None) -> Iterator[None]:
        """The last phase (writing the folder's own outputs): ``finished`` only once it completes and
        no stop signal arrived meanwhile, else ``interrupted`` (raising the error with the resume
        line, exit 130) or ``failed``; so the status file and the exit code always agree.
        """
        try:
            yield
            check_stop()  # a signal while the outputs were written: they are whole, the exit is 130
        except (KeyboardInterrupt, Interrupted):
            with contextlib.suppress(OSError):
                self.update_status(name, status="interrupted", updated=now_iso())
            raise self.interrupted(argv) from None
        except BaseException as exc:
            with contextlib.suppress(OSError):  # a full disk: nothing more can be recorded
                self.update_status(name, status="failed", error=" ".join(str(exc).split()), updated=now_iso())
            raise
        self.update_status(name, status="finished", updated=now_iso())

    # ------------------------------------------------------------------ fingerprint
    def check_spec(self, spec: Spec, note: Note | None = None) -> None:
        """Refuse to continue this folder with another spec; record the spec of a new folder.

        The fingerprint is the base spec's (with ``--set``), without the fields that cannot change
        results (the search or sweep section, name, output folder, executor...).

        Raises:
            FingerprintMismatch: The folder was started with another spec (exit 2, naming the fields).
        """
        fp = make_fingerprint(resolved_dict(spec), None, None)
        path = self.path / FINGERPRINT
        if path.exists():
            try:
                read_json(path)
            except CorruptFileError as exc:  # its runs keep fingerprints of their own: record it again
                dest = move_aside(path)
                if note is not None:
                    note(f"{path} {exc.reason}; moved to {dest.name}, recorded again (each run checks its own)")
        hint = f"Use the config and --set options the {self.kind} was started with (its resume line), or a new --out"
        check_fingerprint(self.path, fp, spec_only=True, hint=hint)
        if not (self.path / FINGERPRINT).exists():
            self.path.mkdir(parents=True, exist_ok=True)
            write_fingerprint(self.path, fp)

    # ------------------------------------------------------------------ leftovers
    def clear_temporaries(self) -> list[Path]:
        """Delete the temporary files killed processes left anywhere under the folder, its runs'
        folders included (the caller holds the folder's lock; a run another live process holds is
        left alone).

        Returns:
            The files removed.
        """
        removed: list[Path] = []
        if not self.path.is_dir():
            return removed
        for root, dirs, _ in os.walk(self.path):
            here = Path(root)
            if here != self.path and (here / LOCK).exists() and is_locked(here):
                dirs[:] = []  # a live run: its temporary files are its own
                continue
            for pattern in TEMP_PATTERNS:
                for tmp in here.glob(pattern):
                    if tmp.is_file():
                        tmp.unlink(missing_ok=True)
                        removed.append(tmp)
        return removed

    def mark_abandoned(self, run_dir: Path, why: str, argv: list[str] | None) -> None:
        """Record that the folder gave up on one of its runs (``abandoned``, with ``why``); its
        resume line is the folder's own, since resuming that run alone would start another."""
        state = state_of(run_dir)
        if not Path(run_dir).is_dir() or state.get("status") in ("finished", "abandoned"):
            return
        state.update(status="abandoned", error=why, ended=now_iso(), resume_command=self.resume_command(argv))
        RunFolder(run_dir).write_state(state)

    # ------------------------------------------------------------------ resume line
    def resume_command(self, argv: list[str] | None) -> str:
        """The command that continues this folder: the one it was started with, ``--out`` this folder."""
        if not argv and self.source:
            argv = ["dlrun", self.kind, self.source]
        return resume_command(argv, self.path, self.kind)

    def interrupted(self, argv: list[str] | None, where: str = "") -> Interrupted:
        """The error that ends an interrupted sweep, batch or search, with its resume line."""
        return Interrupted(f"{self.kind} interrupted{where}; resume with: {self.resume_command(argv)}")

    # ------------------------------------------------------------------ its runs
    @staticmethod
    def run_state(path: Path) -> dict[str, Any]:
        """The ``state.json`` of one run in the folder (``{}`` when it has none or it is unreadable)."""
        return state_of(path)

    @staticmethod
    def run_status(path: Path) -> str | None:
        """The recorded status of one run in the folder: None without a state, ``running`` for an
        unreadable one (a truncated ``state.json``: continued like an unfinished run)."""
        try:
            state = read_state(path)
        except (CorruptFileError, OSError):
            return "running"
        if state is None:
            return None
        status = state.get("status")
        return None if status is None else str(status)
