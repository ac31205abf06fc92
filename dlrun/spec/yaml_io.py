"""Reading a spec's YAML: duplicate keys refused, YAML 1.2 floats, and ``--set key.path=value`` overrides."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from dlrun.errors import SpecError
from dlrun.spec.dotted import set_path


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is read as YAML (``0.01``, ``[1, 2]``, ``true``)."""
    if "=" not in text:
        raise SpecError([("--set", f"must look like key.path=value, got '{text}'")])
    key, _, raw = text.partition("=")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loading, but ``1e-3`` and ``5E-4`` are floats, as in YAML 1.2 (PyYAML reads them as strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    # PyYAML keeps the last of two equal keys: a second `model:` would silently replace the first
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key != "<<" and key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key '{key}' (first at line {seen[key] + 1}); the second would silently replace the first",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_text(text: str) -> Any:
    """Parse YAML with :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; malformed YAML is a SpecError with line and column."""
    p = Path(path)
    if not p.is_file():
        raise SpecError([("", f"config file not found: {p}")], source=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [("", f"is not a text (UTF-8) YAML file: undecodable byte at offset {exc.start}; is it the right file?")],
            source=str(p),
        ) from None
    except OSError as exc:
        raise SpecError([("", f"cannot read the config: {exc.strerror or exc}")], source=str(p)) from None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError([("", "the file is empty; a spec needs at least the data and model sections")], source=str(p))
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([("", f"malformed YAML at {where}{problem}")], source=str(p)) from None
    if not isinstance(data, dict):
        raise SpecError([("", f"the file must hold a mapping of sections, got {type(data).__name__}")], source=str(p))
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` applied."""
    out = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        set_path(out, key, value)
    return out
