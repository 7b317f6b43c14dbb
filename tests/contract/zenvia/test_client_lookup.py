"""`client_lookup.creator` against the Zenvia sandbox over a real socket and a real Redis: the
contact found becomes the ticket's client, anything else leaves the default client, and the
lookup pauses after Zenvia refuses it or the contact (docs/real-apis.md, clients on create)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from syncworker import client_lookup, engine
from syncworker.connectors.errors import PermanentError, RateLimitedError, TransientError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.locks import LockBusy
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

CONTACTS, CREATE = "GET /contacts", "POST /tickets"
DEFAULTS = {"type": "PUBLIC", "clients": ["client-1"], "subject": "From a case"}


@pytest.fixture
def rt(connector: ZenviaConnector, redis_url: str) -> Iterator[Any]:
    """What `creator` needs of a runtime: the Zenvia connector and Redis."""
    client = redis.Redis.from_url(redis_url)
    yield SimpleNamespace(connectors={"zenvia": connector}, redis=client)
    client.close()


def operation(email: str | None, side: str = "zenvia") -> engine.CreateRecord:
    return engine.CreateRecord(
        side=side,  # type: ignore[arg-type]
        fields=dict(DEFAULTS),
        description="",
        idempotency_key="create:crm:500A",
        source_id="500A",
        client_email=email,
    )


def send(rt: Any, email: str | None) -> dict[str, Any]:
    """What `_create` does: the creator first, then the send; the ticket as Zenvia holds it."""
    create = client_lookup.creator(rt, operation(email))
    record = create(dict(DEFAULTS), idempotency_key="create:crm:500A", description="")
    return {"clients": record.fields["clients"]}


def sent(connector: ZenviaConnector) -> dict[str, int]:
    return dict(connector.requests.by_endpoint)


def test_the_contact_with_the_cases_email_becomes_the_tickets_client(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.contacts_are_clients = True

    assert send(rt, "Customer7@Example.com") == {"clients": ["client-7"]}
    assert sent(connector) == {CONTACTS: 1, CREATE: 1}


@pytest.mark.parametrize("email", ["nobody@example.com", None])
def test_no_contact_or_no_email_leaves_the_default_client(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox, email: str | None
) -> None:
    sandbox.contacts_are_clients = True

    assert send(rt, email) == {"clients": ["client-1"]}
    looked_up = {CONTACTS: 1} if email else {}
    assert sent(connector) == {**looked_up, CREATE: 1}
    assert not rt.redis.exists(client_lookup.PAUSE_KEY)


def test_a_contact_zenvia_refuses_as_a_client_gives_the_default_and_pauses_the_lookup(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    """The sandbox's harsh default: a contact's id is no ticket client id."""
    assert send(rt, "customer7@example.com") == {"clients": ["client-1"]}
    assert sent(connector) == {CONTACTS: 1, CREATE: 2}
    assert b"as a ticket client" in rt.redis.get(client_lookup.PAUSE_KEY)
    assert 0 < rt.redis.ttl(client_lookup.PAUSE_KEY) <= client_lookup.PAUSE_SECONDS

    assert send(rt, "customer8@example.com") == {"clients": ["client-1"]}
    assert sent(connector) == {CONTACTS: 1, CREATE: 3}, "paused: no lookup, no refusal"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"contacts": "not a page"}),
        (404, {"code": "NOT_FOUND", "message": "Not found", "details": []}),
        (403, {"code": "FORBIDDEN", "message": "No access to contacts", "details": []}),
    ],
    ids=["malformed", "not-found", "forbidden"],
)
def test_a_lookup_zenvia_refuses_or_garbles_never_blocks_the_create(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox, status: int, body: object
) -> None:
    sandbox.contacts_are_clients = True
    sandbox.answer_next("GET /v2/contacts", status, body)

    assert send(rt, "customer7@example.com") == {"clients": ["client-1"]}
    assert sent(connector) == {CONTACTS: 1, CREATE: 1}
    assert rt.redis.exists(client_lookup.PAUSE_KEY), "each refused lookup nears a lockout"


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RateLimitedError), (503, TransientError)],
    ids=["rate-limited", "unavailable"],
)
def test_a_lookup_told_to_wait_or_failing_for_now_is_retried_by_the_sync(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox, status: int, error: type
) -> None:
    sandbox.fail_next("GET /v2/contacts", status, "TRY_LATER", "later")

    with pytest.raises(error):
        client_lookup.creator(rt, operation("customer7@example.com"))
    assert sent(connector) == {CONTACTS: 1}
    assert not rt.redis.exists(client_lookup.PAUSE_KEY)


def test_a_create_refused_with_the_default_client_too_was_not_about_the_contact(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.contacts_are_clients = True
    sandbox.fail_next("POST /v2/tickets", 400, "VALIDATION_ERROR", "subject refused", times=2)

    with pytest.raises(PermanentError, match="subject refused"):
        send(rt, "customer7@example.com")
    assert sent(connector) == {CONTACTS: 1, CREATE: 2}
    assert not rt.redis.exists(client_lookup.PAUSE_KEY)


def test_a_case_created_from_a_ticket_looks_nothing_up(rt: Any, connector: ZenviaConnector) -> None:
    crm = SimpleNamespace(create="the crm connector's create")
    rt.connectors["crm"] = crm

    assert client_lookup.creator(rt, operation(None, side="crm")) == crm.create
    assert sent(connector) == {}


def test_one_worker_at_a_time_finds_out_whether_zenvia_takes_contacts_as_clients(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    """Workers creating at once must not each send a create naming a contact that Zenvia
    refuses (three refused requests lock the account out): while one worker finds out, the
    others wait (their sync is retried) instead of giving a ticket the wrong client; once one
    succeeded, all look up."""
    sandbox.contacts_are_clients = True
    probing = client_lookup.creator(rt, operation("customer7@example.com"))
    with pytest.raises(LockBusy, match="another worker is finding out"):
        client_lookup.creator(rt, operation("customer8@example.com"))
    assert sent(connector) == {CONTACTS: 1}, "the second worker sent nothing"

    record = probing(dict(DEFAULTS), idempotency_key="create:crm:500A", description="")
    assert record.fields["clients"] == ["client-7"]
    assert not rt.redis.exists(client_lookup.PROBE_KEY)
    assert send(rt, "customer8@example.com") == {"clients": ["client-8"]}, "confirmed: all look up"


def test_a_refused_contact_ends_the_probe_with_the_pause(
    rt: Any, connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    assert send(rt, "customer7@example.com") == {"clients": ["client-1"]}
    assert rt.redis.exists(client_lookup.PAUSE_KEY)
    assert not rt.redis.exists(client_lookup.PROBE_KEY)
    assert not rt.redis.exists(client_lookup.CONFIRMED_KEY)
