"""Training engines: each trains a list of :class:`FitJob` and yields :class:`FitResult`."""

from dlrun.engines.base import EpochEvent, FitJob, FitResult

__all__ = ["EpochEvent", "FitJob", "FitResult"]
