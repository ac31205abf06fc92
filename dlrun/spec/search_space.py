"""The search space of ``dlrun search``: distributions over dotted spec paths, checked like every field.

A ``search:`` entry names a spec path and a distribution::

    compile.optimizer.SGD.learning_rate: {type: float, low: 1e-4, high: 0.3, log: true}
    model.layers[0].Dense.units: {type: categorical, choices: [30, 60, 90]}
    model.layers[1]: {type: categorical, choices: [{Dropout: {rate: 0.2}}, {GaussianNoise: {stddev: 0.1}}]}

Checks (no Keras, no Optuna import): the entry's own fields (``low < high``, ``log`` needs
``low > 0``, ...), that the path exists in the spec (with a did-you-mean), that it does not
change what is evaluated (data, evaluation, seeds), and that the spec stays valid at the
distribution's extremes and at every choice. Optuna distributions are built on demand.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from dlrun.catalog import CV_MODES, SEARCH_SETTINGS
from dlrun.errors import SpecError
from dlrun.spec.dotted import set_path, suggest

# Searching these would change what is measured (the rows, the folds, the seeds) or nothing at all.
_FORBIDDEN = {
    "name": "names the run folder",
    "seed": "would select the luckiest seed, not a better model",
    "output_dir": "is where files go",
    "data": "changes the rows being scored",
    "evaluation": "changes how the score is measured",
    "runtime": "does not change the model",
    "search": "is the search itself",
    "sweep": "belongs to `dlrun sweep`",
}
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Param:
    """One searched spec path.

    Attributes:
        path: Dotted spec path, e.g. ``compile.optimizer.SGD.learning_rate``.
        type: ``float``, ``int`` or ``categorical``.
        low: Lower bound (float/int).
        high: Upper bound (float/int).
        log: Sample on a log scale.
        step: Grid step (float/int) or None.
        choices: Candidate values (categorical); may be whole layer or optimizer entries.
    """

    path: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def labels(self) -> list[Any]:
        """What Optuna sees for each choice: scalars as they are, mappings and lists as compact YAML text."""
        return [choice_label(c) for c in self.choices]

    def value_of(self, sampled: Any) -> Any:
        """The spec value for what Optuna sampled (a label maps back to its choice)."""
        if self.type != "categorical":
            return int(sampled) if self.type == "int" else float(sampled)
        return self.choices[self.labels.index(sampled)]

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "categorical":
            return CategoricalDistribution(self.labels)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid(self) -> list[Any]:
        """Every value the grid sampler tries (labels for categorical).

        Raises:
            ValueError: A float range without ``step`` has no finite grid.
        """
        if self.type == "categorical":
            return self.labels
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ValueError("a float range needs a step for sampler grid")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]

    def extremes(self) -> list[Any]:
        """The values that bound what a trial can ask for: low and high, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


def choice_label(value: Any) -> Any:
    """A categorical choice as Optuna can store it: None, bool, int, float or str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip().removesuffix("...").strip()


def parse_space(space: dict[str, Any]) -> list[Param]:
    """The :class:`Param` of each entry of a checked ``search`` space, in file order."""
    out = []
    for path, entry in space.items():
        kind = entry["type"]
        if kind == "categorical":
            out.append(Param(path, kind, choices=tuple(entry["choices"])))
        else:
            out.append(
                Param(
                    path,
                    kind,
                    low=entry["low"],
                    high=entry["high"],
                    log=bool(entry.get("log", False)),
                    step=entry.get("step"),
                )
            )
    return out


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_entry(where: str, entry: Any) -> list[tuple[str, str]]:
    """The entry's own fields."""

    if not isinstance(entry, dict):
        return [(where, f"must be a mapping like {{type: float, low: 0.001, high: 0.1, log: true}}, got {entry!r}")]
    kind = entry.get("type")
    if kind not in _KEYS:
        hint = suggest(str(kind), list(_KEYS)) if kind is not None else ""
        return [(f"{where}.type", f"must be one of float, int, categorical, got {kind!r}{hint}")]
    problems = []
    for key in entry:
        if key not in _KEYS[kind]:
            valid = ", ".join(sorted(_KEYS[kind]))
            problems.append(
                (f"{where}.{key}", f"is not a field of a {kind} entry{suggest(str(key), list(_KEYS[kind]))}; {valid}")
            )
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            problems.append((f"{where}.choices", f"must be a non-empty list, got {choices!r}"))
        elif len({choice_label(c) for c in choices}) < len(choices):
            problems.append((f"{where}.choices", "has a repeated choice"))
        return problems
    low: Any = entry.get("low")
    high: Any = entry.get("high")
    step: Any = entry.get("step")
    for key, v in (("low", low), ("high", high)):
        if v is None:
            problems.append((f"{where}.{key}", f"is required for a {kind} entry"))
        elif not _num(v) or (kind == "int" and not isinstance(v, int)):
            problems.append((f"{where}.{key}", f"must be a{'n integer' if kind == 'int' else ' number'}, got {v!r}"))
    if problems:
        return problems
    if not low < high:
        problems.append((f"{where}.high", f"low must be below high, got low={low!r}, high={high!r}"))
    if entry.get("log", False) not in (True, False):
        problems.append((f"{where}.log", f"must be true or false, got {entry.get('log')!r}"))
    elif entry.get("log") and low <= 0:
        problems.append((f"{where}.low", f"must be > 0 with log: true, got {low!r}"))
    if step is not None:
        if not _num(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            problems.append(
                (f"{where}.step", f"must be a positive {'integer' if kind == 'int' else 'number'}, got {step!r}")
            )
        elif entry.get("log"):
            problems.append((f"{where}.step", "cannot be combined with log: true (Optuna samples one or the other)"))
    return problems


def _tokens(path: str) -> list[str | int]:
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _TOKEN.finditer(path)]


