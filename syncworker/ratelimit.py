"""One request budget per remote account, shared by every worker on every host (Redis).

A remote allows N requests per window (Zenvia: in business hours, unlimited at night), or a
daily quota that each answer reports (a CRM's, read as its `QuotaBudget` says). The gate
never sleeps: when the budget is spent it raises `RateLimitedError` with the wait, and the
task retries with a countdown.
Polling is background work: it may only use the budget while a reserve is left for syncs,
so a busy poller never starves the writes.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from typing import Literal, cast
from zoneinfo import ZoneInfo

import httpx
import redis
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from syncworker import metrics
from syncworker.connectors.errors import RateLimitedError
from syncworker.connectors.http import retry_after_seconds

Priority = Literal["sync", "poll", "sweep"]
_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "request_priority", default="sync"
)
_prepaid: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar(
    "prepaid_requests",
    default={},  # noqa: B039 - never mutated: reserve() sets a new dict
)


@contextmanager
def background_priority(priority: Priority = "poll") -> Iterator[None]:
    """Requests made inside this block are background work: polls yield the budget's reserve
    to syncs; the comment sweep yields twice that, so a poll always finds a request."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


@dataclass(frozen=True)
class WindowBudget:
    """`requests` per moving window of `window_seconds`, only inside `business_hours` if set."""

    requests: int
    window_seconds: int
    business_hours: tuple[clock_time, clock_time] | None = None
    timezone: str = "America/Sao_Paulo"
    poll_reserve: int = 2

    def applies_at(self, moment: datetime) -> bool:
        if self.business_hours is None:
            return True
        start, end = self.business_hours
        return start <= moment.astimezone(ZoneInfo(self.timezone)).time() < end


@dataclass(frozen=True)
class QuotaBudget:
    """A daily quota that the remote reports; stop at `1 - reserve` of it. How the remote
    reports it is its connector's knowledge: `usage` reads (used, limit) from an answer,
    `spent` tells an answer refusing a request because the quota is gone."""

    usage: Callable[[httpx.Response], tuple[int, int] | None]
    spent: Callable[[httpx.Response], bool]
    reserve_fraction: float = 0.1
    pause_seconds: float = 600.0


