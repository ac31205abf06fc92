"""Names defined once: evaluation modes and the settings of a ``search:`` section."""

from __future__ import annotations

#: Evaluation modes ``dlrun train`` runs (one model).
TRAIN_MODES = ("split", "validation_split", "none")
#: Evaluation modes ``dlrun cv`` runs (many models, resampled scores).
CV_MODES = ("kfold", "repeated_kfold", "repeated_split")
#: Keys of a ``search:`` section that are settings, not search-space entries.
SEARCH_SETTINGS = ("space", "trials", "sampler", "direction", "seed", "batch", "racing", "racing_stages", "top")
