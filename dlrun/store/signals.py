"""Stop signals: SIGINT and SIGTERM set a flag that a run checks at safe points.

:func:`install_signal_handlers` (called once, at the start of the CLI) makes SIGINT and SIGTERM set a
flag instead of raising inside whatever code happens to run: an exception raised from a signal
handler can be swallowed (e.g. inside a ``WeakKeyDictionary`` callback) and the signal lost. The
flag is checked at safe points (:func:`check_stop`: every epoch, between folds, sweep points and
batch configs, before and after writing outputs), which raise :class:`~dlrun.errors.Interrupted`; a
second signal raises at once. So a signal at any phase ends the command with exit code 130, the run
(and any sweep or batch) marked ``interrupted``.

Light imports only: the console entry point installs the handlers through this module before
anything heavy loads, so that a signal during start-up is not lost.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from dlrun.errors import Interrupted

_STOP: dict[str, Any] = {"signum": None, "count": 0, "installed": False}


def _handler(signum: int, frame: Any) -> None:
    _STOP["signum"] = signum
    _STOP["count"] += 1
    if _STOP["count"] >= 2:  # asked twice: stop now, wherever the code is
        raise Interrupted(f"stopped by a second {signal.Signals(signum).name}")


def install_signal_handlers() -> bool:
    """Route SIGINT and SIGTERM to the stop flag for the rest of the process (main thread only).

    Returns:
        Whether the handlers were installed (False outside the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)
    _STOP["installed"] = True
    return True


def handlers_installed() -> bool:
    """Whether :func:`install_signal_handlers` is in effect."""
    return bool(_STOP["installed"])


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM arrived."""
    return _STOP["signum"] is not None


def stop_signal_name() -> str:
    """``SIGTERM``, ``SIGINT`` or ``a signal``."""
    signum = _STOP["signum"]
    return signal.Signals(signum).name if signum is not None else "a signal"


def check_stop() -> None:
    """A safe point: raise :class:`Interrupted` if a stop signal arrived.

    Raises:
        Interrupted: SIGINT or SIGTERM was received.
    """
    if _STOP["signum"] is not None:
        raise Interrupted(f"stopped by {stop_signal_name()}")


def reset_stop() -> None:
    """Forget a received signal (tests, and a process that runs several commands)."""
    _STOP["signum"] = None
    _STOP["count"] = 0


class StopSignals:
    """Turn SIGTERM into KeyboardInterrupt while a run trains, so state is saved and marked.

    A no-op where :func:`install_signal_handlers` is in effect (the CLI): there both signals set a
    flag that the run checks at safe points, for the whole command.
    """

    def __enter__(self) -> StopSignals:
        self.old = None
        if handlers_installed():
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
