"""Pydantic's validation errors in the words of a mapping file: the key path and what was
expected there (the keys a section accepts, the values a choice allows)."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from syncworker.mapping.model import Mapping
from syncworker.mapping.values import yaml_kind

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def schema_problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [_schema_problem(error) for error in exc.errors(include_url=False)]


def _schema_problem(error: ErrorDetails) -> tuple[str, str]:
    loc = list(error["loc"])
    on_key = bool(loc) and loc[-1] == "[key]"
    if on_key:
        loc.pop()
    path = ".".join(str(part) for part in loc) or "(top level)"
    kind, given = error["type"], error.get("input")
    shown = _shown(given)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return path, "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return path, "missing required key"
    if kind in ("literal_error", "enum"):
        return path, f"expected {error.get('ctx', {}).get('expected')}; got {shown}"
    if kind == "greater_than":
        return path, f"expected more than {error.get('ctx', {}).get('gt')}; got {shown}"
    if kind == "too_short":
        return path, "expected at least one entry"
    if kind == "string_too_short":
        return path, "expected text; got an empty one"
    if kind in _TYPE_WORDS:
        as_key = " as a key" if on_key else ""
        return path, f"expected {_TYPE_WORDS[kind]}{as_key}; got {yaml_kind(given)} {shown}"
    if kind == "value_error":
        return path, str(error.get("ctx", {}).get("error", error["msg"]))
    return path, error["msg"]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: list[int | str]) -> list[str]:
    """The keys the section at `loc` accepts, by walking the model's annotations."""
    current: Any = Mapping
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = _without_none(info.annotation)
        elif get_origin(current) is dict:
            current = _without_none(get_args(current)[1])
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation
