"""Dotted spec paths (``a.b[2].c``) and did-you-mean suggestions, shared by the spec and the search space."""

from __future__ import annotations

import difflib
import re
from typing import Any

from dlrun.errors import SpecError

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the nearest choice, or ``""``."""
    lower = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean '{lower[hits[0]]}'?)" if hits else ""


def short_repr(v: Any, limit: int = 80) -> str:
    """``repr(v)``, cut to ``limit`` characters: an error line never echoes a huge value."""
    text = repr(v)
    return text if len(text) <= limit else f"{text[: limit - 20]}… ({len(text)} characters)"


def lookup(raw: Any, *keys: str) -> Any:
    """``raw[k1][k2]...``, or None where a step is missing or not a mapping (for checks on raw specs)."""
    for k in keys:
        raw = raw.get(k) if isinstance(raw, dict) else None
    return raw


def set_path(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw[a][b][2][c] = value`` for ``key = 'a.b[2].c'``, creating mappings as needed.

    Where a step names the key of a one-key mapping list entry (``compile.optimizer.SGD``)
    the path walks into it, so ``compile.optimizer.SGD.learning_rate=0.1`` works.
    """
    parts: list[str | int] = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _TOKEN.finditer(key)]
    if not parts:
        raise SpecError([("--set", f"empty key in '{key}'")])
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SpecError([(key, f"index [{part}] is out of range")])
            node = node[part]
            continue
        if isinstance(node, str) and isinstance(nxt, str):
            node = None
        if not isinstance(node, dict):
            raise SpecError([(key, f"cannot set '{part}' inside a {type(node).__name__}")])
        child = node.get(part)
        if isinstance(child, str) and child == nxt:
            # "optimizer: sgd" overridden as optimizer.SGD.learning_rate
            child = {child: {}}
            node[part] = child
        if isinstance(child, str) and i + 1 < len(parts) - 1:
            child = {str(nxt): {}}
            node[part] = child
        if child is None:
            child = [] if isinstance(nxt, int) else {}
            node[part] = child
        if isinstance(child, dict) and isinstance(nxt, str) and len(child) == 1 and nxt not in child:
            only = next(iter(child))
            if only.lower() == nxt.lower():
                # same optimizer, different case: keep the user's spelling
                child[nxt] = child.pop(only)
            elif part in ("optimizer", "loss") and i + 1 < len(parts) - 1:
                node[part] = child = {nxt: {}}
        node = child
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError([(key, f"index [{last}] is out of range")])
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError([(key, f"cannot set '{last}' inside a {type(node).__name__}")])
