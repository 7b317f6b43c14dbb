"""A link's history rows: appended with each commit, read by the operator, pruned by age."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from syncworker.store.repo._sql import _core
from syncworker.store.tables import HistoryEntry


def append_history(session: Session, *, rows: Sequence[HistoryEntry]) -> None:
    """One INSERT for all of a sync's entries, in the caller's transaction."""
    columns = ("link_id", "at", "kind", "side", "record_id", "field", "old", "new", "detail")
    values = [{name: getattr(row, name) for name in columns} for row in rows]
    session.flush()
    session.connection().execute(insert(HistoryEntry), values)


def history_of(session: Session, *, link_id: int) -> Sequence[HistoryEntry]:
    """A link's history, oldest first."""
    query = select(HistoryEntry).where(HistoryEntry.link_id == link_id)
    return session.exec(query.order_by(col(HistoryEntry.id))).all()


def prune_history(session: Session, *, before: datetime) -> int:
    """Delete history older than `before` (an index range on `at`); how many rows went."""
    result = _core(session, delete(HistoryEntry).where(col(HistoryEntry.at) < before))
    return result.rowcount