def _check_path(resolved: dict[str, Any], path: str, where: str) -> list[tuple[str, str]]:
    """That ``path`` names a field of the spec (or an argument of an existing layer/optimizer/loss entry)."""

    parts = _tokens(path)
    if not parts or "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") != path:
        return [(where, f"is not a dotted spec path like compile.optimizer.SGD.learning_rate, got '{path}'")]
    top = str(parts[0])
    if top in _FORBIDDEN:
        return [(where, f"'{top}' cannot be searched: it {_FORBIDDEN[top]}")]
    node: Any = resolved
    walked = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                return [(where, f"index [{part}] is out of range: {walked or 'the spec'} has {size} entries")]
            node = node[part]
            walked += f"[{part}]"
            continue
        if isinstance(node, str) and node.lower() == part.lower():
            node = {part: {}}  # optimizer: sgd searched as compile.optimizer.SGD.learning_rate
        if not isinstance(node, dict):
            return [(where, f"'{walked}' is a value, not a section: nothing named '{part}' inside it")]
        if part not in node:
            # a new constructor argument inside an existing layer/optimizer/loss entry is fine
            # (Keras checks it when the model is built); anywhere else the key must exist
            entry_args = i >= 1 and re.fullmatch(r"(model\.layers\[\d+\]|compile\.(optimizer|loss))\.[^.\[\]]+", walked)
            keys = [str(k) for k in node]
            if entry_args and i == len(parts) - 1 and not suggest(part, keys):
                return []
            return [(where, f"unknown key '{part}' in {walked or 'the spec'}{suggest(part, keys)}")]
        node = node[part]
        walked += f".{part}" if walked else part
    return []


def set_value(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``raw`` with ``path`` set to ``value`` (as ``--set`` would)."""

    out = copy.deepcopy(raw)
    set_path(out, path, copy.deepcopy(value))
    return out


def base_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without its ``search`` section and ``evaluation.outer``: what each trial starts from."""
    out = {k: copy.deepcopy(v) for k, v in raw.items() if k != "search"}
    if isinstance(out.get("evaluation"), dict):
        out["evaluation"].pop("outer", None)
    return out


def check_search(
    raw: dict[str, Any], validate: Callable[[dict[str, Any]], Any], values: bool = True
) -> list[tuple[str, str]]:
    """Every problem of the ``search`` section and ``evaluation.outer`` of a raw spec.

    Args:
        raw: The raw spec mapping.
        validate: The spec validator (:func:`dlrun.spec.schema.validate`), passed in because the spec's
            own validation calls this function.
        values: Also validate the spec at each distribution's extremes and each choice
            (only meaningful when the rest of the spec is valid).

    Returns:
        ``(dotted.path, message)`` pairs; empty when all is well.
    """
    search = raw.get("search")
    ev: dict[str, Any] = raw["evaluation"] if isinstance(raw.get("evaluation"), dict) else {}
    problems: list[tuple[str, str]] = []
    if ev.get("outer") is not None and not isinstance(search, dict):
        problems.append(("evaluation.outer", "nested cross-validation runs around a search: add a search section"))
    if not isinstance(search, dict):
        return problems
    mode = ev.get("mode", "split")
    if mode not in CV_MODES:
        problems.append(
            (
                "evaluation.mode",
                f"a search scores each trial by cross-validation: use one of {', '.join(CV_MODES)}, got '{mode}'",
            )
        )
    space = dict(search.get("space") or {}) if isinstance(search.get("space") or {}, dict) else {}
    space.update({k: v for k, v in search.items() if k not in SEARCH_SETTINGS and ("." in k or "[" in k)})
    if not space:
        problems.append(
            (
                "search",
                "has no parameters: add entries like compile.optimizer.SGD.learning_rate: "
                "{type: float, low: 0.0001, high: 0.1, log: true}",
            )
        )
    base = base_raw(raw)
    try:
        resolved: dict[str, Any] | None = validate(base).model_dump(mode="json") if values else None
    except SpecError:
        resolved = None
    for path, entry in space.items():
        where = f"search.{path}"
        own = _check_entry(where, entry)
        problems += own
        if resolved is None:
            continue
        at = _check_path(resolved, path, where)
        # the raw file may spell an optimizer differently from the resolved spec: accept either
        problems += at if at and _check_path(base, path, where) else []
        if own or at:
            continue
        param = parse_space({path: entry})[0]
        for v in param.extremes():
            try:
                validate(set_value(base, path, v))
            except SpecError as exc:
                for p, m in exc.problems:
                    problems.append((where, f"value {choice_label(v)!r} makes the spec invalid: {p}: {m}"))
            except Exception as exc:  # set_path refuses the path
                problems.append((where, str(exc)))
    if search.get("sampler") == "grid":
        for path, entry in space.items():
            if isinstance(entry, dict) and entry.get("type") == "float" and entry.get("step") is None:
                problems.append((f"search.{path}.step", "sampler grid needs a step for a float range (or use choices)"))
    return problems
