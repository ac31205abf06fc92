"""Executors: where jobs run (this process, Ray)."""
