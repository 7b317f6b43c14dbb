"""Use cases: poll one side, sync one pair, reconcile everything, resync, replay.

The imperative shell around the pure engine: gather both states (I/O), ask `engine.plan`,
apply the plan through the connectors with the write-ahead intent protocol, then commit the
new baselines fenced by the link's revision. Every function takes the `Runtime` explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from syncworker import bookkeeping, client_lookup, engine, history, metrics
from syncworker.connectors.base import Listed, ListingPage, Unreadable
from syncworker.connectors.errors import (
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.context import Runtime
from syncworker.markers import find_marker
from syncworker.model import (
    SIDES,
    BaseStatus,
    LinkState,
    NativeFields,
    RemoteComment,
    RemoteRecord,
    Side,
    other_side,
)
from syncworker.ratelimit import background_priority
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Cursor, Link, Observation

log = logging.getLogger(__name__)

POLL_CHUNK = 100


class StaleLink(Exception):
    """Another sync committed this link while we worked; the task retries and re-plans."""


class RecordMissing(NotFoundError):
    """A linked record answered 404 and its remote does not confirm a deletion."""

    def __init__(self, side: Side, record_id: str, cause: NotFoundError) -> None:
        self.side, self.record_id = side, record_id
        super().__init__(
            f"{side} record {record_id} cannot be read ({cause.message}) and its remote does "
            "not say it was deleted: the link is kept and marked missing; it syncs again once "
            "the record can be read (or run `syncworker links restore`)",
            remote=cause.remote,
            status=cause.status,
            code=cause.code,
            path=cause.path,
        )


class _Adopted(Exception):
    """A create found its record from a lost reply and linked it: plan again, as a merge."""


@dataclass
class SyncOutcome:
    """What one sync did, for logs, metrics and `resync --dry-run`."""

    link_id: int | None
    writes: int = 0
    plan_lines: list[str] = field(default_factory=list)
    state: str = LinkState.ACTIVE
    skipped: str | None = None


@dataclass
class PollOutcome:
    side: Side
    seen: int = 0
    enqueued: int = 0
    swept: int = 0  # syncs queued to list a ticket's comments (the comment sweep)
    complete: bool = True
    stopped_by: str | None = None


# -- polling -----------------------------------------------------------------------------------


def poll(rt: Runtime, side: Side) -> PollOutcome:
    """Observe what changed on `side` since the cursor (minus an overlap), enqueue syncs.

    Each page the remote serves is observed, and its syncs queued, before the next request,
    so every request is progress. An ordered listing moves the cursor with its records; an
    unordered one (Zenvia) keeps its position after each page, and the cursor moves only
    once the whole pass is read. A rate limit stops the poll early; the next poll goes on
    from there. Syncs queued long ago whose message was lost are sent again first (when no
    sync message waits in the broker).
    """
    outcome = PollOutcome(side=side)
    connector = rt.connectors[side]
    with session_scope(rt.database_url) as session:
        cursor = repo.get_cursor(session, side=side)
        run_id = _start_run(session, "poll", side)
    listing = _Pass.resumed(cursor) or _Pass.new(rt, cursor)
    outcome.enqueued += _requeue_stale(rt, when_idle=True)
    try:
        with background_priority():
            pages = iter(connector.changed_pages(listing.since, listing.resume))
            while (page := _next_page(rt, pages)) is not None:
                read_at, records = page[0], list(_readable(rt, side, page[1].records))
                for chunk in _chunks(records, POLL_CHUNK):
                    outcome.seen += len(chunk)
                    outcome.enqueued += _observe_chunk(rt, side, chunk, read_at)
                if not connector.listing_ordered:
                    listing.resume = page[1].resume
                    _save_listing(rt, side, listing)
            _finish_listing(rt, side, listing.started)
        if side == "zenvia":
            outcome.swept = _sweep_comments(rt)
    except RemoteError as error:
        outcome.complete, outcome.stopped_by = False, error.describe()
        log.warning("poll of %s stopped early: %s", side, error.describe())
    with session_scope(rt.database_url) as session:
        repo.finish_run(
            session,
            run_id=run_id,
            complete=outcome.complete,
            counts={"seen": outcome.seen, "enqueued": outcome.enqueued},
            error=outcome.stopped_by,
        )
    return outcome


@dataclass
class _Pass:
    """One poll pass: the `since` it lists from, when it started, and (unordered listings)
    the connector's position after the last page it observed."""

    since: datetime
    started: datetime
    resume: dict[str, Any] | None = None

    @classmethod
    def new(cls, rt: Runtime, cursor: Cursor | None) -> _Pass:
        started = rt.clock()
        overlap = timedelta(seconds=rt.settings.poll_overlap_seconds)
        return cls((cursor.watermark if cursor else started) - overlap, started)

    @classmethod
    def resumed(cls, cursor: Cursor | None) -> _Pass | None:
        stored = cursor.listing if cursor else None
        if stored is None:
            return None
        try:
            return cls(
                datetime.fromisoformat(stored["since"]),
                datetime.fromisoformat(stored["started"]),
                stored["resume"],
            )
        except (KeyError, TypeError, ValueError):  # not a stored pass: start a new one
            return None

    def dump(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "started": self.started.isoformat(),
            "resume": self.resume,
        }


def _next_page(rt: Runtime, pages: Iterator[ListingPage]) -> tuple[datetime, ListingPage] | None:
    """The next page and when its request began (a read's time: whole-second stamps are
    judged against it)."""
    read_at = rt.clock()
    page = next(pages, None)
    return None if page is None else (read_at, page)


def _save_listing(rt: Runtime, side: Side, listing: _Pass) -> None:
    with session_scope(rt.database_url) as session:
        repo.save_listing(session, side=side, listing=listing.dump(), start=listing.since)


