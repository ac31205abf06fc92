"""``python -m dlrun``."""

from dlrun.entry import main

main()
