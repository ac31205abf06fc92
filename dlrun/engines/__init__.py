"""Training engines: each trains a list of :class:`FitJob` and yields :class:`FitResult`.

Every engine follows the :class:`Engine` protocol and is registered by name
(``runtime.engine``); :func:`make_engine` builds one, importing Keras only then.
"""

from dlrun.engines.base import (
    AUTO_ORDER,
    Engine,
    EpochEvent,
    FitJob,
    FitResult,
    engine_names,
    make_engine,
    register_engine,
    unsupported_reason,
)

__all__ = [
    "AUTO_ORDER",
    "Engine",
    "EpochEvent",
    "FitJob",
    "FitResult",
    "engine_names",
    "make_engine",
    "register_engine",
    "unsupported_reason",
]