def _finish_listing(rt: Runtime, side: Side, started: datetime) -> None:
    """After a complete pass the cursor moves up to what the listing provably held, even when
    nothing changed: a quiet remote's first poll pins the start (records made before the next
    poll are then found), and a quiet day's polls list one date, not every date since the
    last change."""
    listed_up_to = started - rt.connectors[side].listing_lag - _settle_margin(rt, side)
    with session_scope(rt.database_url) as session:
        repo.finish_listing(session, side=side, listed_up_to=listed_up_to)


def _sweep_comments(rt: Runtime) -> int:
    """Queue syncs that list the actions of linked open tickets whose sweep is due.

    Zenvia may not move a ticket's updatedAt when an action is added, so a poll cannot see an
    agent's new comment: each open ticket's actions are listed again `zenvia_comment_sweep_
    seconds` after the last listing, oldest due first, as many a poll as the budget allows
    (`_sweep_batch`). Queued like a poll's syncs (the flag dedupes them).
    """
    if rt.settings.zenvia_actions_move_updated_at:
        return 0
    with session_scope(rt.database_url) as session:
        due = repo.comments_due(session, now=rt.clock(), limit=_sweep_batch(rt))
        repo.mark_queued(session, side="zenvia", remote_ids=due)
    for ticket_id in due:
        rt.enqueue_sync("zenvia", ticket_id)
    return len(due)


def _sweep_batch(rt: Runtime) -> int:
    """Tickets to sweep this poll: at night a fixed batch; in business hours the sweep's share
    of what the window gives per poll interval, never the last requests the syncs need."""
    settings, gate = rt.settings, rt.gates["zenvia"]
    remaining = gate.remaining()
    if remaining is None or gate.window is None:
        return settings.zenvia_sweep_night_batch
    per_poll = (
        settings.zenvia_sweep_share
        * settings.zenvia_rate_limit
        * settings.poll_interval_seconds
        / settings.zenvia_rate_window_seconds
    )
    return max(0, min(max(1, round(per_poll)), remaining - gate.window.poll_reserve))


def _observe_chunk(rt: Runtime, side: Side, chunk: list[RemoteRecord], fetched_at: datetime) -> int:
    """Observations and queued flags, then the messages, then (an ordered listing's) cursor.

    The flags commit before the messages go out, so a worker that starts a sync at once sees
    the flag it must clear. A crash between the two leaves flagged records without a message:
    the cursor has not moved, and flags older than `stale_queued_seconds` are sent again
    (`_requeue_stale`).
    """
    with session_scope(rt.database_url) as session:
        due = repo.observe_many(
            session,
            side=side,
            records=chunk,
            fetched_at=fetched_at,
            margin=_settle_margin(rt, side),
            compare_payloads=True,
        )
        repo.mark_queued(session, side=side, remote_ids=due)
    for record_id in due:
        rt.enqueue_sync(side, record_id)
    if rt.connectors[side].listing_ordered:
        last = max(chunk, key=lambda record: (record.version, record.id))
        with session_scope(rt.database_url) as session:
            cursor = repo.get_cursor(session, side=side)
            if cursor is None or (last.version, last.id) > (cursor.watermark, cursor.last_id):
                repo.advance_cursor(session, side=side, watermark=last.version, last_id=last.id)
    return len(due)


def _readable(rt: Runtime, side: Side, listing: Iterable[Listed]) -> Iterator[RemoteRecord]:
    """The listing's records; one the remote served unreadable is parked as a dead letter with
    the reason, and the rest go on. (Reconcile then misses it, so its link, if any, is checked
    by a sync, which reads the record again and parks it again: never taken as deleted.)"""
    for item in listing:
        if isinstance(item, Unreadable):
            log.error("%s record %s is unreadable: %s", side, item.id, item.error.describe())
            dead_letter(rt, side, item.id, item.error, operation="sync")
        else:
            yield item


