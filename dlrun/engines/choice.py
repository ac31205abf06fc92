"""Which engine trains a spec, and the one line that says why when it is not the first choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlrun.engines.base import AUTO_ORDER, engine_class, engine_names, unsupported_reason
from dlrun.errors import SpecError


@dataclass(frozen=True)
class EngineChoice:
    """The engine chosen for a spec.

    Attributes:
        name: The engine's registered name (``make_engine`` builds it).
        note: The one line the caller prints (``"engine: sequential (the stacked engine cannot
            ...)"``), or None when nothing needs saying.
        shares_programs: Whether ``fit_many`` can train several specs of one ``share_groups``
            group in one program with this engine.
    """

    name: str
    note: str | None
    shares_programs: bool


def choose_engine(spec: Any, task: str, *, keep_model: bool = False, previous: str | None = None) -> EngineChoice:
    """The engine ``runtime.engine`` asks for; ``auto`` takes the first of
    :data:`~dlrun.engines.base.AUTO_ORDER` that supports the spec (nothing is built).

    Args:
        spec: The validated spec.
        task: The resolved task.
        keep_model: The caller needs the Keras model (``dlrun train``): sequential.
        previous: The engine that trained the folds already saved (resume); ``auto`` keeps it,
            because engines draw different (equally valid) random streams and a resumed
            run must end with exactly the results of an uninterrupted one.

    Raises:
        SpecError: The engine asked for (by name, or by resuming) cannot train this spec, or
            no engine can.
    """
    want: str = spec.runtime.engine
    if want == "auto" and previous in engine_names():
        want = str(previous)
    if keep_model:
        return _choice("sequential", None)
    if want != "auto":
        reason = unsupported_reason(want, spec, task)
        if reason is not None:
            raise SpecError([("runtime.engine", f"the {want} engine cannot run this spec: {reason}")])
        return _choice(want, None)
    why: list[str] = []
    for name in AUTO_ORDER:
        reason = unsupported_reason(name, spec, task)
        if reason is None:
            return _choice(name, f"engine: {name} ({'; '.join(why)})" if why else None)
        why.append(reason)
    raise SpecError([("runtime.engine", f"no engine can run this spec: {'; '.join(why)}")])


def _choice(name: str, note: str | None) -> EngineChoice:
    return EngineChoice(name=name, note=note, shares_programs=bool(engine_class(name).shares_programs))
