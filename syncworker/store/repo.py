"""Data access for the mapping store: every query the service needs, and nothing else.

Plain functions with an explicit session and keyword-only arguments. Uniqueness is the
database's job (unique constraints + ON CONFLICT); these functions never check-then-insert.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, any_, bindparam, case, delete, func, insert, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from syncworker.model import LinkState, RemoteRecord, Side
from syncworker.store.tables import (
    CommentLink,
    Cursor,
    DeadLetter,
    DeadLetterStatus,
    HistoryEntry,
    Intent,
    IntentStatus,
    Link,
    Observation,
    SyncRun,
)
from syncworker.store.types import UTCDateTime, utcnow


class DuplicateLinkError(Exception):
    """A second link for a record that is already linked: the mapping table refused it."""


def _core(
    session: Session, statement: Executable, params: dict[str, Any] | None = None
) -> CursorResult[Any]:
    """Run a Core UPDATE on the session's transaction without the ORM's bulk-update
    bookkeeping (a third of a hot-path statement's cost); pending objects are flushed first,
    as the ORM's autoflush would."""
    session.flush()
    return session.connection().execute(statement, params)


def _insert(session: Session, table: type[SQLModel]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both Postgres and SQLite."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _one_of(session: Session, column: Any, values: Sequence[str]) -> Any:
    """`column IN (values)`; on Postgres `column = ANY(array)`: one parameter, not one per
    value, which halves the cost of a reconcile chunk's 1,000-id lookups."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))


# -- links ------------------------------------------------------------------------------------


def get_link(session: Session, link_id: int) -> Link | None:
    return session.get(Link, link_id)


@dataclass(frozen=True)
class PairRows:
    """What a sync reads first: the link, its comment links, each side's observation."""

    link: Link
    comment_links: Sequence[CommentLink]
    observations: dict[Side, Observation]


_crm_seen, _zenvia_seen = aliased(Observation), aliased(Observation)
# Built once: the sync's hot path pays for executing these, not for building them.
_PAIR = (
    select(Link, _crm_seen, _zenvia_seen)
    .outerjoin(
        _crm_seen,
        and_(col(_crm_seen.side) == "crm", col(_crm_seen.remote_id) == col(Link.crm_id)),
    )
    .outerjoin(
        _zenvia_seen,
        and_(
            col(_zenvia_seen.side) == "zenvia", col(_zenvia_seen.remote_id) == col(Link.zenvia_id)
        ),
    )
    .where(col(Link.id) == bindparam("link_id"))
)
_COMMENT_LINKS = select(CommentLink).where(col(CommentLink.link_id) == bindparam("link_id"))


def load_pair(session: Session, *, link_id: int) -> PairRows | None:
    """The link with both sides' observations (one joined query) and its comment links."""
    row = session.exec(_PAIR, params={"link_id": link_id}).first()
    if row is None:
        return None
    link, crm_seen, zenvia_seen = row
    seen: dict[Side, Observation | None] = {"crm": crm_seen, "zenvia": zenvia_seen}
    return PairRows(
        link=link,
        comment_links=session.exec(_COMMENT_LINKS, params={"link_id": link_id}).all(),
        observations={side: row for side, row in seen.items() if row is not None},
    )


_LINK_OF: dict[Side, SelectOfScalar[Link]] = {
    "crm": select(Link).where(
        col(Link.crm_system) == bindparam("crm_system"), col(Link.crm_id) == bindparam("id")
    ),
    "zenvia": select(Link).where(col(Link.zenvia_id) == bindparam("id")),
}


def find_link(session: Session, *, side: Side, remote_id: str, crm_system: str) -> Link | None:
    params = {"id": remote_id, **({"crm_system": crm_system} if side == "crm" else {})}
    return session.exec(_LINK_OF[side], params=params).first()


def synced_versions(
    session: Session, *, side: Side, remote_ids: Sequence[str], crm_system: str
) -> dict[str, datetime | None]:
    """The version last synced of each linked record among `remote_ids` (None: linked, never
    synced), in one query that reads only those two columns (no baselines)."""
    if side == "crm":
        ids, versions = col(Link.crm_id), col(Link.crm_version)
        query = select(ids, versions).where(
            Link.crm_system == crm_system, _one_of(session, ids, remote_ids)
        )
    else:
        ids, versions = col(Link.zenvia_id), col(Link.zenvia_version)
        query = select(ids, versions).where(_one_of(session, ids, remote_ids))
    return {remote_id: version for remote_id, version in session.exec(query) if remote_id}


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


def pair_records(session: Session, *, crm_system: str, crm_id: str, zenvia_id: str) -> Link:
    """Link two records that already exist (found by onboarding or listed by an operator): a
    new complete link, or a half link of one of them completed (a poll saw it before; nothing
    was created for it). Without baselines, so the first sync merges them. A record linked to
    another record, or whose counterpart a create may be making, raises DuplicateLinkError."""
    found = (
        find_link(session, side="crm", remote_id=crm_id, crm_system=crm_system),
        find_link(session, side="zenvia", remote_id=zenvia_id, crm_system=crm_system),
    )
    links = [link for link in found if link is not None]
    if not links:
        return add_link(session, Link(crm_system=crm_system, crm_id=crm_id, zenvia_id=zenvia_id))
    half = links[0]
    missing: Side = "zenvia" if half.zenvia_id is None else "crm"
    if (
        len(links) > 1
        or (half.crm_id and half.zenvia_id)
        or half.id is None
        or create_intent_for(session, link_id=half.id, side=missing) is not None
    ):
        raise DuplicateLinkError(
            f"{crm_system} case {crm_id} or Zenvia ticket {zenvia_id} is already linked "
            f"(link {', '.join(dict.fromkeys(str(link.id) for link in links))}): "
            "one link per record per side"
        )
    values = {
        f"{missing}_id": zenvia_id if missing == "zenvia" else crm_id,
        **dict.fromkeys(("crm_baseline", "zenvia_baseline", "crm_version", "zenvia_version")),
        "last_synced_at": None,
    }
    if not save_link_state(
        session, link_id=half.id, expected_revision=half.revision, values=values
    ):
        raise DuplicateLinkError(f"link {half.id} changed while it was being paired")
    session.refresh(half)
    return half


def count_finished(
    session: Session,
    *,
    crm_system: str,
    crm_ids: Sequence[str],
    zenvia_ids: Sequence[str],
    since: datetime,
) -> tuple[int, int]:
    """Among the links of these records: (finished — synced at or after `since`, or flagged
    in error by a dead letter —, flagged in error)."""
    mine = or_(
        and_(col(Link.crm_system) == crm_system, _one_of(session, col(Link.crm_id), crm_ids)),
        _one_of(session, col(Link.zenvia_id), zenvia_ids),
    )
    error = col(Link.state) == "error"
    finished = func.count().filter(or_(col(Link.last_synced_at) >= since, error))
    done, failed = session.exec(select(finished, func.count().filter(error)).where(mine)).one()
    return int(done), int(failed)


def save_link_state(
    session: Session, *, link_id: int, expected_revision: int, values: dict[str, Any]
) -> bool:
    """Compare-and-set: write only if nobody committed this link since we read it (fencing)."""
    statement = (
        update(Link)
        .where(col(Link.id) == link_id, col(Link.revision) == expected_revision)
        .values(**values, revision=expected_revision + 1, updated_at=utcnow())
    )
    return _core(session, statement).rowcount == 1


def all_links(session: Session) -> Iterator[Link]:
    """Every link, streamed in batches so a 100k-pair reconcile stays small in memory."""
    yield from session.exec(select(Link).order_by(col(Link.id)).execution_options(yield_per=1000))


def linked_record_ids(
    session: Session, *, except_states: Sequence[str]
) -> Iterator[tuple[str | None, str | None]]:
    """(crm_id, zenvia_id) of every link in none of `except_states`, streamed: the orphan check
    of a 100k-pair reconcile reads two short columns, not whole links with their baselines."""
    query = select(Link.crm_id, Link.zenvia_id).where(col(Link.state).not_in(except_states))
    yield from session.exec(query.execution_options(yield_per=5000))


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


# -- observations -----------------------------------------------------------------------------


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
    may be followed by a change that keeps the same stamp (Salesforce stamps whole seconds):
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
    pair's last commit; re-reading an unchanged version does not refresh it. `margin`: see
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
    rewritten = {
        record.id
        for record in latest.values()
        if record.id in payloads
        and record.version == stored[record.id][0]
        and record.fields != payloads[record.id]
    }
    newer = [
        record
        for record in latest.values()
        if record.id not in stored
        or record.version > stored[record.id][0]
        or record.id in rewritten
    ]
    now = fetched_at or utcnow()
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
        .where(
            col(Link.comments_due_at) <= now,
            col(Link.zenvia_id).is_not(None),
            col(Link.state).not_in((LinkState.ORPHANED, LinkState.MISSING)),
            ~queued,
        )
        .order_by(col(Link.comments_due_at))
        .limit(limit)
    )
    return [ticket_id for ticket_id in session.exec(query) if ticket_id]


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


def replay_dead_letters_of(session: Session, *, records: Sequence[tuple[Side, str]]) -> None:
    """Mark the open dead letters of these (side, record id)s replayed, in one statement."""
    if records:
        session.execute(
            update(DeadLetter)
            .where(
                col(DeadLetter.status) == DeadLetterStatus.OPEN,
                tuple_(col(DeadLetter.side), col(DeadLetter.record_id)).in_(records),
            )
            .values(status=DeadLetterStatus.REPLAYED, replayed_at=utcnow())
        )


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


def newest_dead_letters(session: Session, *, limit: int) -> Sequence[DeadLetter]:
    """The dead letters that failed most recently, newest first, whatever their status."""
    query = select(DeadLetter).order_by(col(DeadLetter.last_seen).desc(), col(DeadLetter.id).desc())
    return session.exec(query.limit(limit)).all()


# -- history ----------------------------------------------------------------------------------


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