def _chunks(records: Iterable[RemoteRecord], size: int) -> Iterator[list[RemoteRecord]]:
    chunk: list[RemoteRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- syncing one pair ---------------------------------------------------------------------------


def sync_record(
    rt: Runtime, side: Side, record_id: str, *, dry_run: bool = False, fresh: bool = False
) -> SyncOutcome:
    """Bring the pair that `record_id` on `side` belongs to into agreement.

    Safe to run twice and concurrently with itself: the pair's lock makes the second run wait
    (LockBusy → retry) and, once it runs, it finds nothing to do. `fresh` reads both sides
    again instead of trusting the last poll (operators' resyncs); a dry run writes nothing,
    not even a link.
    """
    resolved = _resolve_link(rt, side, record_id, create=not dry_run)
    if resolved is None:
        return _dry_run_unlinked(rt, side, record_id)
    link_id, ours = resolved
    with rt.locks.hold(f"link:{link_id}"):
        if ours and not dry_run:
            _adopt(rt, link_id, side, record_id)
        try:
            outcome = _sync_link(rt, link_id, dry_run=dry_run, fresh=fresh or dry_run)
        except _Adopted:
            outcome = _sync_link(rt, link_id, dry_run=dry_run, fresh=fresh)
    if outcome.skipped and not dry_run:
        with session_scope(rt.database_url) as session:
            repo.clear_queued(session, side=side, remote_id=record_id)
    return outcome


def _dry_run_unlinked(rt: Runtime, side: Side, record_id: str) -> SyncOutcome:
    """What the first sync of a record nobody linked yet would do."""
    try:
        record = rt.connectors[side].get(record_id)
    except NotFoundError:
        return SyncOutcome(link_id=None, skipped=f"{side} record {record_id} does not exist")
    comments = rt.connectors[side].list_comments(record_id)
    plan = engine.plan(
        rt.mapping,
        link=None,
        crm=record if side == "crm" else None,
        zenvia=record if side == "zenvia" else None,
        crm_comments=comments if side == "crm" else (),
        zenvia_comments=comments if side == "zenvia" else (),
    )
    return SyncOutcome(link_id=None, plan_lines=plan.describe(), state=plan.link_state)


def resolve_conflict(
    rt: Runtime, link_id: int, resolutions: dict[str, Side], *, dry_run: bool = False
) -> SyncOutcome:
    """An operator settles fields parked in a `manual` conflict: the named side wins."""
    with rt.locks.hold(f"link:{link_id}"):
        return _sync_link(rt, link_id, dry_run=dry_run, resolutions=resolutions)


def restore_link(rt: Runtime, link_id: int) -> SyncOutcome:
    """An operator puts back a link that was orphaned or marked missing by mistake: it is
    active again and synced at once, reading both sides. A record that still cannot be read
    marks it missing again (NotFoundError); one confirmed deleted orphans it again."""
    with rt.locks.hold(f"link:{link_id}"):
        with session_scope(rt.database_url) as session:
            link = repo.get_link(session, link_id)
            if link is None:
                raise LookupError(f"no link with id {link_id}")
            values = {"state": LinkState.ACTIVE, "state_reason": None}
            if not repo.save_link_state(
                session, link_id=link_id, expected_revision=link.revision, values=values
            ):
                raise StaleLink(f"link {link_id} changed while it was being restored")
        try:
            return _sync_link(rt, link_id, dry_run=False, fresh=True)
        except RecordMissing as missing:
            dead_letter(rt, missing.side, missing.record_id, missing, operation="sync")
            raise


def _resolve_link(
    rt: Runtime, side: Side, record_id: str, *, create: bool
) -> tuple[int, bool] | None:
    """The link of a record, and whether it is ours to adopt: a record our own create made
    whose link does not hold it yet (the create's reply was lost, or is still on its way)."""
    with session_scope(rt.database_url) as session:
        link = repo.find_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        if link is not None and link.id is not None:
            return link.id, False
    owner = _created_by_us(rt, side, record_id)
    with session_scope(rt.database_url) as session:
        link = repo.get_link(session, owner) if owner is not None else None
        if link is not None and link.id is not None and record_id_of(link, side) is None:
            return link.id, True
        if not create:
            return None
        new = repo.create_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        assert new.id is not None
        return new.id, False


def _created_by_us(rt: Runtime, side: Side, record_id: str) -> int | None:
    """The link whose create made this record, if it carries our fingerprint.

    A case we created holds the ticket id in its external-id field; a ticket we created holds
    the create intent's marker in its first action.
    """
    connector = rt.connectors[side]
    try:
        if side == "crm":
            record = connector.get(record_id)
            ticket_id = record.fields.get(rt.settings.salesforce_external_id_field)
            if not ticket_id:
                return None
            with session_scope(rt.database_url) as session:
                link = repo.find_link(
                    session, side="zenvia", remote_id=str(ticket_id), crm_system=rt.crm_system
                )
                return link.id if link else None
        for comment in connector.list_comments(record_id):
            key = find_marker(comment.body)
            if key:
                with session_scope(rt.database_url) as session:
                    intent = repo.get_intent(session, key=key)
                    if intent is not None and intent.kind == "create":
                        return intent.link_id
    except NotFoundError:
        return None
    return None


def _adopt(rt: Runtime, link_id: int, side: Side, record_id: str) -> None:
    """Link a record our own create made (DESIGN invariant 2), with the baselines that create
    planned, so the first merge is three-way: an edit made on either side since the create is
    a change like any other, not a both-sides conflict. Held under the pair's lock."""
    with session_scope(rt.database_url) as session:
        link = repo.get_link(session, link_id)
        if link is None or record_id_of(link, side) is not None:
            return  # the create's own reply linked it meanwhile
        intent = repo.create_intent_for(session, link_id=link_id, side=side)
    if side == "zenvia" and link.crm_id:
        _note_ticket_on_case(rt, link.crm_id, record_id)
    values: dict[str, object] = {"crm_id" if side == "crm" else "zenvia_id": record_id}
    baselines = bookkeeping.adopted_baselines(
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        intent.baselines if intent is not None else None,
    )
    if baselines is not None:
        values |= {"crm_baseline": baselines["crm"], "zenvia_baseline": baselines["zenvia"]}
    with session_scope(rt.database_url) as session:
        if intent is not None:
            repo.complete_intent(session, key=intent.idempotency_key, remote_id=record_id)
        if not repo.save_link_state(
            session, link_id=link_id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link_id} changed while adopting {side} record {record_id}")


def _note_ticket_on_case(rt: Runtime, case_id: str, ticket_id: str) -> None:
    """The case's external id names its ticket: Salesforce upserts and our recognition key on it."""
    rt.connectors["crm"].update(case_id, {rt.settings.salesforce_external_id_field: ticket_id})


@dataclass
class _Pair:
    link: Link
    records: dict[Side, RemoteRecord | None]
    comments: dict[Side, list[RemoteComment]]
    observed: set[Side] = field(default_factory=set)
    # when each side was read from its remote (None: taken as the last sync left it)
    read_at: dict[Side, datetime | None] = field(default_factory=dict)
    listed: set[Side] = field(default_factory=set)  # sides whose comments were listed


def _sync_link(
    rt: Runtime,
    link_id: int,
    *,
    dry_run: bool,
    fresh: bool = False,
    resolutions: dict[str, Side] | None = None,
) -> SyncOutcome:
    with session_scope(rt.database_url) as session:
        rows = repo.load_pair(session, link_id=link_id)
    if rows is None:
        return SyncOutcome(link_id=link_id, skipped="link no longer exists")
    pairs = [
        engine.CommentPair(
            c.crm_comment_id, c.zenvia_comment_id, "crm" if c.origin == "crm" else "zenvia"
        )
        for c in rows.comment_links
    ]
    sweep = _sweep_due(rt, rows.link)
    # a sweep's listing is background work: it leaves the budget's reserve to writes and polls
    with background_priority("sweep") if sweep else contextlib.nullcontext():
        pair = _load_pair(
            rt, rows.link, rows.observations, trust_observations=not fresh, sweep=sweep
        )
    if sweep:
        _list_crm_comments_for_new_ones(rt, pair, pairs)
    plan = _plan(rt, pair, pairs, resolutions)
    stale = _overwritten(plan) & pair.observed
    # The re-read of a stale Zenvia side is paid with the plan's writes, all or nothing: a sync
    # that must wait for the budget has spent nothing, and its retry reads again anyway.
    reserved = 0 if dry_run else zenvia_cost(plan) + int("zenvia" in stale)
    with rt.gates["zenvia"].reserve(reserved):
        while stale:  # never overwrite a side judged from a poll's read or from the last sync
            for side in stale:
                _load_side(
                    rt,
                    pair,
                    side,
                    rows.observations.get(side),
                    trust_observation=False,
                    every_comment=side in pair.listed,
                )
            plan = _plan(rt, pair, pairs, resolutions)
            stale = _overwritten(plan) & pair.observed
        outcome = SyncOutcome(link_id=link_id, plan_lines=plan.describe(), state=plan.link_state)
        if dry_run:
            return outcome
        for conflict in plan.conflicts:
            metrics.count_conflict(rt.redis, conflict.field, conflict.policy)
        outcome.writes = _apply(rt, pair, plan)
    _commit(rt, pair, plan, rows.observations)
    return outcome


def _sweep_due(rt: Runtime, link: Link) -> bool:
    """Whether this sync lists the ticket's comments for the sweep (see `_sweep_comments`)."""
    due = link.comments_due_at
    return link.zenvia_id is not None and due is not None and due <= rt.clock()


def _list_crm_comments_for_new_ones(
    rt: Runtime, pair: _Pair, comment_pairs: list[engine.CommentPair]
) -> None:
    """A sweep found ticket comments no link pairs: the case's comments are listed too, so a
    copy of one of them (its reply lost) is recognised instead of copied back."""
    linked = {p.zenvia_comment_id for p in comment_pairs}
    crm = pair.records.get("crm")
    if "crm" in pair.listed or crm is None or crm.deleted:
        return
    if any(comment.id not in linked for comment in pair.comments["zenvia"]):
        pair.comments["crm"] = rt.connectors["crm"].list_comments(crm.id)
        pair.listed.add("crm")


def _overwritten(plan: engine.Plan) -> set[Side]:
    return {op.side for op in plan.operations if isinstance(op, engine.UpdateFields)}


def _plan(
    rt: Runtime,
    pair: _Pair,
    comment_pairs: list[engine.CommentPair],
    resolutions: dict[str, Side] | None,
) -> engine.Plan:
    return engine.plan(
        rt.mapping,
        link=_snapshot(pair.link),
        crm=pair.records["crm"],
        zenvia=pair.records["zenvia"],
        crm_comments=pair.comments["crm"],
        zenvia_comments=pair.comments["zenvia"],
        comment_links=comment_pairs,
        resolutions=resolutions or {},
    )


def zenvia_cost(plan: engine.Plan) -> int:
    """Zenvia requests the plan's writes take: one per attribute, comment and create, and a
    create's client lookup."""
    cost = 0
    for operation in plan.operations:
        if operation.side != "zenvia":
            continue
        if isinstance(operation, engine.UpdateFields):
            paired = "status" in operation.changes and "justification" in operation.changes
            cost += len(operation.changes) - int(paired)
        else:
            cost += 1
        if isinstance(operation, engine.CreateRecord) and operation.client_email:
            cost += 1
    return cost


def _snapshot(link: Link) -> engine.LinkSnapshot:
    return engine.LinkSnapshot(
        crm_id=link.crm_id,
        zenvia_id=link.zenvia_id,
        crm_baseline=link.crm_baseline,
        zenvia_baseline=link.zenvia_baseline,
        state=LinkState(link.state),
    )


def _load_pair(
    rt: Runtime,
    link: Link,
    observations: dict[Side, Observation],
    *,
    trust_observations: bool,
    sweep: bool = False,
) -> _Pair:
    """Both records and their comments. A side with nothing seen newer than its last sync is
    taken as that sync left it while the other side brings news; with news on neither side
    (reconcile's orphan check, a lost message, an operator) both are read, except for a
    comment sweep, which lists the ticket's comments and takes both as they were left. Without
    trusting observations (an operator's resync) both are read, with all their comments."""
    pair = _Pair(link=link, records={}, comments={})
    news = {side for side, seen in observations.items() if _news(rt, link, side, seen)}
    if None in (link.crm_version, link.zenvia_version):
        news = set()  # no sync has read both sides yet: nothing to take as it left them
    for side in SIDES:
        _load_side(
            rt,
            pair,
            side,
            observations.get(side),
            trust_observation=trust_observations,
            # a parked conflict keeps old baselines: only a read tells what the side holds
            as_left=(bool(news - {side}) or sweep) and link.state == LinkState.ACTIVE,
            every_comment=not trust_observations or side in news or (sweep and side == "zenvia"),
        )
    return pair


def _load_side(
    rt: Runtime,
    pair: _Pair,
    side: Side,
    seen: Observation | None,
    *,
    trust_observation: bool,
    as_left: bool = False,
    every_comment: bool = False,
) -> None:
    """Load one side into the pair. Its comments are listed only when its version moved since
    the last sync (or for `every_comment`): Zenvia bumps a ticket's updatedAt on every new
    action, and the Salesforce connector folds the newest comment's SystemModstamp into its
    case's version."""
    link = pair.link
    record_id = record_id_of(link, side)
    record, observed, read_at = (
        _load_record(
            rt, side, record_id, link, seen, trust_observation=trust_observation, as_left=as_left
        )
        if record_id
        else (None, False, None)
    )
    pair.records[side] = record
    pair.read_at[side] = read_at
    if observed:
        pair.observed.add(side)
    else:
        pair.observed.discard(side)
    listing = (
        record is not None
        and not record.deleted
        and (every_comment or _past_synced(link, side, record.version))
    )
    pair.comments[side] = rt.connectors[side].list_comments(record.id) if record and listing else []
    if listing:
        pair.listed.add(side)
    else:
        pair.listed.discard(side)


def _synced(link: Link, side: Side) -> datetime | None:
    """The version of `side` that the pair's last sync read."""
    return link.crm_version if side == "crm" else link.zenvia_version


def _news(rt: Runtime, link: Link, side: Side, seen: Observation) -> bool:
    """Whether the newest observation holds anything the last sync did not read: a newer
    stamp (a boundary read's stamp counts only once read late enough: `repo.needs_sync`), or
    the same stamp with another payload, which a poll flagged after the last commit (a change
    committed late with an earlier stamp)."""
    flagged = (
        seen.sync_queued_at is not None
        and link.last_synced_at is not None
        and seen.observed_at > link.last_synced_at
    )
    return flagged or repo.needs_sync(
        seen.version, _synced(link, side), seen.observed_at, _settle_margin(rt, side)
    )


def _past_synced(link: Link, side: Side, version: datetime) -> bool:
    """Whether a record read now may carry comments the last sync did not list: its version
    is past the one recorded (a boundary read's stamp is: it is recorded just short)."""
    synced = _synced(link, side)
    return synced is None or version > synced


def _load_record(
    rt: Runtime,
    side: Side,
    record_id: str,
    link: Link,
    seen: Observation | None,
    *,
    trust_observation: bool,
    as_left: bool,
) -> tuple[RemoteRecord, bool, datetime | None]:
    """The record's current state, whether it was judged without reading it now, and when the
    remote was read (None when it is taken as the last sync left it).

    A poll's observation is used when it was read after this pair's last commit (an older
    read predates our own last writes and would look like the other side undoing them), is
    no older than the version that commit read, AND was read within one poll interval or
    holds nothing but the baseline (our own write's echo, whose comments are listed now: a
    sync delayed by the rate budget need not read the ticket again).
    With `as_left`, a side whose newest observation is no newer than its last sync is taken as
    that sync left it (its baseline). Either way a later change is seen by a poll and synced
    then, and a side the plan will overwrite is always read again first.
    """
    fetched_at = rt.clock()
    if trust_observation and seen is not None:
        synced = _synced(link, side)
        baseline = link.crm_baseline if side == "crm" else link.zenvia_baseline
        after_commit = link.last_synced_at is None or seen.observed_at > link.last_synced_at
        recent = fetched_at - seen.observed_at <= timedelta(
            seconds=rt.settings.poll_interval_seconds
        )
        echo = not seen.deleted and rt.mapping.project(side, seen.payload) == baseline
        if after_commit and (recent or echo) and (synced is None or seen.version >= synced):
            payload = dict(seen.payload)
            changed_at = rt.connectors[side].changed_at(payload)
            record = RemoteRecord(record_id, seen.version, payload, seen.deleted, changed_at)
            return record, True, seen.observed_at
        if (
            as_left
            and synced is not None
            and baseline is not None
            and not _news(rt, link, side, seen)
            and not seen.deleted  # a deletion is always confirmed by a read
        ):
            return RemoteRecord(record_id, synced, dict(baseline)), True, None
    try:
        record = rt.connectors[side].get(record_id)
    except NotFoundError as missing:
        if rt.connectors[side].confirm_deleted(record_id):
            return RemoteRecord(record_id, rt.clock(), {}, deleted=True), False, None
        raise RecordMissing(side, record_id, missing) from missing
    if seen is None:  # the first read of this record: its row lets the commit mark it synced
        with session_scope(rt.database_url) as session:
            repo.observe(session, side=side, record=record, fetched_at=fetched_at)
    return record, False, fetched_at


def _apply(rt: Runtime, pair: _Pair, plan: engine.Plan) -> int:
    """Run the plan's writes in order; creates and comments go through write-ahead intents."""
    writes = 0
    last = len(plan.operations) - 1
    for index, operation in enumerate(plan.operations):
        kind: metrics.Kind
        try:
            if isinstance(operation, engine.CreateRecord):
                kind, written = "create", _create(rt, pair, plan, operation)
            elif isinstance(operation, engine.UpdateFields):
                _update(rt, pair, plan, operation, final=index == last)
                kind, written = "update", True
            else:
                kind, written = "comment", _add_comment(rt, pair, operation)
        except PermanentError as refused:
            if not isinstance(refused, NotFoundError | MalformedResponseError):
                _replan_if_ended_meanwhile(rt, pair, operation.side, refused)
            raise
        if written:
            writes += 1
            metrics.count_propagated(rt.redis, kind, metrics.towards(operation.side))
    return writes


def _replan_if_ended_meanwhile(
    rt: Runtime, pair: _Pair, side: Side, refused: PermanentError
) -> None:
    """A write refused because a person closed or canceled the record after we read it (a
    CLOSED Zenvia ticket takes nothing) is a race, not a defect: the fresh read is recorded
    and the pair planned again, where the ended record waits, instead of a dead letter. Any
    other refusal stands (one GET, only on this path)."""
    planned = pair.records.get(side)
    if planned is None or _ended(rt, side, planned.fields):
        return
    fetched_at = rt.clock()
    try:
        current = rt.connectors[side].get(planned.id)
    except RemoteError:
        return
    if not _ended(rt, side, current.fields):
        return
    with session_scope(rt.database_url) as session:  # flagged: durable until a sync reads it
        repo.observe(session, side=side, record=current, fetched_at=fetched_at)
        repo.mark_queued(session, side=side, remote_ids=[current.id])
    raise StaleLink(
        f"{side} record {planned.id} ended while this sync wrote to it "
        f"({refused.describe()}): planned again"
    ) from refused


def _ended(rt: Runtime, side: Side, fields: NativeFields) -> bool:
    return rt.mapping.base_status(side, fields) in (BaseStatus.CLOSED, BaseStatus.CANCELED)


def _update(
    rt: Runtime, pair: _Pair, plan: engine.Plan, operation: engine.UpdateFields, *, final: bool
) -> None:
    """Write one side's changes, folding each request that landed into the baselines at once.

    A Zenvia update is one PATCH per attribute: when the second fails, the first stays
    applied. The plan's very last request is folded by the commit, which follows at once.
    When a request's reply is lost, the record is read again to learn what it holds.
    """
    target = operation.side
    record_id = _id_on(pair, target) or operation.record_id
    unsent = dict(operation.changes)

    def landed(fields: NativeFields) -> None:
        for native in fields:
            unsent.pop(native, None)
        if unsent or not final:
            _keep_written(rt, pair, plan, target, fields)

    try:
        rt.connectors[target].update(record_id, dict(operation.changes), landed=landed)
    except TransientError:
        _keep_what_landed(rt, pair, plan, target, record_id, unsent)
        raise


def _keep_what_landed(
    rt: Runtime,
    pair: _Pair,
    plan: engine.Plan,
    target: Side,
    record_id: str,
    attempted: NativeFields,
) -> None:
    """After a write whose outcome is unknown (its reply lost), fold the values the record
    turns out to hold: left unfolded, a landed write reads as a human change on the retry and
    can beat a newer edit on the other side. If the read fails too, the retry decides."""
    try:
        current = rt.connectors[target].get(record_id).fields
    except RemoteError as exc:
        log.info("could not tell which writes to %s %s landed: %s", target, record_id, exc)
        return
    held = {name: value for name, value in attempted.items() if current.get(name) == value}
    if held:
        _keep_written(rt, pair, plan, target, held)


def _keep_written(
    rt: Runtime, pair: _Pair, plan: engine.Plan, target: Side, written: Iterable[str]
) -> None:
    """Fold written fields into both stored baselines at once (`bookkeeping.fold_written`),
    fenced by revision."""
    link = pair.link
    if link.id is None:
        return
    new = bookkeeping.fold_written(
        rt.mapping,
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
        target,
        written,
    )
    if new is None:
        return
    values = {
        "crm_baseline": new["crm"],
        "zenvia_baseline": new["zenvia"],
        # moves the observations' freshness fence: one read before this write would look like
        # its side undoing it
        "last_synced_at": rt.clock(),
    }
    with session_scope(rt.database_url) as session:
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link.id} changed while its plan was being applied")
    pair.link = link.model_copy(update={**values, "revision": link.revision + 1})


