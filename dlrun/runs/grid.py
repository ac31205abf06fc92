"""A sweep's grid: ``--grid`` items and ``sweep.grid`` expanded to validated points, before anything trains."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlrun.errors import InputError, SpecError
from dlrun.spec.schema import Spec, apply_overrides, load_yaml_text, read_yaml, validate


@dataclass(frozen=True)
class SweepPoint:
    """One combination of the grid.

    Attributes:
        overrides: ``{dotted.key: value}`` applied to the base spec.
        folder: Sub-folder name, e.g. ``batch_size=16,learning_rate=0.01``.
        spec: The validated spec of this point.
    """

    overrides: dict[str, Any]
    folder: str
    spec: Spec


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """Parse ``--grid key=v1,v2,v3`` options; each value is read as YAML.

    Raises:
        SpecError: An item is not ``key=values`` or has no values.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise SpecError([("--grid", f"must look like key.path=v1,v2,..., got '{item}'")])
        key, _, raw = item.partition("=")
        values = [_yaml_value(v) for v in _split_values(raw)]
        if not values:
            raise SpecError([(f"--grid {key}", "needs at least one value")])
        grid[key.strip()] = values
    return grid


def _grid(declared: dict[str, list[Any]] | None, grid_items: list[str]) -> dict[str, list[Any]]:
    """The spec's ``sweep.grid`` updated by ``--grid`` items.

    Raises:
        InputError: The grid is empty.
    """
    grid = dict(declared or {})
    grid.update(parse_grid(grid_items))
    if not grid:
        raise InputError("a sweep needs a grid: --grid key.path=v1,v2 or a sweep.grid section in the spec")
    return grid


def grid_as_search(config: Path, sets: list[str], grid_items: list[str]) -> dict[str, Any] | None:
    """A sweep with ``evaluation.outer`` as the raw spec of a grid search, for nested cross-validation.

    Nested cross-validation runs the whole selection inside each outer training part; for a sweep
    the selection is "the best point of the grid", which is a search whose sampler walks the grid.
    The grid (``sweep.grid`` plus ``--grid``) becomes ``search:`` entries of type ``categorical``
    with ``sampler: grid`` and one trial per point.

    Returns:
        The raw spec (without ``sweep``, with ``search``), or None when the sweep has no ``evaluation.outer``.

    Raises:
        InputError: No grid, or a ``search`` section too (which of the two would be nested is unclear).
    """
    raw = apply_overrides(read_yaml(config), sets)
    evaluation = raw.get("evaluation")
    if not isinstance(evaluation, dict) or evaluation.get("outer") is None:
        return None
    sweep = raw.get("sweep")
    grid = _grid(sweep.get("grid") if isinstance(sweep, dict) else None, grid_items)
    if raw.get("search") is not None:
        raise InputError(
            f"{config} has a search section and a sweep grid with evaluation.outer: nested cross-validation "
            "runs one of them; use `dlrun search` for the search, or remove the search section"
        )
    search: dict[str, Any] = {key: {"type": "categorical", "choices": list(values)} for key, values in grid.items()}
    search.update(trials=math.prod(len(values) for values in grid.values()), sampler="grid")
    out = {k: v for k, v in raw.items() if k != "sweep"}
    out["search"] = search
    return out


def _split_values(raw: str) -> list[str]:
    """Split on commas outside brackets, so ``[8,8],[16,16]`` gives two values."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [v.strip() for v in out if v.strip()]


def _yaml_value(text: str) -> Any:
    try:
        return load_yaml_text(text)
    except yaml.YAMLError:
        return text


def short_key(key: str, keys: list[str]) -> str:
    last = re.split(r"[.\[\]]+", key.strip("]"))[-1]
    same = [k for k in keys if re.split(r"[.\[\]]+", k.strip("]"))[-1] == last]
    return last if len(same) == 1 else key


def folder_value(v: Any) -> str:
    text = (
        yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip() if not isinstance(v, str) else v
    )
    return re.sub(r"[^A-Za-z0-9_.+\-]+", "_", text).strip("_") or "_"


def expand(config: Path, sets: list[str], grid_items: list[str]) -> tuple[Spec, list[SweepPoint]]:
    """Validate the base spec and every point of the grid (YAML ``sweep.grid`` plus ``--grid``).

    Returns:
        The base spec and the points in grid order (the last key varies fastest).

    Raises:
        SpecError: Every problem of every point, each path prefixed by the point's overrides.
    """
    raw = apply_overrides(read_yaml(config), sets)
    base = validate(raw, source=str(config))
    grid = _grid(base.sweep.grid if base.sweep else None, grid_items)
    raw.pop("sweep", None)
    keys = list(grid)
    points: list[SweepPoint] = []
    problems: list[tuple[str, str]] = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, combo))
        label = ",".join(f"{short_key(k, keys)}={folder_value(v)}" for k, v in overrides.items())
        try:
            point_raw = apply_overrides(
                raw,
                [
                    f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                    for k, v in overrides.items()
                ],
            )
            spec = validate(point_raw, source=str(config))
        except SpecError as exc:
            problems += [(f"[{label}] {p}", m) for p, m in exc.problems]
            continue
        spec = spec.model_copy(update={"sweep": None})
        points.append(SweepPoint(overrides, label, spec))
    if problems:
        raise SpecError(problems, source=str(config))
    return base, points
