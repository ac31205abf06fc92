"""Training specs of one :func:`~dlrun.engines.stacked.hparams.share_groups` group as one program,
reusing the compiled programs of earlier calls."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from dlrun.engines.base import EpochCallback, FitJob, FitResult
from dlrun.engines.stacked.engine import LOCK, StackedEngine
from dlrun.engines.stacked.hparams import hparam_paths, program_key, share_groups
from dlrun.errors import SpecError
from dlrun.spec.schema import Spec

ENGINES_KEPT = 8
"""Engines :func:`shared_engine` keeps (the most recently used)."""

_ENGINES: OrderedDict[tuple[Any, ...], StackedEngine] = OrderedDict()


def shared_engine(spec: Spec, task: str, input_shape: tuple[int, ...], n_outputs: int) -> StackedEngine:
    """A :class:`StackedEngine` for ``spec``, reused by every later spec with the same :func:`program_key`.

    A search asks for the same few programs batch after batch (and nested cross-validation
    once per outer fold): reusing the engine reuses its compiled programs, since each model's
    own scalars are inputs of the program, not constants in it.
    """
    key = (program_key(spec), task, tuple(int(d) for d in input_shape), int(n_outputs))
    with LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = StackedEngine(spec, task, input_shape, n_outputs, pad_blocks=True)
            _ENGINES[key] = engine
            while len(_ENGINES) > ENGINES_KEPT:
                _ENGINES.popitem(last=False)
        _ENGINES.move_to_end(key)
        return engine


def fit_many(
    specs: Sequence[Spec],
    jobs: Sequence[FitJob],
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    on_epoch: EpochCallback | None = None,
) -> Iterator[tuple[int, FitResult]]:
    """Train every job under every spec of one :func:`share_groups` group as one program.

    Args:
        specs: Specs that differ only in per-model scalars (one group).
        jobs: The folds, shared by all specs (same data and evaluation settings).
        task, input_shape, n_outputs: As for :class:`StackedEngine`.
        on_epoch: Progress callback.

    Yields:
        ``(spec index, result)`` for each spec and job, spec-major.

    Raises:
        SpecError: The specs cannot share a program.
    """
    if len(share_groups(specs)) != 1:
        raise SpecError([("sweep", "these specs differ in more than per-model scalars; group them with share_groups")])
    all_jobs: list[FitJob] = []
    owner: list[int] = []
    for si, spec in enumerate(specs):
        hp = hparam_paths(spec)
        for job in jobs:
            all_jobs.append(dataclasses.replace(job, hparams={**(job.hparams or {}), **hp}))
            owner.append(si)
    engine = shared_engine(specs[0], task, input_shape, n_outputs)
    for idx, result in enumerate(engine.fit(all_jobs, on_epoch)):
        yield owner[idx], result
