"""Pure data types shared by the core: remote records and comments as both sides hold them.

`fields` are *native* values, flattened by the connector to JSON-safe scalars and lists
(Zenvia `status` is the status id, the CRM's status what its API writes, e.g. a picklist
value). The mapping layer gives them canonical meaning; baselines store them as they were
after the last sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Side = Literal["crm", "zenvia"]
SIDES: tuple[Side, Side] = ("crm", "zenvia")
NativeFields = dict[str, Any]


def other_side(side: Side) -> Side:
    return "zenvia" if side == "crm" else "crm"


@dataclass(frozen=True)
class RemoteRecord:
    """One case/ticket as its remote holds it now."""

    id: str
    version: datetime
    fields: NativeFields
    deleted: bool = False
    # When the record's own fields last changed, as the remote tells it (comments excluded):
    # `newest_wins` compares these. None when the remote cannot say; `version` stands in.
    changed_at: datetime | None = None


@dataclass(frozen=True)
class RemoteComment:
    """One comment (a CRM record's comment, a Zenvia action)."""

    id: str
    record_id: str
    body: str
    public: bool
    created_at: datetime
    author_id: str | None = None


class LinkState(StrEnum):
    """Where a link stands; only an ACTIVE or CONFLICT link syncs its fields."""

    ACTIVE = "active"
    CONFLICT = "conflict"  # a manual-policy field waits for an operator
    ORPHANED = "orphaned"  # one side is gone or was unlinked: nothing syncs any more
    ERROR = "error"  # a sync of it was dead-lettered (set by the service)
    # a record answered 404 and its remote does not say it was deleted: kept, not synced
    # until it can be read again (or an operator restores the link)
    MISSING = "missing"


class BaseStatus(StrEnum):
    """The lifecycle stage every native status maps onto (Zenvia's base types, CRM-neutral)."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELED = "canceled"