def _id_on(pair: _Pair, side: Side) -> str | None:
    return record_id_of(pair.link, side)


def record_id_of(link: Link, side: Side) -> str | None:
    return link.crm_id if side == "crm" else link.zenvia_id


def _create(rt: Runtime, pair: _Pair, plan: engine.Plan, operation: engine.CreateRecord) -> bool:
    """Create the missing side at most once, even across crashes (DESIGN invariant 2).

    True when this call created it. A record an earlier attempt made (its reply lost) is
    adopted with that attempt's planned baselines, and the pair is planned again as a merge.
    """
    target, link = operation.side, pair.link
    assert link.id is not None
    key = operation.source_id if target == "crm" else operation.idempotency_key
    connector = rt.connectors[target]
    with session_scope(rt.database_url) as session:
        intent = repo.begin_intent(
            session,
            key=key,
            link_id=link.id,
            side=target,
            kind="create",
            source_id=operation.source_id,
        )
        remote_id, maybe_sent, started = intent.remote_id, intent.attempts > 0, intent.created_at
        attempts = repo.attempt_times(intent)
    if remote_id is None and maybe_sent:
        found = connector.find_created(key, around=started, attempts=attempts)
        if found is not None:
            _adopt(rt, link.id, target, found.id)
            raise _Adopted(f"{target} record {found.id} of link {link.id}")
    created = remote_id is None
    if remote_id is None:
        create = client_lookup.creator(rt, operation)  # looks up a ticket's client first
        remote_id = _send_once(
            rt,
            key,
            lambda: (
                create(
                    dict(operation.fields), idempotency_key=key, description=operation.description
                ).id
            ),
            planned={"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
        )
    if target == "zenvia" and link.crm_id:
        _note_ticket_on_case(rt, link.crm_id, remote_id)
    with session_scope(rt.database_url) as session:
        repo.complete_intent(session, key=key, remote_id=remote_id)
        column = "crm_id" if target == "crm" else "zenvia_id"
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values={column: remote_id}
        ):
            raise StaleLink(f"link {link.id} changed while creating its {target} side")
    pair.link = link.model_copy(update={column: remote_id, "revision": link.revision + 1})
    return created


