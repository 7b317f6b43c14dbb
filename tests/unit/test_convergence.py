"""The convergence checker reports every way two sides can disagree, and nothing when they agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncworker import convergence
from syncworker.convergence import SideState
from syncworker.engine import copy_text
from syncworker.mapping import Mapping, load_default
from syncworker.model import NativeFields, RemoteComment, Side
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.zenvia import ZenviaSandbox

WHEN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OWNER_2 = "005000000000002AAA"


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_default("salesforce")


def case(**changes: Any) -> NativeFields:
    fields: NativeFields = {
        "Subject": "Printer on fire",
        "Status": "Working",
        "Priority": "High",
        "Type": "Problem",
        "OwnerId": OWNER_2,
    }
    return {**fields, **changes}


def ticket(**changes: Any) -> NativeFields:
    fields: NativeFields = {
        "subject": "Printer on fire",
        "status": 2,
        "urgency": 3,
        "category": 2,
        "ownerId": "agent-2",
    }
    return {**fields, **changes}


def comment(comment_id: str, record_id: str, body: str, *, public: bool = True) -> RemoteComment:
    return RemoteComment(comment_id, record_id, body, public, WHEN)


def copy_of(original: RemoteComment, side: Side, copy_id: str, record_id: str) -> RemoteComment:
    """The copy the engine writes on the other side: its text and attribution, no marker."""
    body = copy_text(load_default("salesforce"), side, original)
    return comment(copy_id, record_id, body, public=original.public)


def differences(report: convergence.ConvergenceReport) -> list[tuple[str, str]]:
    return [(d.kind, d.detail) for d in report.differences]


def test_a_pair_that_agrees_under_the_mapping_has_converged(mapping: Mapping) -> None:
    human = comment("00a1", "500A", "Customer called")
    report = convergence.check(
        mapping,
        # Escalated agrees with 2 and urgency 4 with High: lossy maps agree either way.
        crm=SideState({"500A": case(Status="Escalated")}, {"500A": [human]}),
        zenvia=SideState({"7": ticket(urgency=4)}, {"7": [copy_of(human, "crm", "7:2", "7")]}),
        links=[("500A", "7")],
    )

    assert report.converged, differences(report)
    assert (report.pairs, report.fields_checked, report.comments_checked) == (1, 5, 1)
    assert report.summary().startswith("converged: 1 linked pairs")


def test_a_field_that_differs_is_reported_with_both_values(mapping: Mapping) -> None:
    report = convergence.check(
        mapping,
        crm=SideState({"500A": case(Priority="Low", Subject="New subject")}, {}),
        zenvia=SideState({"7": ticket()}, {}),
        links=[("500A", "7")],
    )

    assert not report.converged
    assert differences(report) == [
        (
            "field",
            "subject: case 500A has Subject='New subject', ticket 7 has subject='Printer on fire'",
        ),
        ("field", "priority: case 500A has Priority='Low', ticket 7 has urgency=3"),
    ]


def test_records_must_be_linked_once_to_a_live_counterpart(mapping: Mapping) -> None:
    report = convergence.check(
        mapping,
        crm=SideState({"500A": case(), "500B": case(), "500C": case()}, {}),
        zenvia=SideState({"7": ticket(), "8": ticket(), "9": ticket()}, {}),
        links=[("500A", "7"), ("500B", "7"), ("500C", None), (None, "8"), ("500X", "9")],
    )

    assert sorted(d.kind for d in report.differences) == [
        "dangling link",
        "half link",
        "half link",
        "linked twice",
    ]
    assert "ticket 7 is in 2 links" in str(report.differences)
    assert report.pairs == 2  # 500A-7 and 500B-7 are still compared field by field


def test_an_unlinked_record_on_either_side_is_a_difference(mapping: Mapping) -> None:
    report = convergence.check(
        mapping,
        crm=SideState({"500A": case(), "500B": case()}, {}),
        zenvia=SideState({"7": ticket(), "8": ticket()}, {}),
        links=[("500A", "7")],
    )

    assert differences(report) == [
        ("unlinked", "case 500B has no linked counterpart"),
        ("unlinked", "ticket 8 has no linked counterpart"),
    ]


def test_each_human_comment_must_be_on_the_other_side_exactly_once(mapping: Mapping) -> None:
    missing = comment("00a1", "500A", "Never copied")
    doubled = comment("7:2", "7", "Copied twice")
    hidden = comment("7:3", "7", "Public here, internal there", public=True)
    wrong_visibility = copy_of(hidden, "zenvia", "00a9", "500A")
    notice = comment(
        "00a8", "500A", "Zenvia ticket 7 was canceled, so syncworker closed this case."
    )
    report = convergence.check(
        mapping,
        crm=SideState(
            {"500A": case()},
            {
                "500A": [
                    missing,
                    copy_of(doubled, "zenvia", "00a2", "500A"),
                    copy_of(doubled, "zenvia", "00a3", "500A"),
                    RemoteComment("00a9", "500A", wrong_visibility.body, False, WHEN),
                    notice,  # the sync's own notice: never copied back, never missing
                ]
            },
        ),
        zenvia=SideState({"7": ticket()}, {"7": [doubled, hidden]}),
        links=[("500A", "7")],
    )

    assert sorted(d.kind for d in report.differences) == [
        "comment duplicated",
        "comment missing",
        "comment visibility",
    ]
    assert report.comments_checked == 3
    assert "case 500A comment 00a1 ('Never copied') is not on ticket 7" in str(report.differences)


def test_the_sandboxes_are_read_as_the_connectors_read_them(mapping: Mapping) -> None:
    salesforce = SalesforceSandbox(client_id="id", client_secret="secret", seed=1)
    zenvia = ZenviaSandbox(token="token", seed=1)
    case_id = salesforce.agent.create_case(
        Subject="Refund", Status="New", Priority="Medium", Origin="Web", OwnerId=OWNER_2
    )
    ticket_id = str(zenvia.agent.create_ticket("Refund", urgency=2, owner_id="agent-2")["id"])
    salesforce.agent.add_comment(case_id, "Internal note", public=False)
    [note] = convergence.crm_state(salesforce).comments_of(case_id)
    zenvia.agent.add_action(ticket_id, copy_text(mapping, "crm", note), public=False)

    def report() -> convergence.ConvergenceReport:
        return convergence.check(
            mapping,
            crm=convergence.crm_state(salesforce),
            zenvia=convergence.zenvia_state(zenvia),
            links=[(case_id, ticket_id)],
        )

    assert report().converged, differences(report())

    zenvia.agent.edit(ticket_id, "urgency", {"urgency": {"id": 1}})
    salesforce.agent.add_comment(case_id, "Customer called back")

    assert sorted(d.kind for d in report().differences) == ["comment missing", "field"]
    assert f"ticket {ticket_id} has urgency=1" in str(report().differences)
