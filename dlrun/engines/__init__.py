"""Training engines: each trains a list of :class:`FitJob` and yields :class:`FitResult`.

Every engine follows the :class:`Engine` protocol and is registered by name
(``runtime.engine``). :func:`choose_engine` picks one for a spec (with the line to print when
it is not the first choice), :func:`make_engine` builds it, importing Keras only then.
:func:`program_key` and :func:`share_groups` say which specs can train in one stacked program
and :func:`fit_many` trains such a group. Importing this package imports neither Keras nor JAX.
"""

from dlrun.engines.base import (
    AUTO_ORDER,
    Engine,
    EpochCallback,
    EpochEvent,
    FitJob,
    FitResult,
    engine_names,
    make_engine,
    register_engine,
    unsupported_reason,
)
from dlrun.engines.choice import EngineChoice, choose_engine
from dlrun.engines.stacked import fit_many, hparam_paths, program_key, share_groups

__all__ = [
    "AUTO_ORDER",
    "Engine",
    "EngineChoice",
    "EpochCallback",
    "EpochEvent",
    "FitJob",
    "FitResult",
    "choose_engine",
    "engine_names",
    "fit_many",
    "hparam_paths",
    "make_engine",
    "program_key",
    "register_engine",
    "share_groups",
    "unsupported_reason",
]
