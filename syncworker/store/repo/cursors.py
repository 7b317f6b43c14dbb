"""Poll cursors: where each side's listing goes on; they only move forward."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from syncworker.model import Side
from syncworker.store.tables import Cursor
from syncworker.store.types import utcnow


class CursorRegression(Exception):
    """A cursor was asked to move backwards: bookmarks only move forward."""


def get_cursor(session: Session, *, side: Side) -> Cursor | None:
    return session.get(Cursor, side)


def advance_cursor(session: Session, *, side: Side, watermark: datetime, last_id: str) -> None:
    cursor = session.get(Cursor, side)
    if cursor is None:
        session.add(Cursor(side=side, watermark=watermark, last_id=last_id))
        return
    if (watermark, last_id) < (cursor.watermark, cursor.last_id):
        raise CursorRegression(
            f"{side} cursor would move back from {cursor.watermark.isoformat()} "
            f"to {watermark.isoformat()}"
        )
    cursor.watermark, cursor.last_id, cursor.updated_at = watermark, last_id, utcnow()
    session.add(cursor)


def save_listing(
    session: Session, *, side: Side, listing: dict[str, Any] | None, start: datetime
) -> None:
    """Where the side's poll pass goes on. A side polled for the first time gets its cursor at
    `start`, where the pass lists from."""
    cursor = session.get(Cursor, side) or Cursor(side=side, watermark=start, last_id="")
    cursor.listing, cursor.updated_at = listing, utcnow()
    session.add(cursor)


def finish_listing(session: Session, *, side: Side, listed_up_to: datetime) -> None:
    """A pass read its whole listing: no position to keep, and the watermark moves up to what
    the listing provably held (never back)."""
    cursor = session.get(Cursor, side) or Cursor(side=side, watermark=listed_up_to, last_id="")
    if listed_up_to > cursor.watermark:
        cursor.watermark, cursor.last_id = listed_up_to, ""
    cursor.listing, cursor.updated_at = None, utcnow()
    session.add(cursor)