def _send_once(
    rt: Runtime, key: str, send: Callable[[], str], *, planned: dict[str, object] | None = None
) -> str:
    """Send a create whose intent is `key`, remembering first that it may reach the remote
    (and, for a record create, the baselines it `planned`)."""
    with session_scope(rt.database_url) as session:
        repo.count_attempt(session, key=key, baselines=planned)
    try:
        return send()
    except RateLimitedError:
        with session_scope(rt.database_url) as session:  # refused unsent: nothing to look for
            repo.count_attempt(session, key=key, delta=-1)
        raise


def _add_comment(rt: Runtime, pair: _Pair, operation: engine.AddComment) -> bool:
    """Add a comment at most once; True when this call posted it."""
    target = operation.side
    record_id = _id_on(pair, target) or operation.record_id
    assert pair.link.id is not None
    assert record_id
    with session_scope(rt.database_url) as session:
        intent = repo.begin_intent(
            session,
            key=operation.idempotency_key,
            link_id=pair.link.id,
            side=target,
            kind="comment",
            source_id=operation.source_comment_id or operation.idempotency_key,
        )
        remote_id, maybe_sent = intent.remote_id, intent.attempts > 0
    if remote_id is None and maybe_sent:
        remote_id = _find_posted(rt, pair.link.id, target, record_id, operation.body)
    posted = remote_id is None
    if remote_id is None:
        remote_id = _send_once(
            rt,
            operation.idempotency_key,
            lambda: rt.connectors[target].add_comment(
                record_id, operation.body, public=operation.public
            ),
        )
    written = operation.pair(remote_id)
    with session_scope(rt.database_url) as session:
        repo.complete_intent(session, key=operation.idempotency_key, remote_id=remote_id)
        if written is not None:
            repo.link_comments(
                session,
                link_id=pair.link.id,
                crm_comment_id=written.crm_comment_id,
                zenvia_comment_id=written.zenvia_comment_id,
                origin=other_side(target),
            )
    return posted


