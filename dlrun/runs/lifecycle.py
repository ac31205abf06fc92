"""Old home of the stop signals: see :mod:`dlrun.store.signals` (kept for importers not yet moved)."""

from dlrun.store.signals import (
    check_stop,
    handlers_installed,
    install_signal_handlers,
    reset_stop,
    stop_requested,
    stop_signal_name,
)

__all__ = [
    "check_stop",
    "handlers_installed",
    "install_signal_handlers",
    "reset_stop",
    "stop_requested",
    "stop_signal_name",
]
