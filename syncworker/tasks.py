"""Thin Celery tasks: translate a message into a use case call and a retry decision.

Tasks carry ids only (side, record id, dead letter id), never payloads or secrets. Retry
policy lives here and only here: transient errors back off exponentially with jitter up to
`MAX_RETRIES`; rate limits retry after the stated wait without counting as failures;
permanent errors and exhausted retries become dead letters.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Task
from celery.signals import worker_process_init

import syncworker.sync
from syncworker import dead_letters, metrics
from syncworker.celery_app import MAX_COUNTDOWN_SECONDS, app
from syncworker.connectors.errors import (
    AuthError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from syncworker.context import Runtime
from syncworker.locks import LockBusy
from syncworker.model import Side
from syncworker.runtime import build_runtime
from syncworker.settings import get_settings
from syncworker.store.db import reset_engines

log = logging.getLogger("syncworker.tasks")


# Our own database or Redis went away mid-sync: the sync is retried, never acked as lost
# (its queued flag would otherwise block the record until the next reconcile).
INFRASTRUCTURE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def backoff_seconds(attempt: int, *, base: float = 2.0) -> float:
    """Exponential backoff with full jitter, capped well below the visibility timeout."""
    ceiling = min(MAX_COUNTDOWN_SECONDS, base * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def rate_limit_countdown(error: RateLimitedError) -> float:
    return min(MAX_COUNTDOWN_SECONDS, error.retry_after) + random.uniform(0, 0.5)


_runtime: Runtime | None = None
_building = threading.Lock()


def get_runtime() -> Runtime:
    """This process's runtime (built once, even with a thread pool); syncs go through Celery."""
    global _runtime
    with _building:
        if _runtime is None:
            _runtime = build_runtime(
                get_settings(), enqueue_sync=enqueue_sync, syncs_waiting=syncs_waiting
            )
        return _runtime


def reset_runtime() -> None:
    """Forget everything inherited from a parent process, so no pool, client or socket is
    ever shared between processes."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = None
    reset_engines()


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """Each forked worker child builds its own pools and clients."""
    reset_runtime()


def enqueue_sync(side: Side, record_id: str) -> None:
    """Queue one sync; ids only, readable in Flower. Nobody waits for these, so their results
    are not stored (`resync --wait` sends its own, which are)."""
    sync.apply_async(args=(side, record_id), queue="sync", ignore_result=True)


def syncs_waiting() -> int:
    """Sync messages waiting in the broker's queue (not the ones workers hold)."""
    with app.connection_for_read() as connection:
        try:
            declared = connection.default_channel.queue_declare(queue="sync", passive=True)
        except kombu.exceptions.ChannelError:  # the queue does not exist yet: nothing waits
            return 0
        return int(declared.message_count)


@app.task(name="syncworker.poll", bind=True, ignore_result=True)
def poll(self: Task, side: Side) -> dict[str, Any]:
    rt = get_runtime()
    try:
        with rt.locks.hold(f"poll:{side}"):
            outcome = syncworker.sync.poll(rt, side)
    except LockBusy:
        log.info("poll of %s already running; skipping this tick", side)
        return {"side": side, "skipped": "already running"}
    log.info(
        "polled %s: %d seen, %d syncs queued",
        side,
        outcome.seen,
        outcome.enqueued,
        extra={"side": side, "seen": outcome.seen, "enqueued": outcome.enqueued},
    )
    return {"side": side, "seen": outcome.seen, "enqueued": outcome.enqueued}


@app.task(name="syncworker.sync", bind=True, max_retries=None)
def sync(
    self: Task, side: Side, record_id: str, attempt: int = 0, fresh: bool = False
) -> dict[str, Any]:
    rt = get_runtime()
    context = {"side": side, "record_id": record_id, "task_id": self.request.id}
    try:
        with metrics.batched(rt.redis):
            outcome = syncworker.sync.sync_record(rt, side, record_id, fresh=fresh)
    except (LockBusy, syncworker.sync.StaleLink) as busy:
        log.info("sync deferred, pair busy: %s", busy, extra=context)
        raise self.retry(
            countdown=random.uniform(0.5, 2.0), args=(side, record_id, attempt, fresh)
        ) from None
    except RateLimitedError as error:
        log.info("sync deferred %.1f s: %s", error.retry_after, error.describe(), extra=context)
        raise self.retry(
            countdown=rate_limit_countdown(error), args=(side, record_id, attempt, fresh)
        ) from None
    except (PermanentError, AuthError) as error:
        log.error("sync failed permanently: %s", error.describe(), extra=context)
        syncworker.sync.dead_letter(rt, side, record_id, error, operation="sync")
        return {**context, "dead_letter": error.describe()}
    except INFRASTRUCTURE_ERRORS as outage:
        log.warning("sync will retry after an infrastructure error: %s", outage, extra=context)
        raise self.retry(
            countdown=backoff_seconds(attempt), args=(side, record_id, attempt + 1, fresh)
        ) from None
    except TransientError as error:
        if attempt >= rt.settings.max_retries:
            log.error(
                "sync gave up after %d attempts: %s", attempt + 1, error.describe(), extra=context
            )
            syncworker.sync.dead_letter(rt, side, record_id, error, operation="sync")
            return {**context, "dead_letter": error.describe()}
        log.warning("sync will retry: %s", error.describe(), extra=context)
        raise self.retry(
            countdown=backoff_seconds(attempt), args=(side, record_id, attempt + 1, fresh)
        ) from None
    log.info(
        "synced link %s with %d writes",
        outcome.link_id,
        outcome.writes,
        extra={**context, "link_id": outcome.link_id, "writes": outcome.writes},
    )
    return {**context, "link_id": outcome.link_id, "writes": outcome.writes, "state": outcome.state}


@app.task(name="syncworker.reconcile", bind=True, ignore_result=True)
def reconcile(self: Task) -> dict[str, Any]:
    rt = get_runtime()
    try:
        with rt.locks.hold("reconcile"):
            outcome = syncworker.sync.reconcile(rt)
    except LockBusy:
        return {"skipped": "already running"}
    return {
        "seen": outcome.seen,
        "enqueued": outcome.enqueued,
        "orphans": outcome.orphans,
        "complete": outcome.complete,
    }


@app.task(name="syncworker.replay", bind=True)
def replay(self: Task, dead_letter_id: int) -> dict[str, Any]:
    rt = get_runtime()
    side, record_id = dead_letters.replay(rt.database_url, dead_letter_id, rt.enqueue_sync)
    return {"dead_letter_id": dead_letter_id, "side": side, "record_id": record_id}


__all__ = ["enqueue_sync", "poll", "reconcile", "replay", "sync", "syncs_waiting"]
