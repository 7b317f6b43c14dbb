"""Zenvia inside the business-hours budget: each poll request is progress, a poll the budget
stops goes on from its last page, and a day's volume stalls neither the poll nor a create's
recovery."""

from __future__ import annotations

import time

import pytest
from sqlmodel import col, select

from syncworker import sync
from syncworker.connectors.errors import RateLimitedError, TransientError
from syncworker.model import Side
from syncworker.sandbox.server import RateLimit
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Observation
from tests.integration.test_cli_paging import BUSINESS_HOURS, LIMIT, WINDOW, many_tickets
from tests.integration.test_sync_flows import held_poll, requests_made, sync_here
from tests.stack import Stack

pytestmark = pytest.mark.integration


@pytest.mark.stack_settings(**BUSINESS_HOURS)
def test_a_poll_over_more_pages_than_a_window_allows_resumes_until_it_has_read_them_all(
    stack: Stack,
) -> None:
    stack.poll()  # beat's first polls pin where the passes start
    tickets = many_tickets(stack)
    time.sleep(stack.zenvia.listing_lag.total_seconds() + 0.1)
    stack.zenvia_server.faults.rate_limit = RateLimit(requests=LIMIT, window_seconds=WINDOW)
    listing_requests = stack.zenvia_server.counters.by_endpoint["GET /v2/tickets"]

    outcomes = []
    while not outcomes or not outcomes[-1].complete:
        assert len(outcomes) < 10, f"no complete pass after {len(outcomes)} polls: {outcomes}"
        outcomes.append(sync.poll(stack.runtime, "zenvia"))
        if not outcomes[-1].complete:
            time.sleep(WINDOW)  # as beat: the next poll comes a poll interval later

    assert not outcomes[0].complete, "the pass needs more than one window"
    assert all(outcome.seen > 0 for outcome in outcomes[:-1]), "every stopped poll observed"
    with session_scope(stack.database_url) as session:
        flagged = select(Observation.remote_id).where(
            Observation.side == "zenvia", col(Observation.sync_queued_at).is_not(None)
        )
        queued = set(session.exec(flagged))
        cursor = repo.get_cursor(session, side="zenvia")
    assert queued == tickets
    assert cursor is not None
    assert cursor.listing is None, "the finished pass left no position"
    pages = -(-len(tickets) // 100) + 1  # the createdAt listing's pages, and updatedAt's one
    read = stack.zenvia_server.counters.by_endpoint["GET /v2/tickets"] - listing_requests
    assert read == pages, "each page read once: a resumed pass does not start over"
    assert stack.zenvia_server.counters.throttled == 0


@pytest.mark.stack_settings(**BUSINESS_HOURS, SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600")
def test_a_create_answered_503_is_retried_without_reading_every_ticket_of_the_day(
    stack: Stack,
) -> None:
    """A 503 leaves a create's outcome unknown, so its retry first looks for the ticket. On a
    busy day that search read the actions of every ticket created that day, spending windows
    the other syncs needed; it now reads the day's listing and only the tickets created within
    the send's window (none here), then creates the ticket."""
    stack.poll()
    stack.zenvia.agent.populate(300)  # a busy morning
    time.sleep(stack.settings.http_timeout_seconds + 1)  # they are outside the send's window
    stack.salesforce.agent.create_case(Subject="Answered 503", Status="New", Origin="Web")
    stack.zenvia.fail_next("POST /v2/tickets", 503, "UNAVAILABLE", "Service unavailable")
    queued = [(side, record_id) for side, record_id in held_poll(stack) if side == "crm"]
    with pytest.raises(TransientError):
        sync_here(stack, queued)
    time.sleep(stack.settings.zenvia_listing_lag_seconds + 0.1)  # a miss must prove nothing

    spent = requests_made(stack, lambda: retried_until_done(stack, queued))["zenvia"]

    assert [t["subject"] for t in stack.tickets()].count("Answered 503") == 1
    assert spent.get("GET /v2/tickets/{ticket_id}/actions", 0) == 0, spent
    assert spent["GET /v2/tickets"] == 3, "the day's createdAt listing: 300 tickets, 3 pages"
    assert spent["POST /v2/tickets"] == 1


def retried_until_done(stack: Stack, queued: list[tuple[Side, str]], attempts: int = 6) -> None:
    """The syncs run as their task retries them: again a window later while the budget is
    spent (a stalled recovery runs out of attempts)."""
    for _ in range(attempts):
        try:
            sync_here(stack, queued)
            return
        except RateLimitedError:
            time.sleep(WINDOW)
    raise AssertionError(f"not done after {attempts} windows")
