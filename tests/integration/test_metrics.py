"""Metrics add up across workers, reflect the mapping store, and never fail a sync."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis.backoff import NoBackoff
from redis.retry import Retry

from syncworker import metrics
from syncworker.connectors.errors import RateLimitedError
from syncworker.exporter import SyncworkerCollector
from syncworker.model import LinkState, RemoteRecord, Side
from syncworker.ratelimit import SharedGate, WindowBudget
from syncworker.store import migrate, repo
from syncworker.store.db import reset_engines, session_scope
from syncworker.store.tables import DeadLetterStatus, Link
from tests.conftest import create_throwaway_database, drop_database, unique_id
from tests.gates import salesforce_gate

NOON_SAO_PAULO = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NIGHT_SAO_PAULO = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
HOURS = (clock_time(7, 0), clock_time(19, 0))


@pytest.fixture(scope="module")
def metrics_database_url() -> Iterator[str]:
    """Committed data: the collector reads through its own sessions, as the exporter does."""
    name, url = create_throwaway_database("syncworker_metrics")
    migrate.upgrade(url)
    yield url
    reset_engines()
    drop_database(name)


def scrape(
    redis_client: redis.Redis,
    database_url: str,
    gates: Mapping[Side, SharedGate] | None = None,
    now: datetime | None = None,
) -> list[Sample]:
    registry = CollectorRegistry()
    registry.register(
        SyncworkerCollector(
            redis_client=redis_client,
            database_url=database_url,
            gates=gates or {},
            clock=lambda: now or datetime.now(UTC),
        )
    )
    return parse(generate_latest(registry).decode())


def parse(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} exported {len(found)} times"
    return found[0] if found else None


def unreachable_redis() -> redis.Redis:
    """Nothing listens there; no retries, so each refused call returns at once."""
    return redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_counts_from_two_workers_add_up_in_one_scrape(
    redis_url: str, metrics_database_url: str
) -> None:
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    for worker in (first, second):
        metrics.count_request(worker, "zenvia", "GET /tickets")
        metrics.count_throttled(worker, "zenvia")
        metrics.count_propagated(worker, "update", "crm_to_zenvia", n=3)
        metrics.count_conflict(worker, "subject", "newest_wins")
    metrics.count_request(second, "salesforce", "PATCH sobjects/Case/{id}")
    metrics.count_propagated(first, "comment", metrics.towards("crm"))
    before = time.time()
    metrics.observe_reconcile(first, 12.5, complete=True)
    metrics.observe_reconcile(second, 3.0, complete=False)

    samples = scrape(first, metrics_database_url)

    requests = "syncworker_remote_requests_total"
    assert value(samples, requests, remote="zenvia", endpoint="GET /tickets") == 2
    assert value(samples, requests, remote="salesforce", endpoint="PATCH sobjects/Case/{id}") == 1
    assert value(samples, "syncworker_remote_throttled_total", remote="zenvia") == 2
    propagated = "syncworker_propagated_changes_total"
    assert value(samples, propagated, kind="update", direction="crm_to_zenvia") == 6
    assert value(samples, propagated, kind="comment", direction="zenvia_to_crm") == 1
    conflicts = "syncworker_conflicts_total"
    assert value(samples, conflicts, field="subject", policy="newest_wins") == 2
    assert value(samples, "syncworker_reconcile_duration_seconds") == 3.0
    completed = value(samples, "syncworker_reconcile_last_complete_timestamp")
    assert completed is not None
    assert before <= completed <= time.time()


def test_counts_made_in_a_batch_reach_redis_together_when_it_ends(
    redis_url: str, metrics_database_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    requests = "syncworker_remote_requests_total"
    unsent: list[float | None] = []

    def failing_sync() -> None:
        with metrics.batched(client):
            for _ in range(3):
                metrics.count_request(client, "zenvia", "GET /tickets")
            metrics.count_propagated(client, "update", "crm_to_zenvia")
            samples = scrape(client, metrics_database_url)
            unsent.append(value(samples, requests, remote="zenvia", endpoint="GET /tickets"))
            raise RuntimeError("the sync failed: what it counted is still counted")

    with pytest.raises(RuntimeError):
        failing_sync()

    assert unsent == [None]
    samples = scrape(client, metrics_database_url)
    assert value(samples, requests, remote="zenvia", endpoint="GET /tickets") == 3
    propagated = "syncworker_propagated_changes_total"
    assert value(samples, propagated, kind="update", direction="crm_to_zenvia") == 1


def test_the_shared_gate_counts_admitted_requests_and_refusals(
    redis_url: str, metrics_database_url: str
) -> None:
    window = WindowBudget(requests=3, window_seconds=60, business_hours=HOURS, poll_reserve=1)
    zenvia = SharedGate(
        remote="zenvia", redis_url=redis_url, window=window, clock=lambda: NOON_SAO_PAULO
    )
    salesforce = salesforce_gate(redis_url)
    for _ in range(3):
        zenvia.before_request("GET /tickets")
    with pytest.raises(RateLimitedError):
        zenvia.before_request("GET /tickets")
    request = httpx.Request("GET", "http://remote.test/")
    zenvia.after_response(
        "GET /tickets", httpx.Response(429, headers={"Retry-After": "1"}, request=request)
    )
    salesforce.before_request("GET query")
    salesforce.after_response(
        "GET query",
        httpx.Response(
            403,
            headers={"Sforce-Limit-Info": "api-usage=95000/100000"},
            content=b'[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit"}]',
            request=request,
        ),
    )

    samples = scrape(
        redis.Redis.from_url(redis_url), metrics_database_url, {"zenvia": zenvia, "crm": salesforce}
    )

    requests = "syncworker_remote_requests_total"
    assert value(samples, requests, remote="zenvia", endpoint="GET /tickets") == 3
    assert value(samples, requests, remote="salesforce", endpoint="GET query") == 1
    assert value(samples, "syncworker_remote_throttled_total", remote="zenvia") == 1
    assert value(samples, "syncworker_remote_throttled_total", remote="salesforce") == 1
    assert value(samples, "syncworker_rate_budget_remaining", remote="zenvia") == 0
    assert value(samples, "syncworker_rate_budget_remaining", remote="salesforce") is None
    assert value(samples, "syncworker_quota_used_ratio", remote="salesforce") == 0.95
    assert value(samples, "syncworker_quota_used_ratio", remote="zenvia") is None


def test_no_rate_budget_is_exported_while_the_remote_is_unlimited(
    redis_url: str, metrics_database_url: str
) -> None:
    window = WindowBudget(requests=3, window_seconds=60, business_hours=HOURS)
    night = SharedGate(
        remote="zenvia", redis_url=redis_url, window=window, clock=lambda: NIGHT_SAO_PAULO
    )
    samples = scrape(redis.Redis.from_url(redis_url), metrics_database_url, {"zenvia": night})
    assert value(samples, "syncworker_rate_budget_remaining", remote="zenvia") is None


def test_store_gauges_reflect_the_mapping_database(
    redis_url: str, metrics_database_url: str
) -> None:
    now = NOON_SAO_PAULO
    started = datetime.now(UTC)
    with session_scope(metrics_database_url) as session:
        # Comment sweeps due 10 and 3 minutes ago, one due later, and one on an orphaned
        # link (never swept).
        sweeps = (
            (LinkState.ACTIVE, now - timedelta(minutes=10)),
            (LinkState.ACTIVE, now + timedelta(minutes=5)),
            (LinkState.CONFLICT, now - timedelta(minutes=3)),
            (LinkState.ERROR, None),
            (LinkState.ORPHANED, now - timedelta(hours=9)),
        )
        for state, due in sweeps:
            link = Link(
                crm_system="salesforce",
                crm_id=unique_id("500"),
                zenvia_id=unique_id(),
                state=state,
                comments_due_at=due,
            )
            repo.add_link(session, link)
        queued = [unique_id("500"), unique_id("500")]
        for record_id in [*queued, unique_id("500")]:
            repo.observe(session, side="crm", record=RemoteRecord(record_id, now, {}))
        repo.mark_queued(session, side="crm", remote_ids=queued)
        repo.advance_cursor(
            session, side="crm", watermark=now - timedelta(minutes=5), last_id="500x"
        )
        for operation in ("sync", "create"):
            repo.record_dead_letter(
                session,
                link_id=None,
                side="zenvia",
                record_id="4242",
                operation=operation,
                error_class="PermanentError",
                message="zenvia 400: subject is required",
            )
        letter = repo.list_dead_letters(session)[0]
        assert letter.id is not None
        repo.close_dead_letter(session, letter_id=letter.id, status=DeadLetterStatus.DISCARDED)
        for side, complete in (("zenvia", True), ("crm", False)):
            run = repo.start_run(session, kind="poll", side=side)
            assert run.id is not None
            repo.finish_run(session, run_id=run.id, complete=complete, counts={}, error=None)
    finished = datetime.now(UTC)

    samples = scrape(redis.Redis.from_url(redis_url), metrics_database_url, now=now)

    assert value(samples, "syncworker_links", state="active") == 2
    assert value(samples, "syncworker_links", state="conflict") == 1
    assert value(samples, "syncworker_links", state="error") == 1
    assert value(samples, "syncworker_links", state="orphaned") == 1
    assert value(samples, "syncworker_comment_sweep_due") == 2
    assert value(samples, "syncworker_comment_sweep_oldest_due_seconds") == 600
    assert value(samples, "syncworker_backlog") == 2
    assert value(samples, "syncworker_sync_lag_seconds", side="crm") == 300
    assert value(samples, "syncworker_sync_lag_seconds", side="zenvia") is None
    assert value(samples, "syncworker_dead_letters_open") == 1
    polled = value(samples, "syncworker_poll_last_complete_timestamp", side="zenvia")
    assert polled is not None
    assert started.timestamp() <= polled <= finished.timestamp()
    assert value(samples, "syncworker_poll_last_complete_timestamp", side="crm") is None
    assert value(samples, "syncworker_source_up", source="database") == 1
    assert value(samples, "syncworker_source_up", source="redis") == 1


def test_a_scrape_during_a_redis_outage_still_reports_the_database(
    metrics_database_url: str,
) -> None:
    samples = scrape(unreachable_redis(), metrics_database_url)
    assert value(samples, "syncworker_source_up", source="redis") == 0
    assert value(samples, "syncworker_source_up", source="database") == 1
    assert value(samples, "syncworker_backlog") is not None


def test_a_redis_outage_never_fails_the_caller_and_warns_once_a_minute() -> None:
    # A fresh interpreter, so no earlier warning in this process has started the minute.
    script = textwrap.dedent(
        f"""
        import logging
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        from syncworker import metrics

        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        down = redis.Redis(port={free_port()}, retry=Retry(NoBackoff(), 0))
        for _ in range(3):
            metrics.count_request(down, "zenvia", "GET /tickets")
            metrics.count_throttled(down, "zenvia")
            metrics.count_propagated(down, "create", "zenvia_to_crm")
            metrics.count_conflict(down, "status", "crm_wins")
            metrics.observe_reconcile(down, 1.0, complete=True)
        print("sync went on")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sync went on"
    assert done.stderr.count("metrics not recorded, Redis unavailable") == 1


