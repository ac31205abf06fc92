"""The ``dlrun`` program (console script and ``python -m dlrun``).

Stop signals are routed to :mod:`dlrun.store.signals`' flag before the command line's heavier
imports, so a SIGINT or SIGTERM during start-up is honoured too (exit code 130), not lost.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def main() -> None:
    """Install the stop-signal handlers, run the CLI, and end the process with its exit code."""
    from dlrun.store.signals import install_signal_handlers

    install_signal_handlers()
    from dlrun.cli.app import main as cli_main

    try:
        cli_main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, without the interpreter's teardown.

    Tearing down the modules of Keras, JAX, scikit-learn and matplotlib took about 1.1 s of every
    command on the 2-core reference machine. Everything a command writes is closed and renamed into
    place before it returns, so what is skipped is only freeing memory the OS reclaims anyway: the
    streams are flushed, other non-daemon threads joined and ``atexit`` handlers (logging, Ray) run
    first, as a normal exit does.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): Python prints it and exits with 1
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say there
            pass
    os._exit(status)
