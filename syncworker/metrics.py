"""Prometheus metrics that add up across every worker process on every host.

A worker's own memory dies with the process and cannot be scraped across hosts, so workers
count events into Redis hashes under `syncworker:metrics:` (HINCRBY; inside `batched()`, as a
sync task runs, the counts wait in memory and go in one pipeline when it ends) and the
exporter (`exporter.py`, `syncworker metrics`) reads them at scrape time, together with the
mapping database. Counting never fails the caller: with Redis down the event is not counted
and a warning is logged, at most once a minute per process, because a metrics outage must
never fail a sync.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import redis

from syncworker.model import Side

log = logging.getLogger(__name__)

KEY_PREFIX = "syncworker:metrics:"
WARN_EVERY_SECONDS = 60.0

Kind = Literal["create", "update", "comment"]
Direction = Literal["crm_to_zenvia", "zenvia_to_crm"]


@dataclass(frozen=True)
class Family:
    """One exported metric family: name, type, help text and label names."""

    name: str
    type: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...] = ()

    @property
    def sample_name(self) -> str:
        """The name as scraped (counters gain `_total`), as alert rules and dashboards use it."""
        return f"{self.name}_total" if self.type == "counter" else self.name

    @property
    def key(self) -> str:
        """The Redis hash that workers count into."""
        return KEY_PREFIX + self.name.removeprefix("syncworker_")


# Counted by workers into Redis.
REMOTE_REQUESTS = Family(
    "syncworker_remote_requests",
    "counter",
    "Requests sent to a remote API after the shared gate admitted them.",
    ("remote", "endpoint"),
)
REMOTE_THROTTLED = Family(
    "syncworker_remote_throttled",
    "counter",
    "Responses refusing a request for rate or quota (429, REQUEST_LIMIT_EXCEEDED).",
    ("remote",),
)
PROPAGATED = Family(
    "syncworker_propagated_changes",
    "counter",
    "Creates, updates and comments written to the other side, one per remote write.",
    ("kind", "direction"),
)
CONFLICTS = Family(
    "syncworker_conflicts",
    "counter",
    "Fields changed on both sides since the last sync, by the policy that settled them.",
    ("field", "policy"),
)
RECONCILE_DURATION = Family(
    "syncworker_reconcile_duration_seconds",
    "gauge",
    "How long the last reconcile ran, complete or not.",
)
RECONCILE_COMPLETE = Family(
    "syncworker_reconcile_last_complete_timestamp",
    "gauge",
    "Unix time at which the last complete reconcile finished.",
)
# Read from the mapping database and the shared gates at scrape time.
LINKS = Family("syncworker_links", "gauge", "Links by state.", ("state",))
BACKLOG = Family("syncworker_backlog", "gauge", "Syncs queued and not started yet.")
SYNC_LAG = Family(
    "syncworker_sync_lag_seconds",
    "gauge",
    "Now minus the side's poll cursor watermark (also grows while a side is quiet).",
    ("side",),
)
POLL_COMPLETE = Family(
    "syncworker_poll_last_complete_timestamp",
    "gauge",
    "Unix time at which the last complete poll of the side finished.",
    ("side",),
)
DEAD_LETTERS = Family(
    "syncworker_dead_letters_open", "gauge", "Dead letters waiting for an operator."
)
COMMENT_SWEEP_DUE = Family(
    "syncworker_comment_sweep_due",
    "gauge",
    "Linked open Zenvia tickets whose comment sweep is due: comments added there wait for it.",
)
COMMENT_SWEEP_WAIT = Family(
    "syncworker_comment_sweep_oldest_due_seconds",
    "gauge",
    "How long the oldest due comment sweep has waited (absent while none is due).",
)
RATE_BUDGET = Family(
    "syncworker_rate_budget_remaining",
    "gauge",
    "Requests left in the shared window (absent while the remote is unlimited).",
    ("remote",),
)
QUOTA_USED = Family(
    "syncworker_quota_used_ratio",
    "gauge",
    "Share of the daily API quota used, as the remote last reported it.",
    ("remote",),
)
SOURCE_UP = Family(
    "syncworker_source_up",
    "gauge",
    "1 when this scrape could read the source (redis, database), else 0.",
    ("source",),
)

FAMILIES: tuple[Family, ...] = (
    REMOTE_REQUESTS,
    REMOTE_THROTTLED,
    PROPAGATED,
    CONFLICTS,
    RECONCILE_DURATION,
    RECONCILE_COMPLETE,
    LINKS,
    BACKLOG,
    SYNC_LAG,
    POLL_COMPLETE,
    DEAD_LETTERS,
    COMMENT_SWEEP_DUE,
    COMMENT_SWEEP_WAIT,
    RATE_BUDGET,
    QUOTA_USED,
    SOURCE_UP,
)
EXPORTED: frozenset[str] = frozenset(family.sample_name for family in FAMILIES)

RECONCILE_KEY = KEY_PREFIX + "reconcile"


# -- writers (called by the gate and the service) -------------------------------------------------


def count_request(client: redis.Redis, remote: str, endpoint: str) -> None:
    """One request admitted by the shared gate; `endpoint` is the templated label."""
    _increment(client, REMOTE_REQUESTS, (remote, endpoint))


def count_throttled(client: redis.Redis, remote: str) -> None:
    """The remote refused a request for rate or quota."""
    _increment(client, REMOTE_THROTTLED, (remote,))


def count_propagated(client: redis.Redis, kind: Kind, direction: Direction, n: int = 1) -> None:
    """`n` changes of `kind` written to the other side."""
    if n > 0:
        _increment(client, PROPAGATED, (kind, direction), by=n)


def count_conflict(client: redis.Redis, field: str, policy: str) -> None:
    """A field changed on both sides, settled (or parked, `manual`) by `policy`."""
    _increment(client, CONFLICTS, (field, policy))


def observe_reconcile(client: redis.Redis, seconds: float, complete: bool) -> None:
    """A reconcile ended now after `seconds`; only a complete one moves the timestamp."""
    values: dict[str, float] = {"duration_seconds": seconds}
    if complete:
        values["last_complete_timestamp"] = time.time()
    try:
        client.hset(RECONCILE_KEY, mapping=values)
    except redis.RedisError as error:
        _warn(error)


def towards(target: Side) -> Direction:
    """The direction of a write made on `target`."""
    return "crm_to_zenvia" if target == "zenvia" else "zenvia_to_crm"


# -- encoding shared with the exporter -------------------------------------------------------------


def label_field(values: tuple[str, ...]) -> str:
    """Label values as one hash field (JSON, so any character in a value is safe)."""
    return json.dumps(values, separators=(",", ":"))


def parse_label_field(raw: bytes | str, width: int) -> tuple[str, ...] | None:
    """The label values a field holds, or None for a field this version cannot read."""
    try:
        values = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(values, list) or len(values) != width:
        return None
    return tuple(str(value) for value in values)


_batch: contextvars.ContextVar[Counter[tuple[str, str]] | None] = contextvars.ContextVar(
    "metrics_batch", default=None
)


@contextmanager
def batched(client: redis.Redis) -> Iterator[None]:
    """Hold the counts made inside the block and send them in one pipeline when it ends
    (even by an exception): one round trip per task instead of one per request."""
    counts: Counter[tuple[str, str]] = Counter()
    token = _batch.set(counts)
    try:
        yield
    finally:
        _batch.reset(token)
        if counts:
            try:
                pipeline = client.pipeline(transaction=False)
                for (key, field), by in counts.items():
                    pipeline.hincrby(key, field, by)
                pipeline.execute()
            except redis.RedisError as error:
                _warn(error)


def _increment(client: redis.Redis, family: Family, labels: tuple[str, ...], by: int = 1) -> None:
    held = _batch.get()
    if held is not None:
        held[family.key, label_field(labels)] += by
        return
    try:
        client.hincrby(family.key, label_field(labels), by)
    except redis.RedisError as error:
        _warn(error)


_warned_at = float("-inf")
_warn_lock = threading.Lock()


def _warn(error: redis.RedisError) -> None:
    global _warned_at
    with _warn_lock:
        now = time.monotonic()
        if now - _warned_at < WARN_EVERY_SECONDS:
            return
        _warned_at = now
    log.warning(
        "metrics not recorded, Redis unavailable: %s (repeats silenced for %.0f s)",
        error,
        WARN_EVERY_SECONDS,
    )
