"""Write-ahead intents: a create or comment recorded, and its sends counted, before it is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from syncworker.model import Side
from syncworker.store.repo._sql import _insert
from syncworker.store.tables import Intent, IntentStatus
from syncworker.store.types import utcnow


def begin_intent(
    session: Session, *, key: str, link_id: int | None, side: Side, kind: str, source_id: str
) -> Intent:
    """Record that we intend to create something remotely; idempotent on the key.

    `attempts` counts the sends that may have reached the remote (see `count_attempt`): when
    it is above zero, the caller must look for an earlier attempt's result before sending.
    """
    now = utcnow()
    statement = _insert(session, Intent).values(
        idempotency_key=key,
        link_id=link_id,
        side=side,
        kind=kind,
        source_id=source_id,
        status=IntentStatus.PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.execute(statement.on_conflict_do_nothing())
    intent = get_intent(session, key=key)
    assert intent is not None
    return intent


def count_attempt(
    session: Session, *, key: str, delta: int = 1, baselines: dict[str, Any] | None = None
) -> None:
    """+1 right before a send (committed first, so a crash mid-send is remembered); -1 when the
    send was refused before reaching the remote (our own rate gate, or a 429). The send's time
    is added to (or, on -1, the newest taken from) `attempt_times`. A create's send also
    records the baselines its plan assumes (what the created record will hold)."""
    now = utcnow()
    values: dict[str, Any] = {"attempts": Intent.attempts + delta, "updated_at": now}
    if baselines is not None:
        values["baselines"] = baselines
    times = session.exec(
        select(Intent.attempt_times).where(Intent.idempotency_key == key).with_for_update()
    ).first()
    kept = list(times or [])
    values["attempt_times"] = (
        kept + [now.isoformat()] * delta if delta > 0 else kept[: max(0, len(kept) + delta)]
    )
    session.execute(update(Intent).where(col(Intent.idempotency_key) == key).values(**values))


def attempt_times(intent: Intent) -> list[datetime]:
    """When each of the intent's sends that may have reached the remote began."""
    return [datetime.fromisoformat(stamp) for stamp in intent.attempt_times or []]


def get_intent(session: Session, *, key: str) -> Intent | None:
    return session.exec(select(Intent).where(Intent.idempotency_key == key)).first()


def create_intent_for(session: Session, *, link_id: int, side: Side) -> Intent | None:
    """The intent of the create that was to fill `side` of the link, if one was ever begun."""
    query = select(Intent).where(
        Intent.link_id == link_id, Intent.side == side, Intent.kind == "create"
    )
    return session.exec(query.order_by(col(Intent.id).desc())).first()


def complete_intent(session: Session, *, key: str, remote_id: str) -> None:
    intent = get_intent(session, key=key)
    if intent is not None:
        intent.status, intent.remote_id, intent.updated_at = IntentStatus.DONE, remote_id, utcnow()
        session.add(intent)
