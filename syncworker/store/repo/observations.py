"""Observations: the newest version seen of each record, and whether a sync of it is queued."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, or_, update
from sqlmodel import Session, col, select

from syncworker.model import LinkState, RemoteRecord, Side
from syncworker.store.repo._sql import _core, _insert, _one_of
from syncworker.store.tables import Link, Observation
from syncworker.store.types import UTCDateTime, utcnow


def observe(
    session: Session, *, side: Side, record: RemoteRecord, fetched_at: datetime | None = None
) -> bool:
    """Store the newest version seen; True when it is newer than what was synced and unqueued."""
    return bool(observe_many(session, side=side, records=[record], fetched_at=fetched_at))


# How far short of a boundary read's stamp a synced version is recorded (`boundary_version`).
UNSETTLED = timedelta(microseconds=1)


def boundary_version(version: datetime, read_at: datetime | None, margin: timedelta) -> datetime:
    """The version to record as synced after reading `version` at `read_at`.

    A read made within `margin` (the remote's stamp precision plus clock skew) of the stamp
    may be followed by a change that keeps the same stamp (a CRM may stamp whole seconds):
    it is recorded a microsecond short, so a later read of the same stamp syncs once more.
    """
    if read_at is not None and read_at < version + margin:
        return version - UNSETTLED
    return version


def needs_sync(
    version: datetime, synced: datetime | None, read_at: datetime, margin: timedelta
) -> bool:
    """Whether a record read at `read_at` holds anything its last sync did not: a newer stamp,
    or the same stamp as a boundary read, now read late enough to be final (an earlier
    re-read is no better than the one synced, and would only loop)."""
    if synced is None or version > synced + UNSETTLED:
        return True
    return version > synced and read_at >= version + margin


def observe_many(
    session: Session,
    *,
    side: Side,
    records: Sequence[RemoteRecord],
    fetched_at: datetime | None = None,
    margin: timedelta = timedelta(0),
    compare_payloads: bool = False,
) -> list[str]:
    """Store each record whose version is newer than the one stored; return the ids that are
    newer than what was synced and not queued yet (the caller marks them queued and enqueues).

    One read of the stored versions, then one upsert of the newer records only: a reconcile
    pass over unchanged records writes nothing. `fetched_at` is when the remote was read (not
    when this row is written): a sync may trust the payload only if it was read after the
    pair's last commit; re-reading an unchanged version does not refresh it, unless that read
    is the one that makes a stamp synced a microsecond short final. `margin`: see
    `needs_sync`. With `compare_payloads` (polls) a record listed again with the same version
    but another payload (a change committed late, with its earlier stamp) is stored and due.
    """
    latest: dict[str, RemoteRecord] = {}
    for record in records:
        if record.id not in latest or record.version > latest[record.id].version:
            latest[record.id] = record
    if not latest:
        return []
    mine = (Observation.side == side, _one_of(session, col(Observation.remote_id), list(latest)))
    # One read: a row a sync inserts meanwhile is either in both views or in neither.
    columns = [
        col(Observation.remote_id),
        col(Observation.version),
        col(Observation.synced_version),
        col(Observation.sync_queued_at),
        *([col(Observation.payload)] if compare_payloads else []),
    ]
    stored: dict[str, tuple[datetime, datetime | None, datetime | None]] = {}
    payloads: dict[str, Mapping[Any, Any]] = {}
    for row in session.execute(select(*columns).where(*mine)):
        stored[row[0]] = (row[1], row[2], row[3])
        if compare_payloads:
            payloads[row[0]] = row[4]
    now = fetched_at or utcnow()
    rewritten = {
        record.id
        for record in latest.values()
        if record.id in payloads
        and record.version == stored[record.id][0]
        and record.fields != payloads[record.id]
    }
    # A stamp synced a microsecond short (read within its own second), read again now late
    # enough to be final: this read is the final one, so the row takes its time, and the sync
    # it queues plans on it instead of taking the record as the last sync left it.
    settled = {
        record.id
        for record in latest.values()
        if record.id in stored
        and record.version == stored[record.id][0]
        and (synced := stored[record.id][1]) is not None
        and synced < record.version
        and needs_sync(record.version, synced, now, margin)
    }
    newer = [
        record
        for record in latest.values()
        if record.id not in stored
        or record.version > stored[record.id][0]
        or record.id in rewritten | settled
    ]
    if newer:
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
                for record in newer
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
    due = []
    for record in latest.values():
        version, synced, queued = stored.get(record.id, (record.version, None, None))
        changed = record.id in rewritten or needs_sync(
            max(version, record.version), synced, now, margin
        )
        if queued is None and changed:
            due.append(record.id)
    return due


# The links the comment sweep lists: a ticket to list, on a link that still syncs.
_SWEPT = (
    col(Link.zenvia_id).is_not(None),
    col(Link.state).not_in((LinkState.ORPHANED, LinkState.MISSING)),
)


def comments_due(session: Session, *, now: datetime, limit: int) -> list[str]:
    """Ticket ids whose comment sweep is due, oldest first, skipping links that are orphaned
    or missing and tickets with a sync queued already (one index range scan)."""
    if limit <= 0:
        return []
    queued = (
        select(Observation.remote_id)
        .where(
            col(Observation.side) == "zenvia",
            col(Observation.remote_id) == col(Link.zenvia_id),
            col(Observation.sync_queued_at).is_not(None),
        )
        .exists()
    )
    query = (
        select(Link.zenvia_id)
        .where(col(Link.comments_due_at) <= now, *_SWEPT, ~queued)
        .order_by(col(Link.comments_due_at))
        .limit(limit)
    )
    return [ticket_id for ticket_id in session.exec(query) if ticket_id]


def comment_sweep(session: Session, *, now: datetime) -> tuple[int, int, datetime | None]:
    """The sweep's standing: tickets on it (open, linked), how many are due by `now`, and the
    oldest due time among them (None: none due)."""
    due = col(Link.comments_due_at) <= now
    query = select(
        func.count(),
        func.count().filter(due),
        func.min(col(Link.comments_due_at)).filter(due),
    ).where(col(Link.comments_due_at).is_not(None), *_SWEPT)
    scheduled, overdue, oldest = session.exec(query).one()
    return scheduled, overdue, oldest


def mark_queued(session: Session, *, side: Side, remote_ids: Sequence[str]) -> None:
    if remote_ids:
        session.execute(
            update(Observation)
            .where(col(Observation.side) == side, col(Observation.remote_id).in_(remote_ids))
            .values(sync_queued_at=utcnow())
        )


def get_observation(session: Session, *, side: Side, remote_id: str) -> Observation | None:
    return session.get(Observation, (side, remote_id), populate_existing=True)


def finish_sync(
    session: Session,
    *,
    side: Side,
    remote_id: str,
    version: datetime,
    synced: datetime | None = None,
) -> bool:
    """Record that the sync read `version`; True when a newer version arrived meanwhile.

    The queued flag stays set while a sync is queued or running, so polls never pile up
    duplicates behind a rate-limited sync. It is cleared here, unless a poll saw a newer
    version during the sync: then it stays set and the caller queues one more sync.
    `synced` (≤ `version`) is what to record as synced when the read may not have been final
    (a stamp shared by a later change): the next poll that sees `version` syncs again.
    One statement (UPDATE … RETURNING), no read first.
    """
    params = {
        "the_side": side,
        "the_id": remote_id,
        "the_version": version,
        "the_synced": synced or version,
    }
    return bool(_core(session, _FINISH_SYNC, params).scalar())


def _finish_sync_statement() -> Any:
    stored = col(Observation.synced_version)
    version = bindparam("the_version", type_=UTCDateTime())
    recorded = bindparam("the_synced", type_=UTCDateTime())
    read = case((or_(stored.is_(None), stored < version), version), else_=stored)
    return (
        update(Observation)
        .where(
            col(Observation.side) == bindparam("the_side"),
            col(Observation.remote_id) == bindparam("the_id"),
        )
        .values(
            synced_version=case((or_(stored.is_(None), stored < recorded), recorded), else_=stored),
            sync_queued_at=case(
                (col(Observation.version) > read, col(Observation.sync_queued_at)), else_=None
            ),
        )
        # RETURNING sees the new synced_version, which is never above `version`
        .returning(col(Observation.version) > read)
    )


_FINISH_SYNC = _finish_sync_statement()


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


def stale_queued(session: Session, *, side: Side, older_than: datetime) -> list[str]:
    """Records of `side` marked queued before `older_than`: their message may be lost."""
    query = select(Observation.remote_id).where(
        col(Observation.side) == side, col(Observation.sync_queued_at) < older_than
    )
    return list(session.exec(query))


def backlog(session: Session) -> int:
    query = select(func.count()).where(col(Observation.sync_queued_at).is_not(None))
    return session.exec(query).one()
