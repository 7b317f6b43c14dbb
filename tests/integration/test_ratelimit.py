"""The shared budget holds across processes' clients, never sleeps, and prefers syncs to polls."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as clock_time

import httpx
import pytest

from syncworker.connectors.errors import RateLimitedError
from syncworker.ratelimit import Priority, SharedGate, WindowBudget, background_priority
from tests.gates import salesforce_gate

NOON_SAO_PAULO = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NIGHT_SAO_PAULO = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
HOURS = (clock_time(7, 0), clock_time(19, 0))


def gate(redis_url: str, *, requests: int = 5, at: datetime = NOON_SAO_PAULO) -> SharedGate:
    window = WindowBudget(
        requests=requests, window_seconds=60, business_hours=HOURS, poll_reserve=2
    )
    return SharedGate(remote="zenvia", redis_url=redis_url, window=window, clock=lambda: at)


def test_two_workers_share_one_budget(redis_url: str) -> None:
    first, second = gate(redis_url, requests=6), gate(redis_url, requests=6)
    for _ in range(3):
        first.before_request("GET /tickets")
        second.before_request("GET /tickets")
    with pytest.raises(RateLimitedError) as caught:
        second.before_request("PATCH /tickets/{id}/attributes/subject")
    assert 0 < caught.value.retry_after <= 60
    assert first.remaining() == 0


def test_polling_leaves_the_reserve_to_syncs(redis_url: str) -> None:
    shared = gate(redis_url)
    with background_priority():
        for _ in range(3):
            shared.before_request("GET /tickets")
        with pytest.raises(RateLimitedError, match="reserved for syncs"):
            shared.before_request("GET /tickets")
    shared.before_request("PATCH /tickets/{id}/attributes/status")
    shared.before_request("POST /tickets/{id}/actions")
    assert shared.remaining() == 0


@pytest.mark.parametrize("priority", ["sync", "poll", "sweep"])
def test_what_the_gate_says_a_priority_may_spend_is_what_it_admits(
    redis_url: str, priority: Priority
) -> None:
    shared = gate(redis_url, requests=10)
    shared.before_request("GET /tickets")
    spendable = shared.spendable(priority)
    assert spendable == {"sync": 9, "poll": 7, "sweep": 5}[priority]
    with background_priority(priority):
        for _ in range(spendable):
            shared.before_request("GET /tickets/{id}/actions")
        assert shared.spendable(priority) == 0
        with pytest.raises(RateLimitedError):
            shared.before_request("GET /tickets/{id}/actions")


def test_no_limit_outside_business_hours(redis_url: str) -> None:
    night = gate(redis_url, requests=1, at=NIGHT_SAO_PAULO)
    for _ in range(50):
        night.before_request("GET /tickets")
    assert night.remaining() is None


def test_a_429_makes_every_worker_wait_the_stated_time(redis_url: str) -> None:
    first, second = gate(redis_url, requests=100), gate(redis_url, requests=100)
    request = httpx.Request("GET", "http://zenvia.test/v2/tickets")
    first.after_response(
        "GET /tickets", httpx.Response(429, headers={"Retry-After": "30"}, request=request)
    )
    with pytest.raises(RateLimitedError) as caught:
        second.before_request("GET /tickets")
    assert 25 < caught.value.retry_after <= 30


def test_salesforce_quota_from_the_limit_header_stops_before_exhaustion(redis_url: str) -> None:
    salesforce = salesforce_gate(redis_url)
    request = httpx.Request("GET", "http://sf.test/services/data/v62.0/query")
    headers = {"Sforce-Limit-Info": "api-usage=89000/100000"}
    salesforce.after_response("GET query", httpx.Response(200, headers=headers, request=request))
    salesforce.before_request("GET query")
    headers = {"Sforce-Limit-Info": "api-usage=90001/100000"}
    salesforce.after_response("GET query", httpx.Response(200, headers=headers, request=request))
    with pytest.raises(RateLimitedError, match=r"quota nearly spent \(90001/100000\)"):
        salesforce.before_request("GET query")


def test_the_quota_is_stored_as_it_moves_not_on_every_response(redis_url: str) -> None:
    salesforce = salesforce_gate(redis_url)
    request = httpx.Request("GET", "http://sf.test/services/data/v62.0/query")

    def respond(used: int) -> None:
        headers = {"Sforce-Limit-Info": f"api-usage={used}/100000"}
        salesforce.after_response(
            "GET query", httpx.Response(200, headers=headers, request=request)
        )

    respond(50_000)
    respond(50_099)  # less than 0.1 % of the limit later
    assert salesforce.quota_used() == (50_000, 100_000)
    respond(50_100)
    assert salesforce.quota_used() == (50_100, 100_000)
    respond(89_950)
    respond(90_001)  # in the reserve: every response is stored, so the stop is exact
    assert salesforce.quota_used() == (90_001, 100_000)
