"""The stacked engine: many models of one architecture trained as one JAX program.

``support`` says what it can train, ``hparams`` which scalars may differ per model (and so
which specs share a program), ``step`` is one model's pure train/test/predict step,
``program`` the loops and ``vmap`` around it, ``early_stopping`` Keras' callback inside the
program, ``data`` the padded host arrays, ``engine`` the chunks, blocks and threads, and
``shared`` trains a group of specs in one program. Importing it imports neither Keras nor JAX.
"""

from dlrun.engines.stacked.engine import BLOCK_MODELS, EPOCHS_PER_CALL, StackedEngine
from dlrun.engines.stacked.hparams import hparam_paths, program_key, share_groups
from dlrun.engines.stacked.shared import fit_many, shared_engine
from dlrun.engines.stacked.support import unsupported_reason

__all__ = [
    "BLOCK_MODELS",
    "EPOCHS_PER_CALL",
    "StackedEngine",
    "fit_many",
    "hparam_paths",
    "program_key",
    "share_groups",
    "shared_engine",
    "unsupported_reason",
]
