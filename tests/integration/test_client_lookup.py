"""A ticket created from a Case takes the Zenvia contact with the Case's e-mail as its client
(the shipped mapping's `client_lookup`): real Postgres, Redis, Celery worker and sandboxes.

Cost stated in docs/real-apis.md: a ticket create is 1 Zenvia request, plus 1 (`GET
/contacts`) when its Case has a contact e-mail; where Zenvia refuses the contact as a client
(the sandbox's harsh default), that create costs 1 refused request and 1 more create, and the
lookup pauses, so the next creates cost 1 each."""

from __future__ import annotations

from typing import Any

import pytest

from syncworker import client_lookup
from syncworker.sandbox.salesforce import to_id18
from tests.integration.test_sync_flows import ticket_for
from tests.stack import Stack

pytestmark = pytest.mark.integration

CUSTOMER_10 = to_id18("003000000900010")  # Customer10@Example.com: Zenvia's client-10
CUSTOMER_55 = to_id18("003000000900055")  # customer55@example.com: no Zenvia contact
CONTACTS, CREATES = "GET /v2/contacts", "POST /v2/tickets"


def new_case(stack: Stack, subject: str, **fields: Any) -> str:
    return stack.salesforce.agent.create_case(Subject=subject, Status="New", Origin="Web", **fields)


def sent(stack: Stack, label: str) -> int:
    return stack.zenvia_server.counters.by_endpoint[label]


def test_a_case_with_a_known_contact_gets_that_client_and_the_others_the_default(
    stack: Stack,
) -> None:
    stack.zenvia.contacts_are_clients = True  # an account whose ticket clients are its contacts
    stack.start_worker()
    new_case(stack, "Known contact", ContactId=CUSTOMER_10)
    new_case(stack, "Unknown contact", ContactId=CUSTOMER_55)
    new_case(stack, "No contact")

    stack.settle()

    assert ticket_for(stack, "Known contact")["clients"] == ["client-10"]
    assert ticket_for(stack, "Unknown contact")["clients"] == ["client-1"]
    assert ticket_for(stack, "No contact")["clients"] == ["client-1"]
    assert (sent(stack, CONTACTS), sent(stack, CREATES)) == (2, 3), "1 a create, 1 a lookup"
    assert stack.zenvia_server.counters.by_status[400] == 0


def test_an_account_that_refuses_contacts_as_clients_gets_the_default_and_one_refusal(
    stack: Stack,
) -> None:
    """The sandbox's default: a contact's id is not a ticket client id."""
    stack.start_worker()
    new_case(stack, "First known contact", ContactId=CUSTOMER_10)
    stack.settle()
    assert ticket_for(stack, "First known contact")["clients"] == ["client-1"]
    assert (sent(stack, CONTACTS), sent(stack, CREATES)) == (1, 2)
    assert stack.runtime.redis.exists(client_lookup.PAUSE_KEY)

    new_case(stack, "Second known contact", ContactId=CUSTOMER_10)
    new_case(stack, "Third known contact", ContactId=CUSTOMER_10)
    stack.settle()

    for subject in ("Second known contact", "Third known contact"):
        assert ticket_for(stack, subject)["clients"] == ["client-1"]
    assert (sent(stack, CONTACTS), sent(stack, CREATES)) == (1, 4), "paused: 1 a create"
    assert stack.zenvia_server.counters.by_status[400] == 1
    assert stack.zenvia.lockouts == 0
