"""Recovering a create whose answer was lost: no duplicate tickets, at a known request cost,
whichever of the attempts (days apart) made the ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncworker.connectors.errors import RateLimitedError, TransientError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.markers import find_marker
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

KEY = "a1b2c3d4e5f6a7b8c9d0"
OTHER_KEY = "ffffeeeeddddccccbbbb"
FIELDS = {"subject": "Pedido", "clients": ["client-3"]}


def _create_or_recover(connector: ZenviaConnector, around: datetime) -> Any:
    """What the service does with a write-ahead intent: look first, create only if absent."""
    found = connector.find_created(KEY, around=around)
    if found is not None:
        return found
    return connector.create(FIELDS, idempotency_key=KEY, description="texto")


def test_a_create_whose_response_was_lost_is_found_and_not_created_twice(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer, clock: Any
) -> None:
    sandbox.agent.populate(5)  # tickets of the same day that are not ours
    around = clock()
    sandbox.drop_next_response_after_handling("POST /v2/tickets")

    with pytest.raises(TransientError, match="may or may not have been processed"):
        connector.create({**FIELDS, "urgency": 2}, idempotency_key=KEY, description="texto")
    assert len(sandbox.tickets()) == 6  # the server did create it

    sandbox.agent.edit("6", "subject", {"subject": "Renomeado por um humano"})
    clock.advance(minutes=3)
    recovered = _create_or_recover(connector, around)

    assert recovered.id == "6"
    assert recovered.fields["subject"] == "Renomeado por um humano"
    assert recovered.fields["urgency"] == 2
    assert len(sandbox.tickets()) == 6
    assert server.counters.by_endpoint["POST /v2/tickets"] == 1
    assert sandbox.hooks_fired["drop_after POST /v2/tickets"] == 1
    # the attempt's own date first, and the API-created candidate first: found at once
    assert connector.requests.by_endpoint == {
        "POST /tickets": 1,
        "GET /tickets": 1,
        "GET /tickets/{id}/actions": 1,
    }


def test_find_created_returns_none_when_nothing_was_created_and_checks_every_candidate(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    around = clock()
    sandbox.agent.populate(4)
    connector.create(FIELDS, idempotency_key=OTHER_KEY)
    clock.advance(seconds=5)  # past the listing lag

    assert connector.find_created(KEY, around=around) is None
    assert connector.requests.by_endpoint["GET /tickets"] == 1  # the one date the window touches
    assert connector.requests.by_endpoint["GET /tickets/{id}/actions"] == 5


def test_find_created_checks_only_tickets_created_within_the_send_window(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """A busy day's other tickets are no candidates: a retry costs the date's listing and the
    few tickets created around its attempts, not one request per ticket of the day."""
    for _ in range(40):
        clock.advance(minutes=5)
        sandbox.agent.create_ticket("outro pedido do dia")
    attempt = clock.advance(minutes=5)
    connector.create(FIELDS, idempotency_key=OTHER_KEY)
    clock.advance(minutes=5)
    sandbox.agent.create_ticket("mais um")

    assert connector.find_created(KEY, around=attempt) is None
    assert connector.requests.by_endpoint == {
        "POST /tickets": 1,
        "GET /tickets": 1,
        "GET /tickets/{id}/actions": 1,  # only the ticket created at the attempt
    }


def test_find_created_looks_across_midnight_when_the_send_window_does(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    created = connector.create({**FIELDS, "subject": "quase meia-noite"}, idempotency_key=KEY)
    clock.set(datetime(2026, 3, 11, 0, 0, 30, tzinfo=UTC))
    sandbox.agent.create_ticket("depois da meia-noite")

    found = connector.find_created(KEY, around=datetime(2026, 3, 11, 0, 0, 20, tzinfo=UTC))

    assert found is not None
    assert found.id == created.id
    assert find_marker(sandbox.actions(created.id)[0]["description"]) == KEY
    assert connector.requests.by_endpoint["GET /tickets"] == 2  # 03-11 (empty), then 03-10


def test_find_created_ignores_a_marker_for_another_key_and_tickets_out_of_range(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    connector.create({**FIELDS, "subject": "antigo"}, idempotency_key=KEY)  # outside ±1 day
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    connector.create({**FIELDS, "subject": "outro"}, idempotency_key=OTHER_KEY)
    around = clock()
    clock.advance(seconds=5)

    assert connector.find_created(KEY, around=around) is None
    assert connector.find_created(OTHER_KEY, around=around) is not None


def test_find_created_waits_out_the_listing_lag_instead_of_answering_none(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer, clock: Any
) -> None:
    """Just after a lost reply the new ticket may not be listed yet: "none" would be a lie
    that leads to a duplicate, so the connector asks to be called again later."""
    attempt = clock()
    sandbox.drop_next_response_after_handling("POST /v2/tickets")
    with pytest.raises(TransientError):
        connector.create(FIELDS, idempotency_key=KEY)
    clock.advance(seconds=1)
    server.reset_counters()

    with pytest.raises(RateLimitedError, match="may not be listed yet") as caught:
        connector.find_created(KEY, around=attempt)

    assert caught.value.retry_after == 4.0
    assert server.counters.total == 0
    clock.advance(seconds=4)
    assert connector.find_created(KEY, around=attempt) is not None


def test_a_create_retried_days_later_is_found_around_the_late_attempt(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """The intent began on the 1st (that send was refused before reaching Zenvia); the retry on
    the 10th created the ticket and its reply was lost. Searching around the intent's start
    alone would create a duplicate."""
    began = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    clock.set(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    retried = clock()
    sandbox.drop_next_response_after_handling("POST /v2/tickets")
    with pytest.raises(TransientError):
        connector.create(FIELDS, idempotency_key=KEY, description="texto")
    clock.advance(minutes=5)

    assert connector.find_created(KEY, around=began) is None
    found = connector.find_created(KEY, around=began, attempts=[began, retried])

    assert found is not None
    assert found.id == "1"


def test_find_created_lists_each_date_once_and_stops_at_the_first_match(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    morning = clock()
    connector.create(FIELDS, idempotency_key=KEY)
    afternoon = clock.advance(hours=3)
    clock.advance(minutes=5)

    connector.requests.by_endpoint.clear()
    assert connector.find_created(OTHER_KEY, around=morning, attempts=[morning, afternoon]) is None
    assert connector.requests.by_endpoint == {  # one date for both; one candidate, checked once
        "GET /tickets": 1,
        "GET /tickets/{id}/actions": 1,
    }

    connector.requests.by_endpoint.clear()
    assert connector.find_created(KEY, around=morning, attempts=[morning, afternoon]) is not None
    assert connector.requests.by_endpoint == {"GET /tickets": 1, "GET /tickets/{id}/actions": 1}


def test_the_marker_that_recognises_our_ticket_is_never_shown_to_the_customer(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    record = connector.create(FIELDS, idempotency_key=KEY, description="Pedido do cliente")

    public = [a for a in sandbox.actions(record.id) if a["type"] == "PUBLIC"]
    assert public == []
    assert sandbox.actions(record.id)[0]["type"] == "INTERNAL"
    assert find_marker(sandbox.actions(record.id)[0]["description"]) == KEY
    assert sandbox.ticket(record.id)["type"] == "PUBLIC"  # the ticket itself stays public


def test_find_created_refuses_a_naive_attempt_time(connector: ZenviaConnector, clock: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        connector.find_created(KEY, around=clock(), attempts=[datetime(2026, 3, 10, 12, 0)])


def test_find_created_reads_further_pages_when_the_first_action_is_not_on_the_first(
    make_connector: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    sandbox.listing_order = "updated_desc"  # newest action first: ours is on the last page
    connector = make_connector(page_size=5)
    around = clock()
    created = connector.create(FIELDS, idempotency_key=KEY, description="primeira")
    for n in range(7):
        clock.advance(seconds=1)
        sandbox.agent.add_action(created.id, f"resposta {n}")
    clock.advance(seconds=5)

    found = connector.find_created(KEY, around=around)

    assert found is not None
    assert found.id == created.id
    assert connector.requests.by_endpoint["GET /tickets/{id}/actions"] == 2
