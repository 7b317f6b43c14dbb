"""The values a mapping file holds: scalars for value maps, dates for a scope, the CRM's name,
and the words its error messages use for what a value is. Pure."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import PlainValidator

Scalar = str | int | None
Direction = Literal["both", "crm_to_zenvia", "zenvia_to_crm"]
Policy = Literal["crm_wins", "zenvia_wins", "newest_wins", "manual"]
EndPolicy = Literal["close", "unlink"]


def yaml_kind(value: object) -> str:
    """The YAML word for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_scalar(value: object) -> bool:
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def _scalar(value: object) -> Scalar:
    """Value-map keys and values are ids or labels; YAML turns unquoted `on`/`yes` into booleans."""
    if isinstance(value, bool):
        raise ValueError(
            f"expected text, an integer or null; got a boolean {value!r} "
            "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
        )
    if value is None or isinstance(value, str | int):
        return value
    raise ValueError(f"expected text, an integer or null; got {yaml_kind(value)}")


Value = Annotated[Scalar, PlainValidator(_scalar)]

_CRM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _crm_name(value: object) -> str:
    """The CRM's name: links are stored under it (at most 32 characters) and the runtime
    wires the CRM's connector by it."""
    if not isinstance(value, str):
        raise ValueError(f"expected text; got {yaml_kind(value)} {value!r}")
    if not _CRM_NAME.fullmatch(value):
        raise ValueError(
            "expected a lowercase name of letters, digits and _ (at most 32 characters); "
            f"got {value!r}"
        )
    return value


CrmName = Annotated[str, PlainValidator(_crm_name)]


def _stamp(value: object) -> datetime:
    """A scope date: YAML's own date or timestamp, or ISO text; a date or naive time is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"expected a date or time (ISO 8601, e.g. 2026-01-31); got {value!r}"
            ) from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"expected a date or time (ISO 8601, e.g. 2026-01-31); got {yaml_kind(value)}")


Stamp = Annotated[datetime, PlainValidator(_stamp)]


def record_stamp(value: Any) -> datetime | None:
    """A record's time stamp as either remote writes it (ISO text, `Z` or `+0000`); None when
    absent or unreadable, which a scope or a matching window treats as not passing."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
