"""Recovering a create whose answer was lost: no duplicate tickets, at a known request cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncworker.connectors.errors import TransientError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.markers import find_marker
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

KEY = "a1b2c3d4e5f6a7b8c9d0"
OTHER_KEY = "ffffeeeeddddccccbbbb"


def _create_or_recover(connector: ZenviaConnector, around: datetime) -> Any:
    """What the service does with a write-ahead intent: look first, create only if absent."""
    found = connector.find_created(KEY, around=around)
    if found is not None:
        return found
    return connector.create({"subject": "Pedido"}, idempotency_key=KEY, description="texto")


def test_a_create_whose_response_was_lost_is_found_and_not_created_twice(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer, clock: Any
) -> None:
    sandbox.agent.populate(5)  # tickets of the same day that are not ours
    around = clock()
    sandbox.drop_next_response_after_handling("POST /v2/tickets")

    with pytest.raises(TransientError, match="may or may not have been processed"):
        connector.create(
            {"subject": "Pedido", "urgency": 2}, idempotency_key=KEY, description="texto"
        )
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
    # 3 date listings + the actions of the one API-created candidate, checked first
    assert connector.requests.by_endpoint == {
        "POST /tickets": 1,
        "GET /tickets": 3,
        "GET /tickets/{id}/actions": 1,
    }


def test_find_created_returns_none_when_nothing_was_created_and_checks_every_candidate(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    sandbox.agent.populate(4)
    connector.create({"subject": "outro"}, idempotency_key=OTHER_KEY)

    assert connector.find_created(KEY, around=clock()) is None
    assert connector.requests.by_endpoint["GET /tickets"] == 3
    assert connector.requests.by_endpoint["GET /tickets/{id}/actions"] == 5


def test_find_created_looks_one_day_either_side_of_around(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    created = connector.create({"subject": "quase meia-noite"}, idempotency_key=KEY)
    clock.set(datetime(2026, 3, 11, 0, 0, 30, tzinfo=UTC))
    sandbox.agent.create_ticket("depois da meia-noite")

    found = connector.find_created(KEY, around=clock())

    assert found is not None
    assert found.id == created.id
    assert find_marker(sandbox.actions(created.id)[0]["description"]) == KEY


def test_find_created_ignores_a_marker_for_another_key_and_tickets_out_of_range(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    connector.create({"subject": "antigo"}, idempotency_key=KEY)  # outside ±1 day
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    connector.create({"subject": "outro"}, idempotency_key=OTHER_KEY)

    assert connector.find_created(KEY, around=clock()) is None
    assert connector.find_created(OTHER_KEY, around=clock()) is not None
