"""One live process per folder: an advisory ``flock`` on ``FOLDER/.lock``.

The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run never leaves a
stale lock behind, and a second process is refused while the first lives. The next holder also
deletes the temporary files a killed holder may have left mid-write.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dlrun.errors import LockError
from dlrun.store.atomic import remove_stale_temps, storage_error
from dlrun.store.layout import LOCK


class RunLock:
    """Hold the lock of a run, sweep, batch or search folder for the duration of a ``with`` block.

    Args:
        path: The folder.

    Raises:
        LockError: Another live process holds it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, self.path.parent, "use the folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockError(
                f"{self.path.parent} is in use by another dlrun process (pid {holder}); "
                "wait for it to finish, or stop it, before running or resuming here"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        remove_stale_temps(self.path.parent)  # a killed holder's half-written files
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


F = TypeVar("F", bound=Callable[..., Any])


def holding_lock(param: str) -> Callable[[F], F]:
    """Decorate a function so that it runs holding the :class:`RunLock` of its folder argument ``param``.

    Sweep and batch folders take the same lock as runs: a second process is refused at once
    (exit 2) before it reads or writes anything there, and the holder clears the temporary
    files a killed holder left (the points' own folders hold locks of their own).
    """

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            folder = sig.bind(*args, **kwargs).arguments[param]
            with RunLock(Path(folder)):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def is_locked(path: Path) -> bool:
    """Whether a live process holds the folder ``path``."""
    lock = Path(path) / LOCK
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
