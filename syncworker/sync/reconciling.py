"""Reconcile: stream both sides whole and queue whatever polling missed; after a complete
pass, the links whose record vanished, and the syncs whose message was lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from syncworker import history, metrics
from syncworker.connectors.errors import RemoteError
from syncworker.context import Runtime
from syncworker.model import SIDES, LinkState, RemoteRecord, Side
from syncworker.ratelimit import background_priority
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.polling import chunks, readable, requeue_stale, start_run
from syncworker.sync.records import settle_margin

log = logging.getLogger(__name__)


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
        run_id = start_run(session, "reconcile", None)
    history.prune_expired(
        rt.database_url, now=rt.clock(), retention_days=rt.settings.history_retention_days
    )
    seen: dict[Side, set[str]] = {"crm": set(), "zenvia": set()}
    error: str | None = None
    try:
        with background_priority():
            for side in SIDES:
                for chunk in chunks(
                    readable(rt, side, rt.connectors[side].iter_all()), RECONCILE_CHUNK
                ):
                    seen[side].update(record.id for record in chunk)
                    outcome.enqueued += _reconcile_chunk(rt, side, chunk)
        outcome.complete = True
        outcome.orphans = _enqueue_orphans(rt, seen)
        outcome.enqueued += requeue_stale(rt, when_idle=False)
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
    read_at, margin = rt.clock(), settle_margin(rt, side)
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
