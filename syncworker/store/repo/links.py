"""Links: one per record per side, found, created, paired and saved fenced by revision."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from syncworker.model import Side
from syncworker.store.repo._sql import _core, _insert, _one_of
from syncworker.store.repo.intents import create_intent_for
from syncworker.store.tables import CommentLink, Link, Observation
from syncworker.store.types import utcnow


class DuplicateLinkError(Exception):
    """A second link for a record that is already linked: the mapping table refused it."""


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