def test_the_metrics_command_serves_a_scrape_over_http(
    redis_url: str, metrics_database_url: str
) -> None:
    metrics.count_request(redis.Redis.from_url(redis_url), "zenvia", "GET /tickets/{id}")
    port = free_port()
    env = {key: val for key, val in os.environ.items() if not key.startswith("SYNCWORKER_")}
    env |= {"SYNCWORKER_DATABASE_URL": metrics_database_url, "SYNCWORKER_BROKER_URL": redis_url}
    command = [str(Path(sys.executable).with_name("syncworker")), "metrics", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        text = _get_when_up(f"http://127.0.0.1:{port}/metrics", server)
    finally:
        server.terminate()
        server.communicate(timeout=10)

    samples = parse(text)
    assert value(samples, "syncworker_source_up", source="redis") == 1
    assert value(samples, "syncworker_source_up", source="database") == 1
    requests = "syncworker_remote_requests_total"
    assert value(samples, requests, remote="zenvia", endpoint="GET /tickets/{id}") == 1


def _get_when_up(url: str, server: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            _, stderr = server.communicate()
            pytest.fail(f"`syncworker metrics` exited {server.returncode}: {stderr}")
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        response.raise_for_status()
        return response.text
    pytest.fail(f"nothing answered on {url}")