def _find_posted(rt: Runtime, link_id: int, side: Side, record_id: str, body: str) -> str | None:
    """A comment an earlier attempt posted (its reply lost): one with exactly our text that no
    comment link claims yet. Our comments carry no marker, so the text is what tells."""
    with session_scope(rt.database_url) as session:
        claimed = {
            pair.crm_comment_id if side == "crm" else pair.zenvia_comment_id
            for pair in repo.comment_links_for(session, link_id=link_id)
        }
    return next(
        (
            comment.id
            for comment in rt.connectors[side].list_comments(record_id)
            if comment.id not in claimed and engine.is_copy_of(comment.body, body)
        ),
        None,
    )


def _commit(
    rt: Runtime, pair: _Pair, plan: engine.Plan, observations: dict[Side, Observation]
) -> None:
    """Baselines, versions and state fenced by revision, in one transaction; the queued flags
    of the sides read are cleared (`observations`: as the sync found them, to skip the ones
    with nothing to record)."""
    link = pair.link
    assert link.id is not None
    read = {side: record.version for side, record in pair.records.items() if record is not None}
    versions = {
        side: repo.boundary_version(version, pair.read_at.get(side), _settle_margin(rt, side))
        for side, version in read.items()
    }
    with session_scope(rt.database_url) as session:
        for comment_pair in plan.comment_pairs:
            repo.link_comments(
                session,
                link_id=link.id,
                crm_comment_id=comment_pair.crm_comment_id,
                zenvia_comment_id=comment_pair.zenvia_comment_id,
                origin=comment_pair.origin,
            )
        values = {
            "crm_baseline": plan.crm_baseline,
            "zenvia_baseline": plan.zenvia_baseline,
            "crm_version": versions.get("crm", link.crm_version),
            "zenvia_version": versions.get("zenvia", link.zenvia_version),
            "state": plan.link_state,
            "conflict_fields": sorted({c.field for c in plan.conflicts if c.winner is None}),
            "state_reason": _conflict_reason(plan),
            "last_synced_at": rt.clock(),
            "comments_due_at": _next_sweep(rt, pair, plan),
        }
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link.id} was committed by another sync meanwhile")
        history.record_sync(
            session,
            link_id=link.id,
            plan=plan,
            records=pair.records,
            record_ids={side: _id_on(pair, side) for side in SIDES},
            previous_state=link.state,
            at=rt.clock(),
        )
        again = [
            (side, record_id)
            for side, version in read.items()
            if (record_id := _id_on(pair, side))
            and _unfinished(observations.get(side), versions[side])
            and repo.finish_sync(
                session, side=side, remote_id=record_id, version=version, synced=versions[side]
            )
        ]
        if link.state in (LinkState.ERROR, LinkState.MISSING):
            _close_dead_letters(session, pair)
    for side, record_id in again:
        rt.enqueue_sync(side, record_id)


