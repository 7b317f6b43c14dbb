"""A Case's `ContactEmail`: read-only, the e-mail of the Case's contact, and read by the
connector only when asked for (the mapping's `client_lookup`), over a real socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from syncworker.connectors.salesforce import DEFAULT_CASE_FIELDS, SalesforceConnector
from syncworker.sandbox.salesforce import DEFAULT_CONTACTS, SalesforceSandbox, to_id18

from .conftest import START

pytestmark = pytest.mark.contract

KNOWN, CAPITALISED = to_id18("003000000900007"), to_id18("003000000900010")
STRANGER = to_id18("003000000000001")  # a contact the org's directory gives no e-mail


def _case(raw: httpx.Client, case_id: str) -> dict[str, Any]:
    response = raw.get(f"/sobjects/Case/{case_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_case_shows_its_contacts_email_and_follows_a_new_contact(
    raw: httpx.Client,
) -> None:
    created = raw.post("/sobjects/Case", json={"Subject": "Mail me", "ContactId": KNOWN[:15]})
    case_id = created.json()["id"]
    assert _case(raw, case_id)["ContactEmail"] == "customer7@example.com"

    assert raw.patch(f"/sobjects/Case/{case_id}", json={"ContactId": CAPITALISED}).is_success
    assert _case(raw, case_id)["ContactEmail"] == DEFAULT_CONTACTS[CAPITALISED]
    assert DEFAULT_CONTACTS[CAPITALISED] == "Customer10@Example.com", "typed as people do"
    assert raw.patch(f"/sobjects/Case/{case_id}", json={"ContactId": STRANGER}).is_success
    assert _case(raw, case_id)["ContactEmail"] is None
    assert raw.patch(f"/sobjects/Case/{case_id}", json={"ContactId": None}).is_success
    assert _case(raw, case_id)["ContactEmail"] is None


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_rest_write_of_contact_email_is_refused_as_read_only(
    raw: httpx.Client, sandbox: SalesforceSandbox, method: str
) -> None:
    case_id = sandbox.agent.create_case(Subject="Read-only", ContactId=KNOWN)
    path = "/sobjects/Case" + (f"/{case_id}" if method == "PATCH" else "")

    refused = raw.request(method, path, json={"ContactEmail": "someone@example.com"})

    assert refused.status_code == 400
    [error] = refused.json()
    assert (error["errorCode"], error["fields"]) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        ["ContactEmail"],
    )
    assert _case(raw, case_id)["ContactEmail"] == "customer7@example.com"


def test_the_connector_reads_contact_email_only_when_given_it_as_a_field(
    make_connector: Callable[..., SalesforceConnector], sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="Lookup", ContactId=KNOWN)
    plain = make_connector()
    reading = make_connector(fields=(*DEFAULT_CASE_FIELDS, "ContactEmail"))

    assert "ContactEmail" not in plain.get(case_id).fields
    assert reading.get(case_id).fields["ContactEmail"] == "customer7@example.com"
    [listed] = reading.changed_since(START)
    assert listed.fields["ContactEmail"] == "customer7@example.com"
    [streamed] = reading.iter_all()
    assert streamed.fields["ContactEmail"] == "customer7@example.com"
