"""``python -m dlrun``."""

from dlrun.lifecycle import cli_entry

cli_entry()
