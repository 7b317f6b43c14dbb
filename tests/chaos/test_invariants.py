"""The chaos checker knows our comment copies by their text, as the product does (no marker),
and tells an echo of our own comment by where the comments came from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncworker.convergence import SideState
from syncworker.engine import copy_text
from syncworker.mapping import Mapping, load_default
from syncworker.model import RemoteComment, Side
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE
from syncworker.store.tables import Link
from tests.chaos.invariants import EditLog, World, Written, check, zenvia_rules

WHEN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CASE = {
    "Subject": "Printer on fire",
    "Status": "Working",
    "Priority": "High",
    "Type": "Problem",
    "OwnerId": "005000000000002AAA",
}
TICKET = {
    "subject": "Printer on fire",
    "status": 2,
    "urgency": 3,
    "category": 2,
    "ownerId": "agent-2",
}
HUMAN = RemoteComment("00a1", "500A", "Customer called", True, WHEN, "005000000000002AAA")


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_default("salesforce")


def copy(mapping: Mapping, original: RemoteComment, source: Side, copy_id: str) -> RemoteComment:
    """What the engine writes on the other side of `original`."""
    record = "7" if source == "crm" else "500A"
    return RemoteComment(
        copy_id, record, copy_text(mapping, source, original), original.public, WHEN
    )


def world(crm: list[RemoteComment], zenvia: list[RemoteComment], ours: set[str]) -> World:
    return World(
        states={
            "crm": SideState({"500A": CASE}, {"500A": crm}),
            "zenvia": SideState({"7": TICKET}, {"7": zenvia}),
        },
        links=[Link(id=1, crm_system="salesforce", crm_id="500A", zenvia_id="7")],
        dead_letters=[],
        ours={
            "crm": frozenset(i for i in ours if not i.startswith("7:")),
            "zenvia": frozenset(i for i in ours if i.startswith("7:")),
        },
    )


def test_a_human_comment_copied_once_without_a_marker_is_in_order(mapping: Mapping) -> None:
    findings = check(world([HUMAN], [copy(mapping, HUMAN, "crm", "7:2")], {"7:2"}), mapping)

    assert findings.ok, findings.describe()
    assert findings.comments_checked == 1


def test_a_human_comment_never_copied_is_lost(mapping: Mapping) -> None:
    findings = check(world([HUMAN], [], set()), mapping)

    assert findings.lost == 1
    assert "case 500A comment 00a1 ('Customer called') is not on ticket 7" in findings.describe()


def test_a_comment_copied_twice_is_a_duplicate(mapping: Mapping) -> None:
    copies = [copy(mapping, HUMAN, "crm", "7:2"), copy(mapping, HUMAN, "crm", "7:3")]

    findings = check(world([HUMAN], copies, {"7:2", "7:3"}), mapping)

    assert findings.duplicates == 1
    assert "is on ticket 7 2 times" in findings.describe()


def test_a_copy_of_our_own_copy_is_an_echo_counted_as_a_duplicate(mapping: Mapping) -> None:
    ours = copy(mapping, HUMAN, "crm", "7:2")
    echo = copy(mapping, ours, "zenvia", "00a2")

    findings = check(world([HUMAN, echo], [ours], {"7:2", "00a2"}), mapping)

    assert findings.duplicates == 1
    assert findings.echoes == ["our ticket 7 comment 7:2 was copied back to case 500A"]


def test_a_copy_with_the_wrong_visibility_is_reported(mapping: Mapping) -> None:
    internal = RemoteComment("7:2", "7", copy_text(mapping, "crm", HUMAN), False, WHEN)

    findings = check(world([HUMAN], [internal], {"7:2"}), mapping)

    assert findings.differences == [
        "comment visibility: case 500A comment 00a1 ('Customer called') is internal on ticket 7"
    ]


EDITED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def urgente_ruled_out(case_priority: str, written: list[Written], category: int = 1) -> World:
    """An agent made ticket 7 Urgente (problems only) at EDITED; the case then became a
    question, so Zenvia cleared it (`category`: where the ticket ended)."""
    return World(
        states={
            "crm": SideState({"500A": {**CASE, "Type": "Question", "Priority": case_priority}}, {}),
            "zenvia": SideState({"7": {**TICKET, "category": category, "urgency": 3}}, {}),
        },
        links=[Link(id=1, crm_system="salesforce", crm_id="500A", zenvia_id="7")],
        dead_letters=[],
        zenvia_holds=zenvia_rules(DEFAULT_CATALOGUE),
        written={1: written},
    )


def priority_written(at: datetime, value: str, *, created: bool = False) -> Written:
    return Written(at, "crm", "Priority", None, value, created=created)


@pytest.mark.parametrize(("case_priority", "lost"), [("High", 0), ("Low", 1)])
def test_an_urgency_carried_to_the_case_keeps_its_meaning_after_a_category_rules_it_out(
    mapping: Mapping, case_priority: str, lost: int
) -> None:
    """A sync carried Urgente to the case as High: that update must survive the category
    change that makes Zenvia clear it."""
    edits = EditLog()
    edits.record("zenvia", "7", "priority", 4, at=EDITED)
    carried = [priority_written(EDITED + timedelta(seconds=3), "High")]
    assert check(urgente_ruled_out(case_priority, carried), mapping, edits).lost == lost


@pytest.mark.parametrize(
    "written",
    [[], [priority_written(EDITED - timedelta(seconds=30), "High")]],
    ids=["never carried", "High written before the edit"],
)
def test_an_urgency_superseded_before_any_sync_carried_it_is_not_a_lost_update(
    mapping: Mapping, written: list[Written]
) -> None:
    """The agent set Urgente and made the ticket a question before a sync committed it:
    Zenvia cleared it, the pair's state never held it, and the case keeping Low is no loss."""
    edits = EditLog()
    edits.record("zenvia", "7", "priority", 4, at=EDITED)
    assert check(urgente_ruled_out("Low", written), mapping, edits).lost == 0


@pytest.mark.parametrize(("case_priority", "lost"), [("High", 0), ("Low", 1)])
def test_an_urgency_zenvia_cleared_is_ruled_out_even_if_a_later_category_allows_it_again(
    mapping: Mapping, case_priority: str, lost: int
) -> None:
    """The case was created High from the Urgente ticket; the case becoming a question made
    Zenvia clear Urgente (syncworker then filled the empty urgency with Alta), and an agent
    later made the ticket a problem again, which would allow Urgente but does not bring it
    back: the meaning lives on as the case's High."""
    edits = EditLog()
    edits.record("zenvia", "7", "priority", 4, at=EDITED)
    written = [
        priority_written(EDITED + timedelta(seconds=2), "High", created=True),
        Written(EDITED + timedelta(seconds=60), "zenvia", "urgency", None, 3),
    ]
    world = urgente_ruled_out(case_priority, written, category=2)
    assert check(world, mapping, edits).lost == lost
