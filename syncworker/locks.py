"""Per-pair and per-job locks in Redis. They save work; Postgres uniqueness is the real guard.

A lock that cannot be taken at once raises `LockBusy`: the task is retried with a short
countdown instead of blocking a worker slot. A TTL lock does not exclude across long pauses,
and a Redis restart forgets every lock: the holder asks `Held.owned()` before each remote
write, and the service also fences its final write with the link's revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Protocol

import redis
from redis.exceptions import LockError


class LockBusy(Exception):
    """Someone else holds the lock right now."""


class Held(Protocol):
    def owned(self) -> bool:
        """Whether the lock is still ours: not expired, not lost with a Redis restart."""
        ...


class Locks:
    def __init__(self, client: redis.Redis, *, ttl_seconds: float) -> None:
        self._client = client
        self._ttl = ttl_seconds

    @contextmanager
    def hold(self, name: str) -> Iterator[Held]:
        lock = self._client.lock(f"syncworker:lock:{name}", timeout=self._ttl, blocking=False)
        if not lock.acquire(blocking=False):
            raise LockBusy(name)
        try:
            yield lock
        finally:
            with suppress(LockError):
                lock.release()
