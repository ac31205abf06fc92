"""Old home of a finished run's type: see :mod:`dlrun.runs.result` (kept for importers not yet moved)."""

from dlrun.runs.result import RunOutcome

__all__ = ["RunOutcome"]
