"""One live process per run directory: an advisory ``flock`` on ``RUN_DIR/.lock``.

The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run
never leaves a stale lock behind, and a second process is refused while the first lives.
The next holder also deletes the temporary files a killed holder may have left mid-write.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from dlrun.errors import LockError
from dlrun.report import LOCK, remove_stale_temps


class RunLock:
    """Hold the lock of a run directory for the duration of a ``with`` block.

    Args:
        path: The run directory.

    Raises:
        LockError: Another live process holds it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


def is_locked(path: Path) -> bool:
    """Whether a live process holds the run directory ``path``."""
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
