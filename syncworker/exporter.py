"""The scrape side of the metrics: one collector reading Redis and the mapping store.

Nothing is kept in this process. Each scrape reads the counters that workers wrote to Redis
and asks the database and the shared gates for the current state, so a single exporter
reports the whole deployment, however many workers and hosts there are. A source that cannot
be read shows as `syncworker_source_up{source=...} 0` and its metrics are left out of that
scrape, rather than failing the scrape (which would hide the other source's metrics too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import redis
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.exc import SQLAlchemyError

from syncworker import metrics
from syncworker.metrics import Family
from syncworker.model import LinkState, Side
from syncworker.ratelimit import SharedGate
from syncworker.runtime import build_gates
from syncworker.settings import Settings
from syncworker.status import collect_status

log = logging.getLogger(__name__)

Sample = tuple[Family, tuple[str, ...], float]

_COUNTERS = (
    metrics.REMOTE_REQUESTS,
    metrics.REMOTE_THROTTLED,
    metrics.PROPAGATED,
    metrics.CONFLICTS,
)


class SyncworkerCollector(Collector):
    """Every `syncworker_*` metric, read fresh at each scrape."""

    def __init__(
        self,
        *,
        redis_client: redis.Redis,
        database_url: str,
        gates: Mapping[Side, SharedGate],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._redis = redis_client
        self._database_url = database_url
        self._gates = gates
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so registering touches neither Redis nor Postgres."""
        return [_empty(family) for family in metrics.FAMILIES]

    def collect(self) -> Iterable[Metric]:
        families = {family.name: _empty(family) for family in metrics.FAMILIES}
        readers = {
            "redis": (self._from_redis, redis.RedisError),
            "database": (self._from_store, SQLAlchemyError),
        }
        for source, (reader, errors) in readers.items():
            try:
                samples = reader()
            except errors as error:
                log.warning("metrics: cannot read %s: %s", source, str(error).splitlines()[0])
                samples = []
                up = 0.0
            else:
                up = 1.0
            samples.append((metrics.SOURCE_UP, (source,), up))
            for family, labels, value in samples:
                families[family.name].add_metric(list(labels), value)
        return list(families.values())

    def _from_redis(self) -> list[Sample]:
        pipe = self._redis.pipeline(transaction=False)
        for family in _COUNTERS:
            pipe.hgetall(family.key)
        pipe.hgetall(metrics.RECONCILE_KEY)
        *counters, reconcile = pipe.execute()
        samples: list[Sample] = []
        for family, fields in zip(_COUNTERS, counters, strict=True):
            for raw, value in fields.items():
                labels = metrics.parse_label_field(raw, len(family.labels))
                if labels is not None:
                    samples.append((family, labels, float(value)))
        for family, name in (
            (metrics.RECONCILE_DURATION, b"duration_seconds"),
            (metrics.RECONCILE_COMPLETE, b"last_complete_timestamp"),
        ):
            if name in reconcile:
                samples.append((family, (), float(reconcile[name])))
        for gate in self._gates.values():
            remaining = gate.remaining()
            if remaining is not None:
                samples.append((metrics.RATE_BUDGET, (gate.remote,), float(remaining)))
            quota = gate.quota_used()
            if quota is not None and quota[1] > 0:
                samples.append((metrics.QUOTA_USED, (gate.remote,), quota[0] / quota[1]))
        return samples

    def _from_store(self) -> list[Sample]:
        status = collect_status(self._database_url, now=self._clock(), gates={})
        links = {**dict.fromkeys(map(str, LinkState), 0), **status.links}
        samples: list[Sample] = [
            (metrics.LINKS, (state,), float(count)) for state, count in links.items()
        ]
        samples.append((metrics.BACKLOG, (), float(status.backlog)))
        samples.append((metrics.DEAD_LETTERS, (), float(status.dead_letters_open)))
        sweep = status.comment_sweep
        samples.append((metrics.COMMENT_SWEEP_DUE, (), float(sweep["due"])))
        if sweep["oldest_due_seconds"] is not None:
            samples.append((metrics.COMMENT_SWEEP_WAIT, (), sweep["oldest_due_seconds"]))
        for side, lag in status.cursor_lag_seconds.items():
            if lag is not None:
                samples.append((metrics.SYNC_LAG, (side,), lag))
        for side, finished in status.last_complete_poll.items():
            if finished is not None:
                samples.append((metrics.POLL_COMPLETE, (side,), finished.timestamp()))
        return samples


def build_registry(settings: Settings) -> CollectorRegistry:
    """A registry of its own: only syncworker's metrics, none of this process's internals."""
    registry = CollectorRegistry()
    registry.register(
        SyncworkerCollector(
            redis_client=_fail_fast_client(settings.effective_redis_url),
            database_url=settings.database_url,
            gates=build_gates(settings),
        )
    )
    return registry


def _fail_fast_client(url: str) -> redis.Redis:
    """No retries and short timeouts: during an outage a scrape still answers within
    Prometheus's scrape timeout, with `source_up{source="redis"} 0`."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )


def _empty(family: Family) -> CounterMetricFamily | GaugeMetricFamily:
    kind = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
    return kind(family.name, family.help, labels=family.labels)