def _settle_margin(rt: Runtime, side: Side) -> timedelta:
    """How long after a stamp a change may still carry it, as far as our clock can tell.
    Stamps finer than a second (Zenvia's milliseconds) are taken as unique: two changes in one
    millisecond are not a risk worth a re-read of every record we just wrote."""
    precision = rt.connectors[side].stamp_precision
    if precision < timedelta(seconds=1):
        return timedelta(0)
    return precision + timedelta(seconds=rt.settings.clock_skew_seconds)


def _next_sweep(rt: Runtime, pair: _Pair, plan: engine.Plan) -> datetime | None:
    """When the sweep lists this ticket's comments again: one interval after this sync listed
    them; unchanged if it did not; never for a ticket that is closed or canceled (a closed
    ticket takes no comment) or an account whose actions move updatedAt."""
    ended = _ended(rt, "zenvia", plan.zenvia_baseline or {})
    if rt.settings.zenvia_actions_move_updated_at or pair.link.zenvia_id is None or ended:
        return None
    due = pair.link.comments_due_at
    if "zenvia" in pair.listed or due is None:
        return rt.clock() + timedelta(seconds=rt.settings.zenvia_comment_sweep_seconds)
    return due


def _conflict_reason(plan: engine.Plan) -> str | None:
    open_conflicts = [c.field for c in plan.conflicts if c.winner is None]
    if not open_conflicts:
        return None
    return "manual conflict on " + ", ".join(sorted(open_conflicts))


def _unfinished(seen: Observation | None, version: datetime) -> bool:
    """Whether the observation has anything for `finish_sync` to record: a queued flag, or a
    synced version behind `version` (a row first written during this sync is not in `seen`)."""
    return (
        seen is None
        or seen.sync_queued_at is not None
        or seen.synced_version is None
        or version > seen.synced_version
    )


def _close_dead_letters(session: Session, pair: _Pair) -> None:
    """A sync that went through heals the record's earlier failures. Only a link flagged in
    error or missing has any (`dead_letter` flags it), so other commits skip the statement."""
    records = [(side, record_id) for side in SIDES if (record_id := _id_on(pair, side))]
    repo.replay_dead_letters_of(session, records=records)


# -- failures -----------------------------------------------------------------------------------


def dead_letter(
    rt: Runtime, side: Side, record_id: str, error: RemoteError | Exception, *, operation: str
) -> None:
    """Park a record whose sync failed for good; flag its link (missing, for a 404: kept, never
    closed on it); everything else keeps going."""
    remote = error if isinstance(error, RemoteError) else None
    with session_scope(rt.database_url) as session:
        link = repo.find_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        letter = repo.record_dead_letter(
            session,
            link_id=link.id if link else None,
            side=side,
            record_id=record_id,
            operation=operation,
            error_class=type(error).__name__,
            message=remote.describe() if remote else str(error),
            remote_status=remote.status if remote else None,
            remote_code=remote.code if remote else None,
            details=remote.details if remote else [],
        )
        repo.give_up_version(session, side=side, remote_id=record_id)
        if link is not None and link.id is not None:
            while not repo.save_link_state(
                session,
                link_id=link.id,
                expected_revision=link.revision,
                values={
                    "state": LinkState.MISSING
                    if isinstance(error, NotFoundError)
                    else LinkState.ERROR,
                    "state_reason": str(error)[:500],
                },
            ):
                session.refresh(link)  # another sync committed it meanwhile: flag it as it is
            history.record_dead_letter(session, link_id=link.id, letter=letter, at=rt.clock())


