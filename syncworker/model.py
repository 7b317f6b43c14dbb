"""Pure data types shared by the core: remote records and comments as both sides hold them.

`fields` are *native* values, flattened by the connector to JSON-safe scalars and lists
(Zenvia `status` is the status id, Salesforce `Status` the picklist value). The mapping layer
gives them canonical meaning; baselines store them as they were after the last sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class RemoteComment:
    """One comment (Salesforce CaseComment, Zenvia action)."""

    id: str
    record_id: str
    body: str
    public: bool
    created_at: datetime
    author_id: str | None = None
