"""What the connector contract suite needs to know about one remote, and nothing else.

`tests/contract/test_connector_contract.py` speaks to connectors through the `Connector`
protocol only. Whatever differs between remotes lives here, in one `Harness` per remote: how
a human makes or changes a record there (its sandbox's agent desk), a valid create payload,
changes to write, a change the remote refuses, and how to provoke that remote's own faults
on its sandbox. A new CRM's connector passes the suite once it has a harness here and its
name in `HARNESSES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx

from syncworker.connectors.base import Connector, NativeFields, OpenGate, RequestGate
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import Faults, RateLimit, SandboxApp, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 12:00 in Brasília: business hours
Written = Literal["create", "add_comment"]


class MovableClock:
    """The sandbox's and the connector's "now": fixed unless a test moves it."""

    def __init__(self) -> None:
        self.current = START

    def __call__(self) -> datetime:
        return self.current


class Harness(ABC):
    """One remote's sandbox on a real socket, its clock, and what the suite needs of it."""

    name: str
    # the text field every record has (a Case's Subject, a ticket's subject)
    title_field: str
    # changes to two fields an update must land (each accepted by the remote)
    changes: NativeFields
    # changes the remote refuses on one field, with words of the refusal it answers
    refused_changes: NativeFields
    refused_message: str
    # a well-formed id no record has
    missing_id: str

    def __init__(self, app: SandboxApp, clock: MovableClock) -> None:
        self.app = app
        self.clock = clock
        self.server = SandboxServer(app).start()
        self._made: list[Connector] = []

    def reset(self) -> None:
        """Back to an empty remote at `START`, with no fault armed and no request counted."""
        self.clock.current = START
        self.app.reset()
        self.server.faults = Faults()
        self.server.reset_counters()

    def advance(self, seconds: float) -> None:
        self.clock.current += timedelta(seconds=seconds)

    def connector(self, *, gate: RequestGate | None = None, credentials: bool = True) -> Connector:
        """A connector on its own pooled client (closed by `close_connectors`); with
        `credentials=False` it holds credentials the remote refuses."""
        made = self._build(httpx.Client(timeout=5.0), gate or OpenGate(), credentials)
        self._made.append(made)
        return made

    def close_connectors(self) -> None:
        for made in self._made:
            made.close()
        self._made.clear()

    def stop(self) -> None:
        self.server.stop()

    def throttle(self) -> None:
        """Make the remote answer every request with its rate-limit refusal (a 429 that
        states its wait)."""
        self.server.faults.rate_limit = RateLimit(requests=0)

    @abstractmethod
    def _build(self, client: httpx.Client, gate: RequestGate, credentials: bool) -> Connector: ...

    @abstractmethod
    def human_create(self, title: str) -> str:
        """A record a person made in the remote's UI; its id."""

    @abstractmethod
    def human_edit(self, record_id: str, title: str) -> None:
        """A person changes the record's title in the remote's UI."""

    @abstractmethod
    def human_delete(self, record_id: str) -> bool:
        """A person deletes the record; False when the remote has no deletion."""

    @abstractmethod
    def create_fields(self, title: str) -> NativeFields:
        """A payload `create` accepts."""

    @abstractmethod
    def refuse_next_update(self, message: str) -> None:
        """The next write of `title_field` is refused as invalid (a 400) with `message`."""

    @abstractmethod
    def lose_next_reply(self, operation: Written) -> None:
        """The next `operation` is done by the remote, but its reply never arrives."""

    @abstractmethod
    def spend_budget(self) -> None:
        """Spend (nearly) all of the remote's request budget, so its next answer says so."""

    @abstractmethod
    def reported_quota(self) -> tuple[int, int] | None:
        """(used, limit) as the remote's last answer stated it; None if it states none."""


