"""A Zenvia sandbox on a real loopback socket, a movable clock, and a connector pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.server import Faults, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

from ..recording_gate import RecordingGate

TOKEN = "zv-test-token-5f1c9e0a7d3b"
START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 12:00 in Brasília
# The sandbox's switches; each test starts from their (harsh) defaults.
SWITCHES = (
    "filter_timezone",
    "date_filter",
    "action_moves_updated_at",
    "null_updated_at",
    "lockout",
    "lockout_after",
    "lockout_window",
    "lockout_seconds",
    "dependent_lookups",
    "closed_is_final",
    "listing_order",
    "listing_lag",
    "clients_required",
    "contacts_are_clients",
    "signature_secret",
    "subject_max_length",
)


class MovableClock:
    """The sandbox's and the connector's "now": tests move it across midnight."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def recording_gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
def token() -> str:
    return TOKEN


@dataclass
class _Served:
    clock: MovableClock
    sandbox: ZenviaSandbox
    server: SandboxServer


@pytest.fixture(scope="session")
def _served() -> Iterator[_Served]:
    """One server for the session (stopping one costs its 0.5 s poll interval)."""
    clock = MovableClock(START)
    sandbox = ZenviaSandbox(token=TOKEN, seed=7, clock=clock)
    with SandboxServer(sandbox) as server:
        yield _Served(clock, sandbox, server)


@pytest.fixture
def clock(_served: _Served) -> MovableClock:
    _served.clock.set(START)
    return _served.clock


@pytest.fixture
def sandbox(_served: _Served, clock: MovableClock) -> ZenviaSandbox:
    """The session's sandbox, emptied and back to its defaults for each test."""
    sandbox = _served.sandbox
    sandbox.reset()
    defaults = ZenviaSandbox(token=TOKEN)
    for switch in SWITCHES:
        setattr(sandbox, switch, getattr(defaults, switch))
    return sandbox


@pytest.fixture
def server(_served: _Served, sandbox: ZenviaSandbox) -> SandboxServer:
    server = _served.server
    server.faults = Faults()
    server.reset_counters()
    return server


@pytest.fixture
def own_server(sandbox: ZenviaSandbox) -> Iterator[SandboxServer]:
    """A server of its own, for tests whose state (a rate-limit window) must not be shared."""
    with SandboxServer(sandbox) as running:
        yield running


@pytest.fixture
def make_connector(
    server: SandboxServer, clock: MovableClock
) -> Iterator[Callable[..., ZenviaConnector]]:
    """Build connectors on their own pooled clients; all are closed after the test."""
    made: list[ZenviaConnector] = []

    def make(
        *,
        token: str = TOKEN,
        timeout: float = 5.0,
        on: SandboxServer | None = None,
        **options: object,
    ) -> ZenviaConnector:
        client = httpx.Client(timeout=timeout)
        connector = ZenviaConnector(
            client,
            base_url=f"{(on or server).base_url}/v2",
            token=token,
            clock=clock,
            **options,  # type: ignore[arg-type]
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector: Callable[..., ZenviaConnector]) -> ZenviaConnector:
    return make_connector()


@pytest.fixture
def raw(server: SandboxServer) -> Iterator[httpx.Client]:
    """A bare authenticated client for checking the sandbox's wire format directly."""
    with httpx.Client(
        base_url=f"{server.base_url}/v2", headers={"X-API-TOKEN": TOKEN}, timeout=5.0
    ) as client:
        yield client
