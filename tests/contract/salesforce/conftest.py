"""A Salesforce sandbox on a real loopback socket, a movable clock, connectors pointed at it.

Tests that need a differently configured org override the `sandbox_options` fixture with
`@pytest.mark.parametrize("sandbox_options", [{...}])`. Servers are started once per
configuration for the session (stopping one costs the core's 0.5 s poll interval) and reset
before every test: records, hooks, API usage, faults, counters and the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import Faults, SandboxServer

CLIENT_ID = "3MVG9sandbox.client.id"
CLIENT_SECRET = "sf-client-secret-9b1e6c4d"
STATIC_TOKEN = "00D000000000001!static-token-7Qx2Lm"
START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
API = "/services/data/v62.0"
EXT = "Zenvia_Ticket_Id__c"

# route labels of the sandbox, for its one-shot hooks
UPSERT = "PATCH /services/data/{version}/sobjects/Case/{field}/{value}"
GET_CASE = "GET /services/data/{version}/sobjects/Case/{record_id}"
QUERY = "GET /services/data/{version}/query"
POST_COMMENT = "POST /services/data/{version}/sobjects/CaseComment"


class MovableClock:
    """The sandbox's "now": fixed unless a test moves it (stamps still rise 1 ms per change)."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


_Org = tuple[MovableClock, SalesforceSandbox, SandboxServer]


@pytest.fixture(scope="session")
def _orgs() -> Iterator[dict[str, _Org]]:
    running: dict[str, _Org] = {}
    yield running
    for _clock, _sandbox, server in running.values():
        server.stop()


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def _org(_orgs: dict[str, _Org], sandbox_options: dict[str, Any]) -> _Org:
    key = repr(sorted(sandbox_options.items()))
    if key not in _orgs:
        clock = MovableClock(START)
        sandbox = SalesforceSandbox(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            static_token=STATIC_TOKEN,
            seed=11,
            clock=clock,
            **sandbox_options,
        )
        _orgs[key] = (clock, sandbox, SandboxServer(sandbox).start())
    clock, sandbox, server = _orgs[key]
    clock.current = START
    sandbox.reset()
    server.faults = Faults()
    server.reset_counters()
    return clock, sandbox, server


@pytest.fixture
def clock(_org: _Org) -> MovableClock:
    return _org[0]


@pytest.fixture
def sandbox(_org: _Org) -> SalesforceSandbox:
    return _org[1]


@pytest.fixture
def server(_org: _Org) -> SandboxServer:
    return _org[2]


@pytest.fixture
def make_connector(server: SandboxServer) -> Iterator[Callable[..., SalesforceConnector]]:
    """Build connectors (OAuth by default) on their own clients; all closed after the test."""
    made: list[SalesforceConnector] = []

    def make(*, timeout: float = 5.0, **options: Any) -> SalesforceConnector:
        settings: dict[str, Any] = {
            "login_url": server.base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        settings.update(options)
        connector = SalesforceConnector(httpx.Client(timeout=timeout), **settings)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector: Callable[..., SalesforceConnector]) -> SalesforceConnector:
    return make_connector()


@pytest.fixture
def raw(server: SandboxServer) -> Iterator[httpx.Client]:
    """A bare client holding the static token, for checking the sandbox's wire format."""
    with httpx.Client(
        base_url=f"{server.base_url}{API}",
        headers={"Authorization": f"Bearer {STATIC_TOKEN}"},
        timeout=5.0,
    ) as client:
        yield client