# -- reconcile and operator commands --------------------------------------------------------------


@dataclass
class ReconcileOutcome:
    seen: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    orphans: int = 0
    complete: bool = False


# Reconcile reads whole listings: larger chunks mean fewer round trips to Postgres per record.
RECONCILE_CHUNK = 1000


def reconcile(rt: Runtime) -> ReconcileOutcome:
    """Stream both sides, enqueue whatever polling missed; find orphans only after a full pass."""
    outcome = ReconcileOutcome()
    started = time.monotonic()
    with session_scope(rt.database_url) as session:
        run_id = _start_run(session, "reconcile", None)
    history.prune_expired(
        rt.database_url, now=rt.clock(), retention_days=rt.settings.history_retention_days
    )
    seen: dict[Side, set[str]] = {"crm": set(), "zenvia": set()}
    error: str | None = None
    try:
        with background_priority():
            for side in SIDES:
                for chunk in _chunks(
                    _readable(rt, side, rt.connectors[side].iter_all()), RECONCILE_CHUNK
                ):
                    seen[side].update(record.id for record in chunk)
                    outcome.enqueued += _reconcile_chunk(rt, side, chunk)
        outcome.complete = True
        outcome.orphans = _enqueue_orphans(rt, seen)
        outcome.enqueued += _requeue_stale(rt, when_idle=False)
    except RemoteError as failure:
        error = failure.describe()
        log.warning("reconcile stopped early, no orphan check this time: %s", error)
    outcome.seen = {side: len(ids) for side, ids in seen.items()}
    metrics.observe_reconcile(rt.redis, time.monotonic() - started, outcome.complete)
    with session_scope(rt.database_url) as session:
        repo.finish_run(
            session,
            run_id=run_id,
            complete=outcome.complete,
            counts={**outcome.seen, "enqueued": outcome.enqueued, "orphans": outcome.orphans},
            error=error,
        )
    return outcome


def _reconcile_chunk(rt: Runtime, side: Side, chunk: list[RemoteRecord]) -> int:
    """Enqueue records never linked or changed since their last sync."""
    ids = [record.id for record in chunk]
    read_at, margin = rt.clock(), _settle_margin(rt, side)
    with session_scope(rt.database_url) as session:
        synced = repo.synced_versions(session, side=side, remote_ids=ids, crm_system=rt.crm_system)
        pending = set(
            repo.observe_many(session, side=side, records=chunk, fetched_at=read_at, margin=margin)
        )
        due = [
            record.id
            for record in chunk
            if record.id in pending
            or repo.needs_sync(record.version, synced.get(record.id), read_at, margin)
        ]
        repo.mark_queued(session, side=side, remote_ids=due)
    for record_id in due:
        rt.enqueue_sync(side, record_id)
    return len(due)


def _enqueue_orphans(rt: Runtime, seen: dict[Side, set[str]]) -> int:
    """Links pointing at records the complete pass did not see: their sync confirms a deletion
    (on_delete) or marks the link missing. Links already orphaned or missing are not read again
    (no storm of 404s, which Zenvia answers with a lockout): a listing that shows the record
    again queues its sync, and an operator can restore the link."""
    count = 0
    with session_scope(rt.database_url) as session:
        for ids in repo.linked_record_ids(
            session, except_states=(LinkState.ORPHANED, LinkState.MISSING)
        ):
            for side, record_id in zip(SIDES, ids, strict=True):
                if record_id and record_id not in seen[side]:
                    rt.enqueue_sync(side, record_id)
                    count += 1
                    break
    return count


def _requeue_stale(rt: Runtime, *, when_idle: bool) -> int:
    """Syncs of either side marked queued long ago whose message was lost (a Redis restart, a
    worker killed holding it): sent again, their flags renewed first, as a poll's are.

    A poll does it `when_idle` only, when no sync message waits in the broker (a long backlog,
    a day's budget spent, is no loss, and sending its syncs again would only lengthen it);
    reconcile does it in any case, so a busy day still re-sends a lost one within the hour.
    """
    if when_idle and rt.syncs_waiting():
        return 0
    cutoff = rt.clock() - timedelta(seconds=rt.settings.stale_queued_seconds)
    stale: list[tuple[Side, str]] = []
    with session_scope(rt.database_url) as session:
        for side in SIDES:
            ids = repo.stale_queued(session, side=side, older_than=cutoff)
            repo.mark_queued(session, side=side, remote_ids=ids)
            stale += [(side, record_id) for record_id in ids]
    for side, record_id in stale:
        rt.enqueue_sync(side, record_id)
    return len(stale)


def _start_run(session: Session, kind: str, side: Side | None) -> int:
    run = repo.start_run(session, kind=kind, side=side)
    assert run.id is not None
    return run.id


def resync_targets(
    rt: Runtime,
    *,
    crm_id: str | None = None,
    zenvia_id: str | None = None,
    since: datetime | None = None,
    everything: bool = False,
) -> Iterator[tuple[Side, str]]:
    """The records an operator's resync names, as (side, id) pairs, each as soon as its
    listing shows it (a long resync queues page by page while it lists)."""
    if crm_id:
        yield "crm", crm_id
    elif zenvia_id:
        yield "zenvia", zenvia_id
    elif since or everything:
        for side in SIDES:
            connector = rt.connectors[side]
            for record in connector.changed_since(since) if since else connector.iter_all():
                yield side, record.id


__all__ = [
    "PollOutcome",
    "ReconcileOutcome",
    "StaleLink",
    "SyncOutcome",
    "dead_letter",
    "poll",
    "reconcile",
    "resolve_conflict",
    "restore_link",
    "resync_targets",
    "sync_record",
]
