"""The test stack's `settle()` waits out Zenvia's listing lag, and no longer than it must."""

from __future__ import annotations

import time

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.integration


def test_a_ticket_created_just_before_settle_is_linked_when_it_returns(stack: Stack) -> None:
    stack.start_worker(concurrency=1)
    lag = stack.zenvia.listing_lag.total_seconds()
    assert lag > 0, "the sandbox's default listing lag is what this test is about"
    ticket = stack.zenvia.agent.create_ticket("Printer on fire", clients=["client-7"])

    started = time.monotonic()
    stack.settle(timeout=60)

    assert [link.zenvia_id for link in stack.links()] == [str(ticket["id"])]
    assert all(link.crm_id for link in stack.links())
    assert time.monotonic() - started > lag
