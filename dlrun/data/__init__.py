"""Data: the named-set registry, loaders, task inference and preprocessing (fitted on training rows only)."""
