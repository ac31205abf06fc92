"""The ``dlrun`` program (console script and ``python -m dlrun``).

Stop signals are routed to :mod:`dlrun.runs.lifecycle`'s flag before the command line's heavier
imports, so a SIGINT or SIGTERM during start-up is honoured too (exit code 130), not lost.
"""

from __future__ import annotations


def main() -> None:
    """Install the stop-signal handlers, then run the CLI."""
    from dlrun.runs.lifecycle import install_signal_handlers

    install_signal_handlers()
    from dlrun.cli.app import main as cli_main

    cli_main()
