"""Old home of the folder lock: see :mod:`dlrun.store.lock` (kept for importers not yet moved)."""

from dlrun.store.lock import RunLock, holding_lock, is_locked

__all__ = ["RunLock", "holding_lock", "is_locked"]
