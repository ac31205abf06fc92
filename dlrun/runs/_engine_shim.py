"""The engine contract (``dlrun.engines``' ``EngineChoice``, ``choose_engine``, ``program_key``,
``share_groups``, ``fit_many``, ``models_per_chunk``) on top of today's engine code.

Temporary: it lets ``runs/`` call engines only through the contract while the engines themselves
are reworked to implement it; at merge time its importers switch to ``dlrun.engines`` and it goes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dlrun.engines import stacked
from dlrun.engines.base import (
    AUTO_ORDER,
    Engine,
    EpochCallback,
    EpochEvent,
    FitJob,
    FitResult,
    engine_names,
    unsupported_reason,
)
from dlrun.engines.base import make_engine as _make_engine
from dlrun.errors import SpecError
from dlrun.spec.schema import Spec

__all__ = [
    "Engine",
    "EngineChoice",
    "EpochCallback",
    "EpochEvent",
    "FitJob",
    "FitResult",
    "choose_engine",
    "fit_many",
    "hparam_paths",
    "make_engine",
    "program_key",
    "share_groups",
]

hparam_paths = stacked.hparam_paths
program_key = stacked.program_key
share_groups = stacked.shared_groups


@dataclass(frozen=True)
class EngineChoice:
    """The engine for a spec and the one line that says why, when it is not the one asked for."""

    name: str
    note: str | None
    shares_programs: bool


def choose_engine(spec: Spec, task: str, *, keep_model: bool = False, previous: str | None = None) -> EngineChoice:
    """The engine ``runtime.engine`` asks for; ``auto`` takes the first of ``AUTO_ORDER`` that supports the spec.

    Raises:
        SpecError: The engine asked for by name cannot train this spec.
    """
    want: str = spec.runtime.engine
    if want == "auto" and previous in engine_names():
        want = str(previous)
    if keep_model:
        return EngineChoice("sequential", None, False)
    if want != "auto":
        reason = unsupported_reason(want, spec, task)
        if reason is not None:
            raise SpecError([("runtime.engine", f"the {want} engine cannot run this spec: {reason}")])
        return EngineChoice(want, None, want == "stacked")
    why: list[str] = []
    for name in AUTO_ORDER:
        reason = unsupported_reason(name, spec, task)
        if reason is None:
            note = f"engine: {name} ({'; '.join(why)})" if why else None
            return EngineChoice(name, note, name == "stacked")
        why.append(reason)
    raise SpecError([("runtime.engine", f"no engine can run this spec: {'; '.join(why)}")])


class _OneAtATime:
    """An engine without a memory estimate trains one job per call (the contract's ``models_per_chunk``)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def models_per_chunk(self, jobs: Sequence[FitJob]) -> int:
        return 1

    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        return self._engine.fit(jobs, on_epoch)  # type: ignore[no-any-return]


def make_engine(name: str, spec: Spec, task: str, input_shape: tuple[int, ...], n_outputs: int, **options: Any) -> Any:
    """Build engine ``name``; every engine it returns has ``models_per_chunk``."""
    engine = _make_engine(name, spec, task, input_shape, n_outputs, **options)
    return engine if name == "stacked" else _OneAtATime(engine)


def fit_many(
    specs: Sequence[Spec],
    jobs: Sequence[FitJob],
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    on_epoch: EpochCallback | None = None,
) -> Iterator[tuple[int, FitResult]]:
    """Train every job under every spec of one :func:`share_groups` group as one program (spec-major)."""
    return stacked.fit_shared(specs, jobs, task, input_shape, n_outputs, on_epoch)
