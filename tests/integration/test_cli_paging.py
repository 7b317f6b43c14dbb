"""Operator commands on an account bigger than one budget window: `resync --all` lists and
queues page by page, waits out a spent window, and a longer stop ends in one clear line."""

from __future__ import annotations

import pytest

from syncworker.connectors.zenvia import MAX_PAGE_SIZE
from syncworker.sandbox.server import RateLimit
from tests.integration.cli_processes import cli_env, run_cli
from tests.integration.test_cli import assert_clean_failure, purge_sync_queue, queued_syncs
from tests.stack import Stack

pytestmark = pytest.mark.integration

LIMIT, WINDOW = 10, 3  # Zenvia's 10 requests a window, the window shortened to 3 s
TICKETS = 12 * MAX_PAGE_SIZE - 50  # more pages than one window's budget: ~1,000 tickets and up
BUSINESS_HOURS = {
    "SYNCWORKER_ZENVIA_RATE_LIMIT": str(LIMIT),
    "SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS": str(WINDOW),
}


def many_tickets(stack: Stack) -> set[str]:
    return set(stack.zenvia.agent.populate(TICKETS))


@pytest.mark.stack_settings(**BUSINESS_HOURS)
def test_resync_all_pages_through_more_tickets_than_one_window_allows(stack: Stack) -> None:
    tickets = many_tickets(stack)
    stack.zenvia_server.faults.rate_limit = RateLimit(requests=LIMIT, window_seconds=WINDOW)
    purge_sync_queue()

    result = run_cli("resync", "--all", env=cli_env(stack.env), timeout=120)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    assert "zenvia request budget spent" in result.stdout
    assert "queued 1000 sync(s) so far" in result.stdout
    assert f"queued {TICKETS} sync(s)" in result.stdout
    assert {record_id for side, record_id in queued_syncs() if side == "zenvia"} == tickets
    assert stack.zenvia_server.counters.throttled == 0


@pytest.mark.stack_settings(**BUSINESS_HOURS)
def test_resync_all_stopped_by_zenvia_says_what_was_queued_and_when_to_run_it_again(
    stack: Stack,
) -> None:
    many_tickets(stack)
    # Zenvia's real minute behind a gate that believes in 3 s windows: the 11th page is a 429
    # whose Retry-After is far longer than the command waits.
    stack.zenvia_server.faults.rate_limit = RateLimit(requests=LIMIT, window_seconds=600)
    purge_sync_queue()

    result = run_cli("resync", "--all", env=cli_env(stack.env), timeout=120)

    assert_clean_failure(result, "after 1000 sync(s) queued", "run the same command again after")
    assert len(queued_syncs()) == 1000  # what was listed before the stop stays queued


@pytest.mark.stack_settings(**BUSINESS_HOURS)
def test_a_dry_run_stopped_by_zenvia_ends_in_one_clear_line(stack: Stack) -> None:
    many_tickets(stack)
    stack.zenvia_server.faults.rate_limit = RateLimit(requests=LIMIT, window_seconds=600)

    result = run_cli("resync", "--all", "--dry-run", env=cli_env(stack.env), timeout=120)

    assert_clean_failure(result, "sync(s) planned", "run the same command again after")
