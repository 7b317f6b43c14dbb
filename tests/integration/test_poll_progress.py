"""A Zenvia poll inside the business-hours budget: each request is progress, a poll the budget
stops goes on from its last page, and a day's volume never stalls the poll."""

from __future__ import annotations

import time

import pytest
from sqlmodel import col, select

from syncworker import service
from syncworker.sandbox.server import RateLimit
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Observation
from tests.integration.test_cli_paging import BUSINESS_HOURS, LIMIT, WINDOW, many_tickets
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
        outcomes.append(service.poll(stack.runtime, "zenvia"))
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
