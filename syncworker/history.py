"""A pair's history: what each sync wrote, copied, created and decided, and what failed.

`of_sync` is pure: a committed plan and the records it was planned from become entries
(old and new value of each field written, per side; comments copied; creates; conflicts with
their policy and winner; state changes). The service appends them in the transaction that
commits the plan, and a dead letter's entry in the one that records it, so the history never
tells of a sync that did not commit. `prune` drops entries older than the retention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session

from syncworker import engine
from syncworker.mapping import ZENVIA_JUSTIFICATION
from syncworker.model import RemoteRecord, Side, other_side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetter, HistoryEntry

Kind = Literal["create", "update", "comment", "conflict", "state", "error"]
# A comment's first line is enough to recognise it; the rest stays on the remotes.
COMMENT_EXCERPT = 120


@dataclass(frozen=True)
class Entry:
    """One line of a pair's history, before it is stored."""

    kind: Kind
    side: Side | None
    record_id: str | None
    field: str | None = None
    old: Any = None
    new: Any = None
    detail: str = ""

    def row(self, *, link_id: int, at: datetime) -> HistoryEntry:
        return HistoryEntry(link_id=link_id, at=at, **asdict(self))


def of_sync(
    plan: engine.Plan,
    *,
    records: Mapping[Side, RemoteRecord | None],
    record_ids: Mapping[Side, str | None],
    previous_state: str,
) -> list[Entry]:
    """The entries of a plan that was applied in full. `records` are the states it was
    planned from (the old values); `record_ids` the link's ids after it ran (a create's new
    record); `previous_state` the link's state before it."""
    entries = [_conflict(conflict) for conflict in plan.conflicts]  # the decision, then writes
    for operation in plan.operations:
        if isinstance(operation, engine.CreateRecord):
            entries.append(_created(operation, record_ids))
        elif isinstance(operation, engine.UpdateFields):
            entries.extend(_updated(operation, records.get(operation.side)))
        else:
            entries.append(_commented(operation, record_ids))
    entries.extend(
        Entry(
            "comment",
            None,
            None,
            detail=f"paired crm comment {pair.crm_comment_id} with zenvia comment "
            f"{pair.zenvia_comment_id}: copied by an earlier, interrupted sync",
        )
        for pair in plan.comment_pairs
    )
    if plan.link_state != previous_state:
        reason = plan.reason or _open_conflicts(plan)
        entries.append(
            Entry("state", None, None, old=previous_state, new=str(plan.link_state), detail=reason)
        )
    return entries


def _created(operation: engine.CreateRecord, record_ids: Mapping[Side, str | None]) -> Entry:
    source = other_side(operation.side)
    looked_up = operation.client_email
    return Entry(
        "create",
        operation.side,
        record_ids.get(operation.side),
        new=dict(operation.fields),
        detail=f"created from {source} {operation.source_id}"
        + (f"; {engine.client_lookup_note(looked_up)}" if looked_up else ""),
    )


def _updated(operation: engine.UpdateFields, record: RemoteRecord | None) -> list[Entry]:
    before = record.fields if record is not None else {}
    return [
        Entry("update", operation.side, operation.record_id, native, before.get(native), value)
        for native, value in operation.changes.items()
        if native != ZENVIA_JUSTIFICATION  # rides along with a status; not a field of its own
    ]


def _commented(operation: engine.AddComment, record_ids: Mapping[Side, str | None]) -> Entry:
    source = other_side(operation.side)
    origin = (
        f"copied from {source} comment {operation.source_comment_id}"
        if operation.source_comment_id
        else "notice from syncworker"
    )
    visibility = "public" if operation.public else "internal"
    first_line = operation.body.splitlines()[0] if operation.body else ""
    return Entry(
        "comment",
        operation.side,
        record_ids.get(operation.side) or operation.record_id,
        new=first_line[:COMMENT_EXCERPT],
        detail=f"{visibility} comment {origin}",
    )


def _conflict(conflict: engine.Conflict) -> Entry:
    outcome = (
        f"{conflict.winner} wins" if conflict.winner else "parked until an operator resolves it"
    )
    return Entry(
        "conflict",
        conflict.winner,
        None,
        field=conflict.field,
        new={"crm": conflict.crm_value, "zenvia": conflict.zenvia_value},
        detail=f"{conflict.policy}: {outcome}",
    )


def _open_conflicts(plan: engine.Plan) -> str:
    parked = sorted(c.field for c in plan.conflicts if c.winner is None)
    return f"manual conflict on {', '.join(parked)}" if parked else ""


def of_dead_letter(letter: DeadLetter) -> Entry:
    """A sync that failed for good, with the remote's own message."""
    side: Side = "crm" if letter.side == "crm" else "zenvia"
    remote = {"status": letter.remote_status, "code": letter.remote_code}
    return Entry(
        "error",
        side,
        letter.record_id,
        new=remote if any(remote.values()) else None,
        detail=f"{letter.operation} failed ({letter.error_class}): {letter.message}",
    )


# -- storing ------------------------------------------------------------------------------------


def record_sync(
    session: Session,
    *,
    link_id: int,
    plan: engine.Plan,
    records: Mapping[Side, RemoteRecord | None],
    record_ids: Mapping[Side, str | None],
    previous_state: str,
    at: datetime,
) -> None:
    """Append a committed plan's entries in the caller's transaction; a plan that changed
    nothing (the echo of our own write) appends nothing and costs no statement."""
    entries = of_sync(plan, records=records, record_ids=record_ids, previous_state=previous_state)
    if entries:
        repo.append_history(session, rows=[e.row(link_id=link_id, at=at) for e in entries])


def record_dead_letter(session: Session, *, link_id: int, letter: DeadLetter, at: datetime) -> None:
    repo.append_history(session, rows=[of_dead_letter(letter).row(link_id=link_id, at=at)])


def prune(session: Session, *, now: datetime, retention_days: int) -> int:
    """Delete entries older than the retention; how many went."""
    return repo.prune_history(session, before=now - timedelta(days=retention_days))


def prune_expired(database_url: str, *, now: datetime, retention_days: int) -> int:
    """`prune` in a transaction of its own. Reconcile calls it once a pass: one indexed
    DELETE an hour, off the sync path, under reconcile's lock (never two at once)."""
    with session_scope(database_url) as session:
        return prune(session, now=now, retention_days=retention_days)


def rows_for_display(entries: Sequence[HistoryEntry]) -> list[dict[str, Any]]:
    """Entries oldest first, as plain data for `links history --json`."""
    return [
        entry.model_dump(mode="json", exclude={"link_id"})
        for entry in sorted(entries, key=lambda e: e.id or 0)
    ]


__all__ = [
    "Entry",
    "of_dead_letter",
    "of_sync",
    "prune",
    "prune_expired",
    "record_dead_letter",
    "record_sync",
    "rows_for_display",
]
