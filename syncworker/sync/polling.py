"""Polling one side: observe what changed since the cursor (minus an overlap), page by page, and
queue the syncs; Zenvia's comment sweep; syncs whose message was lost sent again.

The listing helpers (`readable`, `chunks`, `requeue_stale`, `start_run`) serve reconcile too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from syncworker.connectors.base import Listed, ListingPage, Unreadable
from syncworker.connectors.errors import RemoteError
from syncworker.context import Runtime
from syncworker.model import SIDES, RemoteRecord, Side
from syncworker.ratelimit import background_priority
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Cursor
from syncworker.sync.failures import dead_letter
from syncworker.sync.records import settle_margin

log = logging.getLogger(__name__)

POLL_CHUNK = 100


@dataclass
class PollOutcome:
    side: Side
    seen: int = 0
    enqueued: int = 0
    swept: int = 0  # syncs queued to list a ticket's comments (the comment sweep)
    complete: bool = True
    stopped_by: str | None = None


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
        run_id = start_run(session, "poll", side)
    listing = _Pass.resumed(cursor) or _Pass.new(rt, cursor)
    outcome.enqueued += requeue_stale(rt, when_idle=True)
    try:
        with background_priority():
            pages = iter(connector.changed_pages(listing.since, listing.resume))
            while (page := _next_page(rt, pages)) is not None:
                read_at, records = page[0], list(readable(rt, side, page[1].records))
                for chunk in chunks(records, POLL_CHUNK):
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


def _observe_chunk(rt: Runtime, side: Side, chunk: list[RemoteRecord], fetched_at: datetime) -> int:
    """Observations and queued flags, then the messages, then (an ordered listing's) cursor.

    The flags commit before the messages go out, so a worker that starts a sync at once sees
    the flag it must clear. A crash between the two leaves flagged records without a message:
    the cursor has not moved, and flags older than `stale_queued_seconds` are sent again
    (`requeue_stale`).
    """
    with session_scope(rt.database_url) as session:
        due = repo.observe_many(
            session,
            side=side,
            records=chunk,
            fetched_at=fetched_at,
            margin=settle_margin(rt, side),
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


def _save_listing(rt: Runtime, side: Side, listing: _Pass) -> None:
    with session_scope(rt.database_url) as session:
        repo.save_listing(session, side=side, listing=listing.dump(), start=listing.since)


def _finish_listing(rt: Runtime, side: Side, started: datetime) -> None:
    """After a complete pass the cursor moves up to what the listing provably held, even when
    nothing changed: a quiet remote's first poll pins the start (records made before the next
    poll are then found), and a quiet day's polls list one date, not every date since the
    last change."""
    listed_up_to = started - rt.connectors[side].listing_lag - settle_margin(rt, side)
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
    """Tickets to sweep this poll: at night a fixed batch; in business hours what the window
    has left for the sweep's priority (beyond the syncs' and polls' reserve: a queued sweep is
    one the gate admits, and a window with room sweeps more than one ticket a poll), at most
    `zenvia_sweep_share` of what the window gives per poll interval."""
    settings = rt.settings
    spendable = rt.gates["zenvia"].spendable("sweep")
    if spendable is None:
        return settings.zenvia_sweep_night_batch
    per_poll = (
        settings.zenvia_sweep_share
        * settings.zenvia_rate_limit
        * settings.poll_interval_seconds
        / settings.zenvia_rate_window_seconds
    )
    return min(max(1, round(per_poll)), spendable)


def readable(rt: Runtime, side: Side, listing: Iterable[Listed]) -> Iterator[RemoteRecord]:
    """The listing's records; one the remote served unreadable is parked as a dead letter with
    the reason, and the rest go on. (Reconcile then misses it, so its link, if any, is checked
    by a sync, which reads the record again and parks it again: never taken as deleted.)"""
    for item in listing:
        if isinstance(item, Unreadable):
            log.error("%s record %s is unreadable: %s", side, item.id, item.error.describe())
            dead_letter(rt, side, item.id, item.error, operation="sync")
        else:
            yield item


def chunks(records: Iterable[RemoteRecord], size: int) -> Iterator[list[RemoteRecord]]:
    chunk: list[RemoteRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def requeue_stale(rt: Runtime, *, when_idle: bool) -> int:
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


def start_run(session: Session, kind: str, side: Side | None) -> int:
    run = repo.start_run(session, kind=kind, side=side)
    assert run.id is not None
    return run.id
