"""The people at both desks work as the real APIs let them: values that fit Zenvia's catalogue,
a client on every ticket, a closed record reopened before it is touched, and every value an
action changed reported."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from syncworker.sandbox.people import (
    OPEN_TYPES,
    SalesforcePerson,
    ZenviaPerson,
    fitting_urgencies,
    statuses_of,
)
from syncworker.sandbox.salesforce import OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE, Named, ZenviaCatalogue

PROBLEM = 2  # the default catalogue's category that urgency 4 ("Urgente") belongs to
URGENT = 4
CLOSED = 6


def person(seed: int = 0) -> tuple[ZenviaSandbox, ZenviaPerson]:
    sandbox = ZenviaSandbox(token="t", seed=seed)
    return sandbox, ZenviaPerson(sandbox, random.Random(seed), "agent-2")


def test_a_created_ticket_has_a_client_and_lookups_that_fit_each_other() -> None:
    for seed in range(30):
        sandbox, agent = person(seed)
        ticket = agent.create_ticket("Printer on fire", status=DEFAULT_CATALOGUE.status(3))

        assert ticket["clients"]
        assert sandbox.catalogue.has_client(ticket["clients"][0])
        category = Named(ticket["category"]["id"], ticket["category"]["name"])
        allowed = {u.id for u in fitting_urgencies(sandbox.catalogue, category)}
        assert ticket["urgency"]["id"] in allowed
        assert ticket["justification"]["id"] == 11  # the status needs one; the first is given


def test_an_urgency_is_chosen_only_among_those_of_the_tickets_category() -> None:
    chosen: dict[int, set[int]] = {1: set(), PROBLEM: set()}
    for seed in range(60):
        sandbox, agent = person(seed)
        for category in chosen:
            ticket_id = str(sandbox.agent.create_ticket("x", category=category)["id"])
            chosen[category].add(agent.set_urgency(ticket_id)["urgency"])

    assert URGENT not in chosen[1]
    assert URGENT in chosen[PROBLEM]


def test_a_category_change_reports_the_agents_edit_not_the_urgency_zenvia_cleared() -> None:
    """Zenvia clearing an Urgente the new category rules out is its side effect, which
    syncworker answers with the case's priority: the agent did not set the urgency."""
    cleared = 0
    for seed in range(20):
        sandbox, agent = person(seed)
        ticket_id = str(sandbox.agent.create_ticket("x", category=PROBLEM, urgency=URGENT)["id"])
        changed = agent.set_category(ticket_id)
        assert changed == {"category": changed["category"]}
        if changed["category"] != PROBLEM:
            assert sandbox.ticket(ticket_id)["urgency"] is None
            cleared += 1
    assert cleared, "the rng never left category 2"


def test_a_closed_ticket_is_reopened_before_it_is_edited_or_commented() -> None:
    sandbox, agent = person()
    ticket_id = str(sandbox.agent.create_ticket("x", status=CLOSED)["id"])

    changed = agent.set_subject(ticket_id, "Still broken")

    assert changed == {"status": 2, "subject": "Still broken"}
    assert sandbox.ticket(ticket_id)["status"]["type"] == "IN_ATTENDANCE"
    agent.desk.set_status(ticket_id, CLOSED)
    assert agent.comment(ticket_id, "Back again", public=True) == {"status": 2}
    assert sandbox.actions(ticket_id)[-1]["description"] == "Back again"


def test_an_open_ticket_is_edited_without_a_reopening() -> None:
    sandbox, agent = person()
    ticket_id = str(sandbox.agent.create_ticket("x")["id"])

    assert agent.set_owner(ticket_id).keys() == {"ownerId"}
    assert agent.comment(ticket_id, "Noted", public=False) == {}


def test_closing_a_closed_ticket_again_reopens_it_first() -> None:
    sandbox, agent = person()
    ticket_id = str(sandbox.agent.create_ticket("x", status=CLOSED)["id"])

    changed = agent.set_status(ticket_id, statuses_of(sandbox.catalogue, ("CLOSED",)))

    assert changed == {"status": CLOSED}
    assert [c["status"]["id"] for c in sandbox.snapshot()[ticket_id]["statusChanges"]] == [
        CLOSED,
        2,
        CLOSED,
    ]


def test_open_statuses_come_from_the_catalogue_and_a_missing_type_is_refused() -> None:
    assert [s.id for s in statuses_of(DEFAULT_CATALOGUE, OPEN_TYPES)] == [1, 2, 3]
    only_new = ZenviaCatalogue(
        statuses=DEFAULT_CATALOGUE.statuses[:1],
        justifications=(),
        urgencies=DEFAULT_CATALOGUE.urgencies,
        categories=DEFAULT_CATALOGUE.categories,
        services=DEFAULT_CATALOGUE.services,
        agents=DEFAULT_CATALOGUE.agents,
        clients=DEFAULT_CATALOGUE.clients,
    )
    with pytest.raises(ValueError, match="no status of type CLOSED"):
        statuses_of(only_new, ("CLOSED",))


def test_a_salesforce_person_reopens_a_closed_case_unless_setting_its_status() -> None:
    sandbox = SalesforceSandbox(client_id="c", client_secret="s")
    user = SalesforcePerson(sandbox, OWNER_IDS[1])
    case_id = sandbox.agent.create_case(Subject="x", Status="Closed", Origin="Web")

    assert user.comment(case_id, "Customer wrote back", public=True) == {"Status": "New"}
    sandbox.agent.edit(case_id, Status="Closed")
    assert user.edit(case_id, Status="Working") == {"Status": "Working"}
    assert user.edit(case_id, Subject="y") == {"Subject": "y"}
    assert sandbox.agent.case(case_id)["Status"] == "Working"


def test_a_salesforce_persons_cases_have_a_contact_zenvia_knows_one_it_does_not_or_none() -> None:
    sandbox = SalesforceSandbox(client_id="c", client_secret="s")
    user = SalesforcePerson(sandbox, OWNER_IDS[1])
    rng = random.Random(3)
    known = {contact.email.casefold() for contact in DEFAULT_CATALOGUE.contacts}

    emails = [
        sandbox.agent.case(user.create_case(rng, Subject=f"Case {n}", Origin="Web"))["ContactEmail"]
        for n in range(60)
    ]

    kinds = Counter(
        "none" if email is None else "known" if email.casefold() in known else "unknown"
        for email in emails
    )
    assert set(kinds) == {"none", "known", "unknown"}
    assert kinds["known"] > kinds["none"] > 0
