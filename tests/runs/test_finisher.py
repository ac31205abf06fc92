"""`dlrun.runs.runner.Finisher`: runs finished by helper processes, errors raised, a stop signal honoured."""

from __future__ import annotations

import signal
import time

import pytest

from dlrun.errors import Interrupted
from dlrun.runs import lifecycle
from dlrun.runs.runner import Finisher


def test_a_helper_error_is_raised_when_waiting() -> None:
    with pytest.raises(ValueError, match="invalid literal"), Finisher(workers=1) as helpers:
        helpers.submit(int, "not a number")


def test_a_stop_signal_while_waiting_cancels_what_has_not_started() -> None:
    helpers = Finisher(workers=1)
    for _ in range(24):
        helpers.submit(time.sleep, 0.5)  # 12 s in all if nothing were cancelled
    lifecycle._handler(signal.SIGTERM, None)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted), helpers:
            pass
    finally:
        lifecycle.reset_stop()
    # the helper's start, the job it is running and the one queued for it: the rest never ran
    assert time.monotonic() - t0 < 8.0