class SharedGate:
    """The `RequestGate` for one remote account, backed by Redis (or memory for the demo)."""

    def __init__(
        self,
        *,
        remote: str,
        redis_url: str,
        window: WindowBudget | None = None,
        quota: QuotaBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.remote = remote
        self.window = window
        self.quota = quota
        self.clock = clock
        self._prefix = f"syncworker:budget:{remote}"
        self._redis = redis_client(redis_url)
        self._limiter = MovingWindowRateLimiter(storage_from_string(_limits_uri(redis_url)))
        self._item = (
            RateLimitItemPerSecond(window.requests, window.window_seconds) if window else None
        )
        self._quota_noted: tuple[int, int] | None = None

    # -- RequestGate -----------------------------------------------------------------------

    def before_request(self, endpoint: str) -> None:
        prepaid = _prepaid.get()
        if prepaid.get(self.remote, 0) > 0:
            prepaid[self.remote] -= 1
        else:
            self._admit()
        metrics.count_request(self._redis, self.remote, endpoint)

    @contextmanager
    def reserve(self, requests: int) -> Iterator[None]:
        """Take `requests` from the budget at once for one plan (its writes and the re-read
        before them), or none at all.

        All-or-nothing, so a rate limit never leaves a plan half applied and never lets several
        syncs each spend part of the window and all fail. Requests beyond the reservation (or
        beyond what one window can hold) are admitted one by one as usual.
        """
        cost = self._reservable(requests)
        if cost:
            self._check_blocked(self._get(f"{self._prefix}:blocked"))
            if not self._limiter.hit(self._item, self._prefix, cost=cost):  # type: ignore[arg-type]
                stats = self._limiter.get_window_stats(self._item, self._prefix)  # type: ignore[arg-type]
                raise self._limited(f"no room for {cost} writes in this window", stats.reset_time)
        token = _prepaid.set({**_prepaid.get(), self.remote: cost})
        try:
            yield
        finally:
            _prepaid.reset(token)

    def _reservable(self, requests: int) -> int:
        if self.window is None or self._item is None or not self.window.applies_at(self.clock()):
            return 0
        return max(0, min(requests, self.window.requests - self.window.poll_reserve))

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        if response.status_code == 429:
            metrics.count_throttled(self._redis, self.remote)
            self.block_for(retry_after_seconds(response.headers.get("Retry-After")))
        if self.quota is None:
            return
        usage = self.quota.usage(response)
        if usage:
            self._note_quota(*usage)
        if self.quota.spent(response):
            metrics.count_throttled(self._redis, self.remote)
            self.block_for(self.quota.pause_seconds)

    # -- feedback and inspection -----------------------------------------------------------

    def block_for(self, seconds: float) -> None:
        """The remote told us to wait: every worker waits, not just the one that was told."""
        until = time.time() + seconds
        self._redis.set(f"{self._prefix}:blocked", str(until), px=max(1, int(seconds * 1000)))

    def remaining(self) -> int | None:
        """Requests left in the current window (None when unlimited right now)."""
        if self.window is None or self._item is None or not self.window.applies_at(self.clock()):
            return None
        return int(self._limiter.get_window_stats(self._item, self._prefix).remaining)

    def spendable(self, priority: Priority) -> int | None:
        """Requests work of `priority` may still spend in the current window: what is left
        beyond the reserve kept for the work before it (None when unlimited right now)."""
        remaining = self.remaining()
        if remaining is None or self.window is None:
            return None
        return max(0, remaining - _reserve(self.window, priority))

    def quota_used(self) -> tuple[int, int] | None:
        return _parse_quota(self._get(f"{self._prefix}:quota"))

    def _note_quota(self, used: int, limit: int) -> None:
        """Store the quota the remote reported when it moved by 0.1 % of the limit since this
        process last stored it, or lies in the reserve (every response carries it: storing
        each one would cost a Redis write per request for a figure that moves slowly)."""
        last = self._quota_noted
        reserve = self.quota.reserve_fraction if self.quota else 0.0
        if (
            last is None
            or last[1] != limit
            or not 0 <= used - last[0] < max(1, limit // 1000)
            or used >= limit * (1 - reserve)
        ):
            self._redis.set(f"{self._prefix}:quota", f"{used}/{limit}", ex=86400)
            self._quota_noted = (used, limit)

    def reset(self) -> None:
        if self._item is not None:
            self._limiter.clear(self._item, self._prefix)
        self._redis.delete(f"{self._prefix}:blocked", f"{self._prefix}:quota")

    def _admit(self) -> None:
        """Take one request from the budget, or raise RateLimitedError with the wait."""
        self._check_feedback()
        if self.window is None or self._item is None or not self.window.applies_at(self.clock()):
            return
        priority = _priority.get()
        if priority != "sync":
            stats = self._limiter.get_window_stats(self._item, self._prefix)
            if stats.remaining <= _reserve(self.window, priority):
                before = "syncs" if priority == "poll" else "syncs and polls"
                raise self._limited(f"budget reserved for {before}", stats.reset_time)
        if not self._limiter.hit(self._item, self._prefix):
            stats = self._limiter.get_window_stats(self._item, self._prefix)
            raise self._limited("shared request budget spent", stats.reset_time)

    def _check_feedback(self) -> None:
        """The remote's last word: a block (429) and, with a quota, its use (one MGET)."""
        keys = [f"{self._prefix}:blocked", *([f"{self._prefix}:quota"] if self.quota else [])]
        blocked, *quota = cast(list[bytes | None], self._redis.mget(keys))
        self._check_blocked(blocked)
        used = _parse_quota(quota[0]) if quota else None
        if self.quota and used and used[0] >= used[1] * (1 - self.quota.reserve_fraction):
            raise RateLimitedError(
                f"daily API quota nearly spent ({used[0]}/{used[1]})",
                remote=self.remote,
                retry_after=self.quota.pause_seconds,
            )

    def _check_blocked(self, raw: bytes | None) -> None:
        if raw:
            wait = float(raw) - time.time()
            if wait > 0:
                raise RateLimitedError(
                    "the remote asked all workers to wait", remote=self.remote, retry_after=wait
                )

    def _get(self, key: str) -> bytes | None:
        return cast(bytes | None, self._redis.get(key))

    def _limited(self, why: str, reset_time: float) -> RateLimitedError:
        return RateLimitedError(
            why, remote=self.remote, retry_after=max(0.05, reset_time - time.time())
        )


def _reserve(window: WindowBudget, priority: Priority) -> int:
    """Requests of a window that work of `priority` leaves to the work before it: a poll
    leaves the syncs' reserve, the comment sweep twice that, so a poll always finds one."""
    return {"sync": 0, "poll": window.poll_reserve, "sweep": 2 * window.poll_reserve}[priority]


def _parse_quota(raw: bytes | None) -> tuple[int, int] | None:
    if not raw:
        return None
    used, _, limit = raw.decode().partition("/")
    return int(used), int(limit)


def _limits_uri(redis_url: str) -> str:
    return "memory://" if redis_url.startswith("memory://") else redis_url


_memory_clients: dict[str, redis.Redis] = {}


def redis_client(redis_url: str) -> redis.Redis:
    """A real Redis client, or one shared in-process fakeredis for the embedded demo."""
    if redis_url.startswith("memory://"):
        import fakeredis

        return _memory_clients.setdefault(redis_url, fakeredis.FakeRedis())
    return redis.Redis.from_url(redis_url)