class SalesforceHarness(Harness):
    name = "salesforce"
    title_field = "Subject"
    changes: NativeFields = {"Subject": "Renamed by the sync", "Priority": "High"}
    refused_changes: NativeFields = {"Subject": "Never landed", "OwnerId": "005000000000042AAA"}
    refused_message = "invalid cross reference id"
    missing_id = "500000000000999AAA"

    CLIENT_ID = "3MVG9contract.client.id"
    CLIENT_SECRET = "sf-contract-secret-5d2e8a1f"
    UPSERT = "PATCH /services/data/{version}/sobjects/Case/{field}/{value}"
    UPDATE = "PATCH /services/data/{version}/sobjects/Case/{record_id}"
    POST_COMMENT = "POST /services/data/{version}/sobjects/CaseComment"

    def __init__(self) -> None:
        clock = MovableClock()
        self.sandbox = SalesforceSandbox(
            client_id=self.CLIENT_ID, client_secret=self.CLIENT_SECRET, seed=17, clock=clock
        )
        super().__init__(self.sandbox, clock)

    def _build(self, client: httpx.Client, gate: RequestGate, credentials: bool) -> Connector:
        if not credentials:
            return SalesforceConnector(
                client,
                access_token="00D000000000001!revoked-session",  # refused on purpose
                instance_url=self.server.base_url,
                gate=gate,
                clock=self.clock,
            )
        return SalesforceConnector(
            client,
            login_url=self.server.base_url,
            client_id=self.CLIENT_ID,
            client_secret=self.CLIENT_SECRET,
            gate=gate,
            clock=self.clock,
        )

    def human_create(self, title: str) -> str:
        return self.sandbox.agent.create_case(Subject=title, Origin="Phone")

    def human_edit(self, record_id: str, title: str) -> None:
        self.sandbox.agent.edit(record_id, Subject=title)

    def human_delete(self, record_id: str) -> bool:
        self.sandbox.agent.delete(record_id)
        return True

    def create_fields(self, title: str) -> NativeFields:
        return {"Subject": title, "Priority": "Medium", "Origin": "Web"}

    def refuse_next_update(self, message: str) -> None:
        self.sandbox.fail_next(
            self.UPDATE, 400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", message, fields=["Subject"]
        )

    def lose_next_reply(self, operation: Written) -> None:
        label = self.UPSERT if operation == "create" else self.POST_COMMENT
        self.sandbox.drop_next_response_after_handling(label)

    def spend_budget(self) -> None:
        """95 % of the daily quota used: still served, and stated in `Sforce-Limit-Info`."""
        self.sandbox.api_usage = self.sandbox.daily_quota * 95 // 100

    def reported_quota(self) -> tuple[int, int] | None:
        return self.sandbox.api_usage, self.sandbox.daily_quota


class ZenviaHarness(Harness):
    name = "zenvia"
    title_field = "subject"
    # two PATCHes: category (no service asked of it in the default catalogue), then subject
    changes: NativeFields = {"subject": "Renomeado pela sincronização", "category": 2}
    # category lands first; the unknown urgency is refused; subject is never sent
    refused_changes: NativeFields = {"subject": "Nunca gravado", "category": 2, "urgency": 99}
    refused_message = "urgency 99 does not exist"
    missing_id = "999999"

    TOKEN = "zv-contract-token-8e4b1c2d"
    CREATE = "POST /v2/tickets"
    ADD_ACTION = "POST /v2/tickets/{ticket_id}/actions"
    PATCH_SUBJECT = "PATCH /v2/tickets/{ticket_id}/attributes/subject"

    def __init__(self) -> None:
        clock = MovableClock()
        # the sandbox's harsh defaults: shuffled listings, a 2 s listing lag, null updatedAt
        self.sandbox = ZenviaSandbox(token=self.TOKEN, seed=17, clock=clock)
        super().__init__(self.sandbox, clock)

    def _build(self, client: httpx.Client, gate: RequestGate, credentials: bool) -> Connector:
        return ZenviaConnector(
            client,
            base_url=f"{self.server.base_url}/v2",
            token=self.TOKEN if credentials else "zv-revoked-token",
            gate=gate,
            clock=self.clock,
            page_size=2,  # several pages from a few tickets: a pass can stop between them
            listing_lag_seconds=self.sandbox.listing_lag.total_seconds(),
        )

    def human_create(self, title: str) -> str:
        return str(self.sandbox.agent.create_ticket(title)["id"])

    def human_edit(self, record_id: str, title: str) -> None:
        self.sandbox.agent.edit(record_id, "subject", {"subject": title})

    def human_delete(self, record_id: str) -> bool:
        return False  # v2 has no ticket deletion

    def create_fields(self, title: str) -> NativeFields:
        return {"subject": title, "clients": ["client-2"], "category": 1}

    def refuse_next_update(self, message: str) -> None:
        self.sandbox.fail_next(
            self.PATCH_SUBJECT,
            400,
            "VALIDATION_ERROR",
            message,
            [{"path": "subject", "message": message}],
        )

    def lose_next_reply(self, operation: Written) -> None:
        label = self.CREATE if operation == "create" else self.ADD_ACTION
        self.sandbox.drop_next_response_after_handling(label)

    def spend_budget(self) -> None:
        """The minute's window is spent: a 429 stating when it resets."""
        self.throttle()

    def reported_quota(self) -> tuple[int, int] | None:
        return None  # Zenvia states no budget in its answers: the gate counts its window


HARNESSES: dict[str, Callable[[], Harness]] = {
    "salesforce": SalesforceHarness,
    "zenvia": ZenviaHarness,
}
