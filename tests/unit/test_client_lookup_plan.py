"""The pure side of the client lookup: the mapping names the Case field, the engine plans a
ticket create with the default clients and the e-mail to look up, and the plan's Zenvia cost,
dry run and history say so (the lookup itself is I/O: tests/contract, tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from syncworker import engine, sync
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.history import of_sync
from syncworker.mapping import Mapping, from_data, load_default
from syncworker.model import RemoteRecord

DEFAULT = load_default("salesforce")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CASE = {"Subject": "Printer jams", "Status": "New", "Priority": "Low", "Origin": "Web"}


def without_lookup() -> Mapping:
    data = DEFAULT.model_dump(exclude_unset=True)
    del data["client_lookup"]
    return from_data(data)


def create_from(case: dict[str, Any], mapping: Mapping = DEFAULT) -> engine.Plan:
    record = RemoteRecord("500A", T0, case)
    return engine.plan(mapping, link=None, crm=record, zenvia=None)


def test_the_shipped_mapping_looks_a_tickets_client_up_by_the_cases_contact_email() -> None:
    assert DEFAULT.client_lookup is not None
    assert DEFAULT.client_lookup.crm == "ContactEmail"
    assert DEFAULT.lookup_fields("crm") == ("ContactEmail",)
    assert DEFAULT.lookup_fields("zenvia") == ()
    assert without_lookup().lookup_fields("crm") == ()


@pytest.mark.parametrize(
    ("value", "email"),
    [
        (" Customer7@Example.com ", "Customer7@Example.com"),
        ("", None),
        ("   ", None),
        (None, None),
        (["a@example.com"], None),
    ],
    ids=["trimmed", "empty", "blank", "null", "not-text"],
)
def test_the_email_looked_up_is_the_cases_field_trimmed_or_none(
    value: object, email: str | None
) -> None:
    assert DEFAULT.client_email("zenvia", {**CASE, "ContactEmail": value}) == email


def test_only_a_ticket_created_with_the_lookup_on_names_an_email() -> None:
    fields = {**CASE, "ContactEmail": "customer7@example.com"}
    assert DEFAULT.client_email("crm", {"subject": "x", "ContactEmail": "a@example.com"}) is None
    assert without_lookup().client_email("zenvia", fields) is None


def test_a_ticket_is_planned_with_the_default_client_and_the_email_to_look_up() -> None:
    plan = create_from({**CASE, "ContactEmail": "customer7@example.com"})

    create = plan.operations[0]
    assert isinstance(create, engine.CreateRecord)
    assert create.client_email == "customer7@example.com"
    assert create.fields["clients"] == ["client-1"]
    assert "clients" not in (plan.zenvia_baseline or {}), "never synced: no baseline"
    assert plan.describe()[0].endswith(
        "(clients: the Zenvia contact with e-mail customer7@example.com, if one exists)"
    )


@pytest.mark.parametrize(
    ("case", "mapping", "cost"),
    [
        ({**CASE, "ContactEmail": "customer7@example.com"}, DEFAULT, 2),
        ({**CASE, "ContactEmail": None}, DEFAULT, 1),
        (CASE, DEFAULT, 1),
        ({**CASE, "ContactEmail": "customer7@example.com"}, without_lookup(), 1),
    ],
    ids=["email-lookup-and-create", "no-email", "field-not-read", "lookup-off"],
)
def test_a_ticket_create_costs_one_zenvia_request_and_one_more_to_look_its_client_up(
    case: dict[str, Any], mapping: Mapping, cost: int
) -> None:
    zenvia = ZenviaConnector(httpx.Client(), base_url="http://zenvia.invalid", token="t")
    assert sync.zenvia_cost(create_from(case, mapping), zenvia) == cost


def test_the_history_of_a_create_says_its_client_was_looked_up() -> None:
    case = {**CASE, "ContactEmail": "customer7@example.com"}
    plan = create_from(case)

    create = of_sync(
        plan,
        records={"crm": RemoteRecord("500A", T0, case), "zenvia": None},
        record_ids={"crm": "500A", "zenvia": "77"},
        previous_state="active",
    )[0]

    assert create.detail == (
        "created from crm 500A; "
        "clients: the Zenvia contact with e-mail customer7@example.com, if one exists"
    )
