"""The Contacts API's listing by e-mail (`GET /v2/contacts`), in the sandbox and through
`ZenviaConnector.find_client`, over a real socket (docs/real-apis.md, clients on create)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from syncworker.connectors.errors import (
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
)
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.server import Response, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE, Contact
from tests.contract.zenvia.conftest import TOKEN

pytestmark = pytest.mark.contract

CONTACTS = "GET /v2/contacts"


def emails(page: list[dict[str, Any]]) -> list[str]:
    return [channel["id"] for contact in page for channel in contact["channelList"]]


# -- the sandbox's route -------------------------------------------------------------------


def test_the_email_filter_matches_the_whole_address_ignoring_letter_case(
    raw: httpx.Client,
) -> None:
    found = raw.get("/contacts", params={"channels.email": "CUSTOMER7@Example.com"})

    assert found.status_code == 200
    assert emails(found.json()) == ["customer7@example.com"]
    assert found.headers["x-total"] == "1"
    for near in ("customer7", "customer7@example.co", "ustomer7@example.com"):
        assert raw.get("/contacts", params={"channels.email": near}).json() == []


def test_contacts_are_paged_from_page_zero_with_the_total_in_a_header(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    pages = [raw.get("/contacts", params={"page": page}) for page in range(4)]

    assert [len(page.json()) for page in pages] == [20, 20, 10, 0]
    assert {page.headers["x-total"] for page in pages} == {"50"}
    listed = [address for page in pages for address in emails(page.json())]
    assert sorted(listed) == sorted(c.email for c in DEFAULT_CATALOGUE.contacts)
    assert len(raw.get("/contacts", params={"size": 100}).json()) == 50
    sandbox.lockout = False  # four refusals in a row: the lockout is not what this is about
    for bad in ({"page": -1}, {"size": 0}, {"size": 101}, {"page": "one"}):
        refused = raw.get("/contacts", params=bad)
        assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR")


def test_a_contact_id_is_not_a_ticket_client_unless_the_switch_says_so(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    def contact_7() -> str:
        page = raw.get("/contacts", params={"channels.email": "customer7@example.com"}).json()
        return str(page[0]["id"])

    harsh = contact_7()
    refused = raw.post("/tickets", json={"subject": "Mine", "clients": [harsh]})
    assert harsh != "client-7"
    assert refused.status_code == 400
    assert refused.json()["details"][0]["code"] == "NOT_FOUND"

    sandbox.contacts_are_clients = True
    assert contact_7() == "client-7"
    accepted = raw.post("/tickets", json={"subject": "Mine", "clients": ["client-7"]})
    assert accepted.status_code == 201


def test_the_contacts_route_is_authenticated_counted_and_takes_armed_faults(
    server: SandboxServer, raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    with httpx.Client(base_url=f"{server.base_url}/v2") as anonymous:
        assert anonymous.get("/contacts").status_code == 401
    sandbox.fail_next(CONTACTS, 500, "INTERNAL_ERROR", "boom")
    assert raw.get("/contacts").status_code == 500
    assert raw.get("/contacts").status_code == 200

    assert server.counters.by_endpoint[CONTACTS] == 3


# -- the connector --------------------------------------------------------------------------


def test_find_client_names_the_contact_with_that_email_in_one_request(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.contacts_are_clients = True

    assert connector.find_client("Customer7@Example.com") == "client-7"
    assert connector.find_client("nobody@example.com") is None
    assert dict(connector.requests.by_endpoint) == {"GET /contacts": 2}


def test_several_contacts_with_one_email_give_the_first_by_id(
    make_connector: Callable[..., ZenviaConnector],
) -> None:
    shared = "shared@example.com"
    catalogue = replace(
        DEFAULT_CATALOGUE,
        contacts=(
            Contact("client-9", shared, "Nove"),
            Contact("client-3", shared.upper(), "Três"),
            Contact("client-5", "other@example.com", "Cinco"),
        ),
    )
    own = ZenviaSandbox(token=TOKEN, catalogue=catalogue, contacts_are_clients=True)
    with SandboxServer(own) as server:
        assert make_connector(on=server).find_client(shared) == "client-3"


def test_a_listed_contact_with_another_email_is_passed_over(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    """The filter's matching is undocumented: a looser one must not pick a stranger."""
    sandbox.contacts_are_clients = True
    stranger = {"id": "client-0", "channelList": [{"type": "email", "id": "x@example.com"}]}

    def add_stranger(response: Response) -> Response:
        return Response(200, [stranger, *response.body], response.headers)

    sandbox.rewrite_next_response(CONTACTS, add_stranger)
    assert connector.find_client("customer7@example.com") == "client-7"


@pytest.mark.parametrize(
    "body",
    [
        {"contacts": []},
        [{"channelList": []}],
        [{"id": "c-1", "channelList": "customer7@example.com"}],
        [{"id": "c-1", "channels": ["customer7@example.com"]}],
        ["c-1"],
    ],
    ids=["not-a-list", "no-id", "channel-list-not-a-list", "channels-not-an-object", "not-objects"],
)
def test_a_malformed_contacts_page_is_a_malformed_response(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, body: object
) -> None:
    sandbox.answer_next(CONTACTS, 200, body, headers={"x-total": "1"})

    with pytest.raises(MalformedResponseError):
        connector.find_client("customer7@example.com")


def test_refusals_keep_their_class(connector: ZenviaConnector, sandbox: ZenviaSandbox) -> None:
    sandbox.fail_next(CONTACTS, 404, "NOT_FOUND", "no contacts here")
    with pytest.raises(NotFoundError):
        connector.find_client("customer7@example.com")
    sandbox.fail_next(CONTACTS, 429, "TOO_MANY_REQUESTS", "slow down")
    with pytest.raises(RateLimitedError):
        connector.find_client("customer7@example.com")
