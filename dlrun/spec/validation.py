"""Validation of a whole spec: every problem at once, each with its dotted path and the nearest valid name.

:func:`validate` runs the pydantic models (:mod:`dlrun.spec.models`), the Keras name and argument
checks (:mod:`dlrun.spec.keras_checks`) and the search-space checks, and raises one
:class:`~dlrun.errors.SpecError` listing them all. Nothing here imports Keras.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dlrun.errors import SpecError
from dlrun.spec.dotted import lookup, short_repr, suggest
from dlrun.spec.keras_checks import check_keras
from dlrun.spec.models import FieldProblem, Spec
from dlrun.spec.search_space import check_search
from dlrun.spec.yaml_io import apply_overrides, read_yaml


def _fmt_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the spec section that ``loc`` (the parent of a bad key) points into."""
    cls: Any = Spec
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        cls = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return list(getattr(cls, "model_fields", {})) if cls is not None else []


def _pydantic_problems(err: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = _fmt_loc(loc)
        typ = e["type"]
        given = e.get("input")
        if typ == "extra_forbidden":
            name = str(loc[-1])
            fields = _fields_at(loc[:-1])
            hint = suggest(name, fields)
            valid = f"; valid keys: {', '.join(fields)}" if fields and not hint else ""
            problems.append((path, f"unknown key '{name}'{hint}{valid}"))
        elif typ == "missing":
            problems.append((path, "is required"))
        elif typ in ("literal_error",):
            exp = e.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']+)'", exp)
            hint = suggest(str(given)[:100], choices)
            problems.append((path, f"must be one of {exp}, got {short_repr(given)}{hint}"))
        elif typ == "value_error" and isinstance(e.get("ctx", {}).get("error"), FieldProblem):
            # a cross-field check of a section: reported at the field it names, not at the section
            problem = e["ctx"]["error"]
            problems.append((f"{path}.{problem.field}" if path else problem.field, problem.message))
        elif typ in ("value_error", "assertion_error"):
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append((path, msg))
        else:
            problems.append((path, f"{e['msg'][0].lower()}{e['msg'][1:]}, got {short_repr(given)}"))
    # pydantic reports each alternative of a union; keep one line per path and message
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return _collapse_unions(unique)


def _collapse_unions(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Where a union produced several lines for one path, keep the most informative."""
    by_path: dict[str, list[str]] = {}
    for path, msg in problems:
        by_path.setdefault(path, []).append(msg)
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    for path, _ in problems:
        if path in done:
            continue
        done.add(path)
        msgs = by_path[path]
        if len(msgs) == 1:
            out.append((path, msgs[0]))
        else:
            out.append((path, " or ".join(dict.fromkeys(m.split(", got ")[0] for m in msgs)) + _got(msgs)))
    return out


def _got(msgs: list[str]) -> str:
    for m in msgs:
        if ", got " in m:
            return ", got " + m.split(", got ", 1)[1]
    return ""


def validate(raw: dict[str, Any], source: str | None = None) -> Spec:
    """Validate a raw mapping into a :class:`Spec`, reporting every problem at once.

    Raises:
        SpecError: With one ``(dotted.path, message)`` per problem.
    """
    problems: list[tuple[str, str]] = []
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as err:
        problems = _pydantic_problems(err)
    for p in check_keras(raw):
        if p not in problems:
            problems.append(p)
    if isinstance(raw.get("search"), dict) or lookup(raw, "evaluation", "outer") is not None:
        problems += [p for p in check_search(raw, validate, values=not problems) if p not in problems]
    if problems or spec is None:
        # one readable line each: a huge value is never echoed in full
        problems = [(p, m if len(m) <= 400 else m[:380] + f"… ({len(m)} characters)") for p, m in problems]
        raise SpecError(problems, source=source)
    return _resolve_source(spec, source)


def _resolve_source(spec: Spec, config: str | None) -> Spec:
    """A relative CSV path is read from the config's folder (where it was written), if it is there."""
    src = spec.data.source
    if config is None or spec.data.kind != "csv" or re.match(r"^[a-z]+://", src) or Path(src).is_absolute():
        return spec
    beside = Path(config).parent / Path(src).expanduser()
    if beside.is_file() and Path(config).parent != Path("."):
        data = spec.data.model_copy(update={"source": str(beside)})
        return spec.model_copy(update={"data": data})
    return spec


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, override (``--set``) and validate a spec file."""
    raw = read_yaml(path)
    return validate(apply_overrides(raw, overrides or []), source=str(path))


def resolved_dict(spec: Spec) -> dict[str, Any]:
    """The fully resolved spec (defaults filled in) as plain data for ``config.yaml``."""
    return spec.model_dump(mode="json")


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlrun experiment spec"
    return schema
