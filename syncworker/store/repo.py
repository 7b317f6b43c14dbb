"""Data access for the mapping store: every query the service needs, and nothing else.

Plain functions with an explicit session and keyword-only arguments. Uniqueness is the
database's job (unique constraints + ON CONFLICT); these functions never check-then-insert.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from syncworker.model import RemoteRecord, Side
from syncworker.store.tables import (
    CommentLink,
    Cursor,
    DeadLetter,
    DeadLetterStatus,
    Intent,
    IntentStatus,
    Link,
    Observation,
    SyncRun,
)
from syncworker.store.types import utcnow


class DuplicateLinkError(Exception):
    """A second link for a record that is already linked: the mapping table refused it."""


def _insert(session: Session, table: type[SQLModel]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both Postgres and SQLite."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# -- links ------------------------------------------------------------------------------------


def get_link(session: Session, link_id: int) -> Link | None:
    return session.get(Link, link_id)


def find_link(session: Session, *, side: Side, remote_id: str, crm_system: str) -> Link | None:
    if side == "crm":
        query = select(Link).where(Link.crm_system == crm_system, Link.crm_id == remote_id)
    else:
        query = select(Link).where(Link.zenvia_id == remote_id)
    return session.exec(query).first()


def find_links(
    session: Session, *, side: Side, remote_ids: Sequence[str], crm_system: str
) -> dict[str, Link]:
    """The links of many records of one side, in one query, keyed by record id."""
    if side == "crm":
        column = col(Link.crm_id)
        query = select(Link).where(Link.crm_system == crm_system, column.in_(remote_ids))
    else:
        column = col(Link.zenvia_id)
        query = select(Link).where(column.in_(remote_ids))
    found = session.exec(query).all()
    return {(link.crm_id if side == "crm" else link.zenvia_id) or "": link for link in found}


def create_link(session: Session, *, side: Side, remote_id: str, crm_system: str) -> Link:
    """Insert a half link for a record seen on one side, or return the one that exists."""
    ids = {"crm_id": remote_id} if side == "crm" else {"zenvia_id": remote_id}
    statement = _insert(session, Link).values(crm_system=crm_system, **ids, **_link_defaults())
    session.execute(statement.on_conflict_do_nothing())
    link = find_link(session, side=side, remote_id=remote_id, crm_system=crm_system)
    assert link is not None
    return link


def _link_defaults() -> dict[str, Any]:
    now = utcnow()
    return {
        "state": "active",
        "conflict_fields": [],
        "revision": 0,
        "created_at": now,
        "updated_at": now,
    }


def add_link(session: Session, link: Link) -> Link:
    """Insert a complete link; a record already linked raises DuplicateLinkError."""
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError as exc:
        raise DuplicateLinkError(
            f"{link.crm_system} case {link.crm_id} or Zenvia ticket {link.zenvia_id} "
            "is already linked: one link per record per side"
        ) from exc
    return link


def save_link_state(
    session: Session, *, link_id: int, expected_revision: int, values: dict[str, Any]
) -> bool:
    """Compare-and-set: write only if nobody committed this link since we read it (fencing)."""
    statement = (
        update(Link)
        .where(col(Link.id) == link_id, col(Link.revision) == expected_revision)
        .values(**values, revision=expected_revision + 1, updated_at=utcnow())
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]


def delete_link(session: Session, *, link_id: int) -> None:
    link = session.get(Link, link_id)
    if link is not None:
        session.delete(link)


def all_links(session: Session) -> Iterator[Link]:
    """Every link, streamed in batches so a 100k-pair reconcile stays small in memory."""
    yield from session.exec(select(Link).order_by(col(Link.id)).execution_options(yield_per=1000))


def count_links_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Link.state, func.count()).group_by(Link.state)).all()
    return dict(rows)


# -- cursors ----------------------------------------------------------------------------------


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


# -- intents ----------------------------------------------------------------------------------


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


def count_attempt(session: Session, *, key: str, delta: int = 1) -> None:
    """+1 right before a send (committed first, so a crash mid-send is remembered); -1 when the
    send was refused before reaching the remote (our own rate gate, or a 429)."""
    session.execute(
        update(Intent)
        .where(col(Intent.idempotency_key) == key)
        .values(attempts=Intent.attempts + delta, updated_at=utcnow())
    )


def get_intent(session: Session, *, key: str) -> Intent | None:
    return session.exec(select(Intent).where(Intent.idempotency_key == key)).first()


def complete_intent(session: Session, *, key: str, remote_id: str) -> None:
    intent = get_intent(session, key=key)
    if intent is not None:
        intent.status, intent.remote_id, intent.updated_at = IntentStatus.DONE, remote_id, utcnow()
        session.add(intent)


def pending_intents(session: Session, *, older_than: datetime) -> Sequence[Intent]:
    query = select(Intent).where(
        Intent.status == IntentStatus.PENDING, col(Intent.updated_at) < older_than
    )
    return session.exec(query).all()


# -- observations -----------------------------------------------------------------------------


def observe(
    session: Session, *, side: Side, record: RemoteRecord, fetched_at: datetime | None = None
) -> bool:
    """Store the newest version seen; True when it is newer than what was synced and unqueued."""
    return bool(observe_many(session, side=side, records=[record], fetched_at=fetched_at))


def observe_many(
    session: Session,
    *,
    side: Side,
    records: Sequence[RemoteRecord],
    fetched_at: datetime | None = None,
) -> list[str]:
    """Store the newest version seen of each record in two statements; return the ids that are
    newer than what was synced and not queued yet (the caller marks them queued and enqueues).

    `fetched_at` is when the remote was read (not when this row is written): a sync may trust
    the payload only if it was read after the pair's last commit.
    """
    latest: dict[str, RemoteRecord] = {}
    for record in records:
        if record.id not in latest or record.version > latest[record.id].version:
            latest[record.id] = record
    if not latest:
        return []
    now = fetched_at or utcnow()
    statement = _insert(session, Observation).values(
        [
            {
                "side": side,
                "remote_id": record.id,
                "version": record.version,
                "payload": record.fields,
                "deleted": record.deleted,
                "observed_at": now,
            }
            for record in latest.values()
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=["side", "remote_id"],
        set_={
            "version": statement.excluded.version,
            "payload": statement.excluded.payload,
            "deleted": statement.excluded.deleted,
            "observed_at": now,
        },
        where=statement.excluded.version >= Observation.version,
    )
    session.execute(statement)
    rows = session.exec(
        select(Observation)
        .where(Observation.side == side, col(Observation.remote_id).in_(list(latest)))
        .execution_options(populate_existing=True)
    ).all()
    due = {
        row.remote_id
        for row in rows
        if (row.synced_version is None or row.version > row.synced_version)
        and row.sync_queued_at is None
    }
    return [remote_id for remote_id in latest if remote_id in due]


def mark_queued(session: Session, *, side: Side, remote_ids: Sequence[str]) -> None:
    if remote_ids:
        session.execute(
            update(Observation)
            .where(col(Observation.side) == side, col(Observation.remote_id).in_(remote_ids))
            .values(sync_queued_at=utcnow())
        )


def get_observation(session: Session, *, side: Side, remote_id: str) -> Observation | None:
    return session.get(Observation, (side, remote_id), populate_existing=True)


def finish_sync(session: Session, *, side: Side, remote_id: str, version: datetime) -> bool:
    """Record that `version` is synced; True when a newer version arrived meanwhile.

    The queued flag stays set while a sync is queued or running, so polls never pile up
    duplicates behind a rate-limited sync. It is cleared here, unless a poll saw a newer
    version during the sync: then it stays set and the caller queues one more sync.
    """
    row = session.get(Observation, (side, remote_id), populate_existing=True)
    if row is None:
        return False
    row.synced_version = max(version, row.synced_version or version)
    newer = row.version > row.synced_version
    if not newer:
        row.sync_queued_at = None
    session.add(row)
    return newer


def clear_queued(session: Session, *, side: Side, remote_id: str) -> None:
    """No sync is queued for this record any more (it needs no link)."""
    session.execute(
        update(Observation)
        .where(col(Observation.side) == side, col(Observation.remote_id) == remote_id)
        .values(sync_queued_at=None)
    )


def give_up_version(session: Session, *, side: Side, remote_id: str) -> None:
    """The version seen now was dead-lettered: stop polling it back; a newer one syncs again."""
    session.execute(
        update(Observation)
        .where(col(Observation.side) == side, col(Observation.remote_id) == remote_id)
        .values(sync_queued_at=None, synced_version=Observation.version)
    )


def stale_queued(session: Session, *, older_than: datetime) -> Sequence[Observation]:
    """Syncs marked queued long ago whose message may have been lost with a broker restart."""
    query = select(Observation).where(col(Observation.sync_queued_at) < older_than)
    return session.exec(query).all()


def backlog(session: Session) -> int:
    query = select(func.count()).where(col(Observation.sync_queued_at).is_not(None))
    return session.exec(query).one()


# -- comment links ----------------------------------------------------------------------------


def link_comments(
    session: Session, *, link_id: int, crm_comment_id: str, zenvia_comment_id: str, origin: Side
) -> None:
    statement = _insert(session, CommentLink).values(
        link_id=link_id,
        crm_comment_id=crm_comment_id,
        zenvia_comment_id=zenvia_comment_id,
        origin=origin,
        created_at=utcnow(),
    )
    session.execute(statement.on_conflict_do_nothing())


def comment_links_for(session: Session, *, link_id: int) -> Sequence[CommentLink]:
    return session.exec(select(CommentLink).where(CommentLink.link_id == link_id)).all()


# -- dead letters -----------------------------------------------------------------------------


def record_dead_letter(
    session: Session,
    *,
    link_id: int | None,
    side: Side,
    record_id: str,
    operation: str,
    error_class: str,
    message: str,
    remote_status: int | None = None,
    remote_code: str | None = None,
    details: Sequence[str] = (),
) -> DeadLetter:
    """Open (or re-open, counting attempts) the dead letter for this operation on this record."""
    query = select(DeadLetter).where(
        DeadLetter.side == side,
        DeadLetter.record_id == record_id,
        DeadLetter.operation == operation,
    )
    letter = session.exec(query).first()
    now = utcnow()
    if letter is None:
        letter = DeadLetter(
            link_id=link_id,
            side=side,
            record_id=record_id,
            operation=operation,
            error_class=error_class,
            message=message,
            details=list(details),
            remote_status=remote_status,
            remote_code=remote_code,
        )
    else:
        letter.attempts += 1
        letter.last_seen = now
        letter.status = DeadLetterStatus.OPEN
        letter.error_class, letter.message, letter.details = error_class, message, list(details)
        letter.remote_status, letter.remote_code = remote_status, remote_code
    session.add(letter)
    session.flush()
    return letter


def list_dead_letters(session: Session, *, status: str | None = None) -> Sequence[DeadLetter]:
    query = select(DeadLetter).order_by(col(DeadLetter.id))
    if status:
        query = query.where(DeadLetter.status == status)
    return session.exec(query).all()


def count_dead_letters(session: Session, *, status: str) -> int:
    query = select(func.count()).where(DeadLetter.status == status)
    return session.exec(query).one()


def get_dead_letter(session: Session, letter_id: int) -> DeadLetter | None:
    return session.get(DeadLetter, letter_id)


def close_dead_letter(session: Session, *, letter_id: int, status: DeadLetterStatus) -> None:
    letter = session.get(DeadLetter, letter_id)
    if letter is not None:
        letter.status = status
        letter.replayed_at = utcnow() if status == DeadLetterStatus.REPLAYED else None
        session.add(letter)


def open_dead_letters_for(session: Session, *, side: Side, record_id: str) -> Sequence[DeadLetter]:
    query = select(DeadLetter).where(
        DeadLetter.side == side,
        DeadLetter.record_id == record_id,
        DeadLetter.status == DeadLetterStatus.OPEN,
    )
    return session.exec(query).all()


# -- sync runs --------------------------------------------------------------------------------


def start_run(session: Session, *, kind: str, side: Side | None = None) -> SyncRun:
    run = SyncRun(kind=kind, side=side)
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session, *, run_id: int, complete: bool, counts: dict[str, int], error: str | None
) -> None:
    run = session.get(SyncRun, run_id)
    if run is not None:
        run.finished_at, run.complete, run.counts, run.error = utcnow(), complete, counts, error
        session.add(run)


def last_runs(session: Session, *, limit: int = 10) -> Sequence[SyncRun]:
    return session.exec(select(SyncRun).order_by(col(SyncRun.id).desc()).limit(limit)).all()


def last_complete_run(session: Session, *, kind: str, side: Side | None = None) -> SyncRun | None:
    query = (
        select(SyncRun)
        .where(SyncRun.kind == kind, col(SyncRun.complete).is_(True))
        .order_by(col(SyncRun.id).desc())
    )
    if side is not None:
        query = query.where(SyncRun.side == side)
    return session.exec(query).first()
