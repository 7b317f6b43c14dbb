"""The merge engine, one documented case at a time, against the shipped default mapping.

Every case starts from a pair that was in sync (baselines = the values below) and edits one
or both sides; the tables read as the policy's specification.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncworker import bookkeeping
from syncworker.engine import (
    AddComment,
    CommentPair,
    Conflict,
    CreateRecord,
    LinkSnapshot,
    Plan,
    UpdateFields,
    copy_text,
    plan,
)
from syncworker.mapping import Mapping, from_data, load_default
from syncworker.markers import idempotency_key
from syncworker.model import LinkState, RemoteComment, RemoteRecord, Side
from tests.unit.engine_sim import World

DEFAULT = load_default("salesforce")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

CASE = {
    "Subject": "Printer jams",
    "Status": "Working",
    "Priority": "Medium",
    "Type": "Problem",
    "OwnerId": "005000000000001AAA",
    "Origin": "Web",
    "Description": "It jams on every page.",
}
TICKET = {
    "subject": "Printer jams",
    "status": 2,
    "statusType": "IN_ATTENDANCE",
    "urgency": 2,
    "category": 2,
    "ownerId": "agent-1",
    "type": "PUBLIC",
    "clients": ["client-1"],
}
CASE_BASELINE = DEFAULT.project("crm", CASE)
TICKET_BASELINE = DEFAULT.project("zenvia", TICKET)
IN_SYNC = LinkSnapshot("500A", "77", CASE_BASELINE, TICKET_BASELINE)


def case(seconds: int = 0, **changes: Any) -> RemoteRecord:
    return RemoteRecord("500A", T0 + timedelta(seconds=seconds), {**CASE, **changes})


def ticket(seconds: int = 0, **changes: Any) -> RemoteRecord:
    return RemoteRecord("77", T0 + timedelta(seconds=seconds), {**TICKET, **changes})


def with_policy(field: str, policy: str, direction: str = "both") -> Mapping:
    """The default mapping with one field's policy or direction changed."""
    data = DEFAULT.model_dump(exclude_unset=True)
    data["fields"][field].update(direction=direction, conflict=policy)
    if direction != "both":
        data["fields"][field].pop("conflict")
    return from_data(data)


def merge(
    crm: RemoteRecord,
    zenvia: RemoteRecord,
    mapping: Mapping = DEFAULT,
    resolutions: dict[str, Side] | None = None,
) -> Plan:
    return plan(mapping, link=IN_SYNC, crm=crm, zenvia=zenvia, resolutions=resolutions or {})


def writes(result: Plan) -> dict[str, dict[str, Any]]:
    return {op.side: op.changes for op in result.operations if isinstance(op, UpdateFields)}


# -- field merge --------------------------------------------------------------------------------

MERGES = [
    pytest.param(case(), ticket(), {}, id="nothing-changed-writes-nothing"),
    pytest.param(
        case(Subject="Toner empty"),
        ticket(),
        {"zenvia": {"subject": "Toner empty"}},
        id="crm-only-change-is-pushed",
    ),
    pytest.param(
        case(),
        ticket(urgency=4),
        {"crm": {"Priority": "High"}},
        id="zenvia-only-change-is-pushed-translated",
    ),
    pytest.param(case(Status="Escalated"), ticket(), {}, id="escalated-does-not-flip-back"),
    pytest.param(
        case(),
        ticket(status=5),
        {"crm": {"Status": "Closed"}},
        id="resolved-ticket-closes-the-case",
    ),
    pytest.param(
        case(Status="On Hold"),
        ticket(),
        {"zenvia": {"status": 3, "justification": 11}},
        id="status-write-carries-its-justification",
    ),
    pytest.param(
        case(Priority="High"),
        ticket(urgency=4),
        {},
        id="both-changed-to-agreeing-values",
    ),
    pytest.param(
        case(OwnerId="00G000000000001AAA"),
        ticket(),
        {},
        id="a-case-moved-to-a-queue-leaves-the-ticket-owner-alone",
    ),
    pytest.param(
        case(),
        ticket(ownerId=None),
        {},
        id="unassigned-ticket-agrees-with-the-default-owner",
    ),
    pytest.param(
        case(Priority="Low"),
        ticket(urgency=3),
        {"zenvia": {"urgency": 1}},
        id="crm-wins-on-both-changed",
    ),
    pytest.param(
        case(OwnerId="005000000000002AAA"),
        ticket(ownerId="agent-3"),
        {"crm": {"OwnerId": "005000000000003AAA"}},
        id="zenvia-wins-on-both-changed",
    ),
    pytest.param(
        case(seconds=5, Subject="From CRM"),
        ticket(seconds=9, subject="From Zenvia"),
        {"crm": {"Subject": "From Zenvia"}},
        id="newest-wins-takes-the-newer-record",
    ),
    pytest.param(
        case(seconds=9, Subject="From CRM"),
        ticket(seconds=9, subject="From Zenvia"),
        {"zenvia": {"subject": "From CRM"}},
        id="newest-wins-tie-goes-to-crm",
    ),
    pytest.param(
        case(Subject="A", Priority="High"),
        ticket(category=1, ownerId="agent-2"),
        {
            "zenvia": {"subject": "A", "urgency": 3},
            "crm": {"Type": "Question", "OwnerId": "005000000000002AAA"},
        },
        id="independent-fields-flow-both-ways-in-one-run",
    ),
]


@pytest.mark.parametrize(("crm", "zenvia", "expected"), MERGES)
def test_each_field_is_merged_against_its_own_baseline(
    crm: RemoteRecord, zenvia: RemoteRecord, expected: dict[str, dict[str, Any]]
) -> None:
    result = merge(crm, zenvia)
    assert writes(result) == expected
    assert result.link_state is LinkState.ACTIVE


def test_newest_wins_judges_when_the_fields_changed_not_when_a_comment_was_added() -> None:
    """Our own comment copy moved the case's version past the ticket's edit; the case's
    subject itself is older, so the ticket's subject wins."""
    edited_case = dataclasses.replace(
        case(seconds=30, Subject="From CRM"), changed_at=T0 + timedelta(seconds=5)
    )
    edited_ticket = ticket(seconds=9, subject="From Zenvia")
    assert writes(merge(edited_case, edited_ticket)) == {"crm": {"Subject": "From Zenvia"}}


def test_new_baselines_hold_what_each_side_has_after_the_writes() -> None:
    result = merge(case(Status="On Hold", Priority="Low"), ticket(urgency=3))
    assert result.crm_baseline == {**CASE_BASELINE, "Status": "On Hold", "Priority": "Low"}
    assert result.zenvia_baseline == {**TICKET_BASELINE, "status": 3, "urgency": 1}


def test_a_conflict_reports_both_values_the_policy_and_the_winner() -> None:
    result = merge(case(Priority="Low"), ticket(urgency=3))
    assert result.conflicts == (Conflict("priority", "Low", 3, "crm_wins", "crm"),)


def test_an_escalated_case_stays_escalated_across_runs() -> None:
    world = World(DEFAULT)
    world.open_record("crm", CASE)
    world.sync()
    world.edit("crm", "Status", "Escalated")
    assert world.sync().is_empty
    assert world.value("crm", "Status") == "Escalated"
    world.edit("zenvia", "urgency", 4)
    world.sync()
    assert world.value("crm", "Status") == "Escalated"
    assert world.sync().is_empty


# -- manual conflicts ------------------------------------------------------------------------

MANUAL = with_policy("subject", "manual")


def test_manual_parks_the_field_and_keeps_both_baselines() -> None:
    result = merge(case(Subject="From CRM", Priority="Low"), ticket(subject="From Zenvia"), MANUAL)
    assert writes(result) == {"zenvia": {"urgency": 1}}
    assert result.link_state is LinkState.CONFLICT
    assert result.conflicts == (Conflict("subject", "From CRM", "From Zenvia", "manual", None),)
    assert result.crm_baseline is not None
    assert result.zenvia_baseline is not None
    assert result.crm_baseline["Subject"] == "Printer jams"
    assert result.zenvia_baseline["subject"] == "Printer jams"


def test_an_operator_resolution_names_the_winner() -> None:
    result = merge(
        case(Subject="From CRM"), ticket(subject="From Zenvia"), MANUAL, {"subject": "zenvia"}
    )
    assert writes(result) == {"crm": {"Subject": "From Zenvia"}}
    assert result.link_state is LinkState.ACTIVE
    assert result.resolved_fields == ("subject",)


def test_a_parked_conflict_clears_once_the_sides_agree() -> None:
    world = World(MANUAL)
    world.open_record("crm", CASE)
    world.sync()
    world.edit("crm", "Subject", "From CRM")
    world.edit("zenvia", "subject", "From Zenvia")
    assert world.sync().link_state is LinkState.CONFLICT
    assert world.sync().link_state is LinkState.CONFLICT
    world.edit("zenvia", "subject", "From CRM")
    result = world.sync()
    assert (result.link_state, result.is_empty) == (LinkState.ACTIVE, True)


# -- one-way fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "crm", "zenvia", "expected"),
    [
        pytest.param(
            "crm_to_zenvia",
            case(),
            ticket(subject="Agent edit"),
            {"zenvia": {"subject": "Printer jams"}},
            id="owner-value-overwrites-a-target-edit",
        ),
        pytest.param(
            "crm_to_zenvia",
            case(Subject="CRM edit"),
            ticket(subject="Agent edit"),
            {"zenvia": {"subject": "CRM edit"}},
            id="owner-wins-when-both-changed",
        ),
        pytest.param(
            "zenvia_to_crm",
            case(Subject="CRM edit"),
            ticket(),
            {"crm": {"Subject": "Printer jams"}},
            id="zenvia-owned-field-reverts-a-crm-edit",
        ),
    ],
)
def test_a_one_way_field_mirrors_its_owner(
    direction: str, crm: RemoteRecord, zenvia: RemoteRecord, expected: dict[str, Any]
) -> None:
    result = merge(crm, zenvia, with_policy("subject", "crm_wins", direction))
    assert writes(result) == expected
    assert result.conflicts == ()


# -- creates ----------------------------------------------------------------------------------


def test_a_case_in_scope_creates_a_zenvia_ticket_with_its_description_and_comments() -> None:
    comment = RemoteComment("c1", "500A", "Tried a reboot", False, T0, "005000000000001AAA")
    result = plan(DEFAULT, link=None, crm=case(), zenvia=None, crm_comments=[comment])
    key = idempotency_key("create", "crm", "500A")
    comment_key = idempotency_key("comment", "crm", "c1")
    assert result.operations == (
        CreateRecord(
            side="zenvia",
            fields={
                "type": "PUBLIC",
                "clients": ["client-1"],
                "subject": "Printer jams",
                "status": 2,
                "urgency": 2,
                "category": 2,
                "ownerId": "agent-1",
            },
            description="It jams on every page.",
            idempotency_key=key,
            source_id="500A",
        ),
        AddComment(
            side="zenvia",
            record_id=None,
            body="Tried a reboot\n\n— copied from Salesforce, written by 005000000000001AAA",
            public=False,
            source_comment_id="c1",
            idempotency_key=comment_key,
        ),
    )
    assert result.zenvia_baseline == {
        "subject": "Printer jams",
        "status": 2,
        "urgency": 2,
        "category": 2,
        "ownerId": "agent-1",
    }
    assert result.crm_baseline == CASE_BASELINE


def test_a_ticket_creates_a_case_with_the_crm_create_defaults() -> None:
    result = plan(DEFAULT, link=None, crm=None, zenvia=ticket(status=3, ownerId=None))
    create = result.operations[0]
    assert isinstance(create, CreateRecord)
    assert create.fields == {
        "Origin": "Web",
        "Subject": "Printer jams",
        "Status": "On Hold",
        "Priority": "Medium",
        "Type": "Problem",
        "OwnerId": "005000000000001AAA",
    }
    assert (create.side, create.description) == ("crm", "")


@pytest.mark.parametrize(
    ("crm", "zenvia", "reason"),
    [
        pytest.param(
            case(Origin="Partner"),
            None,
            "Salesforce case 500A is out of scope",
            id="partner-case-is-out-of-scope",
        ),
        pytest.param(
            None,
            ticket(type="SPAM"),
            "Zenvia ticket 77 is out of scope",
            id="unknown-ticket-type-is-out-of-scope",
        ),
    ],
)
def test_an_out_of_scope_record_is_never_created(
    crm: RemoteRecord | None, zenvia: RemoteRecord | None, reason: str
) -> None:
    result = plan(DEFAULT, link=None, crm=crm, zenvia=zenvia)
    assert (result.is_empty, result.reason) == (True, reason)


def test_a_created_record_does_not_come_back_as_a_change() -> None:
    world = World(DEFAULT)
    world.open_record("zenvia", TICKET)
    world.comment("zenvia", "First action")
    first = world.sync()
    assert [type(op).__name__ for op in first.operations] == ["CreateRecord", "AddComment"]
    assert world.sync().is_empty


def test_both_records_without_a_link_are_merged_like_a_first_sync() -> None:
    result = plan(DEFAULT, link=None, crm=case(Priority="Low"), zenvia=ticket(urgency=4))
    assert writes(result) == {"zenvia": {"urgency": 1}}
    assert result.conflicts == (Conflict("priority", "Low", 4, "crm_wins", "crm"),)


# -- comments ---------------------------------------------------------------------------------

PUBLIC_NOTE = RemoteComment("c1", "500A", "Replaced the drum", True, T0, "005000000000002AAA")
AGENT_NOTE = RemoteComment("9", "77", "Client called", False, T0, "agent-2")


def comments_plan(
    crm_comments: list[RemoteComment],
    zenvia_comments: list[RemoteComment],
    pairs: tuple[CommentPair, ...] = (),
    mapping: Mapping = DEFAULT,
) -> Plan:
    return plan(
        mapping,
        link=IN_SYNC,
        crm=case(),
        zenvia=ticket(),
        crm_comments=crm_comments,
        zenvia_comments=zenvia_comments,
        comment_links=pairs,
    )


def test_comments_are_copied_both_ways_keeping_their_visibility() -> None:
    result = comments_plan([PUBLIC_NOTE], [AGENT_NOTE])
    copies = [op for op in result.operations if isinstance(op, AddComment)]
    assert [(c.side, c.record_id, c.public, c.source_comment_id) for c in copies] == [
        ("zenvia", "77", True, "c1"),
        ("crm", "500A", False, "9"),
    ]
    assert copies[1].body == "Client called\n\n— copied from Zenvia, written by agent-2"
    assert "[sw:" not in copies[0].body, "customers read public copies: no marker in them"


COPIED_BY_US = RemoteComment("10", "77", copy_text(DEFAULT, "crm", PUBLIC_NOTE), True, T0)
OUR_CRM_COPY = RemoteComment("c9", "500A", copy_text(DEFAULT, "zenvia", AGENT_NOTE), False, T0)


@pytest.mark.parametrize(
    ("crm_comments", "zenvia_comments", "pairs", "expected_pairs"),
    [
        pytest.param(
            [PUBLIC_NOTE],
            [COPIED_BY_US],
            (CommentPair("c1", "10", "crm"),),
            (),
            id="linked-comment-is-not-copied-again",
        ),
        pytest.param(
            [PUBLIC_NOTE],
            [COPIED_BY_US],
            (),
            (CommentPair("c1", "10", "crm"),),
            id="interrupted-copy-is-paired-not-rewritten",
        ),
        pytest.param(
            [OUR_CRM_COPY],
            [AGENT_NOTE],
            (),
            (CommentPair("c9", "9", "zenvia"),),
            id="our-own-copy-is-never-copied-back",
        ),
        pytest.param(
            [dataclasses.replace(OUR_CRM_COPY, body=OUR_CRM_COPY.body[:30] + "…")],
            [AGENT_NOTE],
            (),
            (CommentPair("c9", "9", "zenvia"),),
            id="a-copy-the-remote-cut-short-is-still-ours",
        ),
    ],
)
def test_a_comment_is_never_duplicated(
    crm_comments: list[RemoteComment],
    zenvia_comments: list[RemoteComment],
    pairs: tuple[CommentPair, ...],
    expected_pairs: tuple[CommentPair, ...],
) -> None:
    result = comments_plan(crm_comments, zenvia_comments, pairs)
    assert result.operations == ()
    assert result.comment_pairs == expected_pairs


def test_a_reply_quoting_our_copy_is_a_new_comment_and_is_copied() -> None:
    quote = "\n".join(f"> {line}" for line in COPIED_BY_US.body.splitlines())
    reply = RemoteComment("11", "77", f"{quote}\n\nDone, thanks!", True, T0, "agent-2")
    result = comments_plan([PUBLIC_NOTE], [COPIED_BY_US, reply], (CommentPair("c1", "10", "crm"),))
    [copy] = result.operations
    assert isinstance(copy, AddComment)
    assert (copy.side, copy.source_comment_id) == ("crm", "11")


def test_comments_are_copied_in_the_order_their_remote_lists_them() -> None:
    listed = [RemoteComment(f"77:{n}", "77", f"step {n}", True, T0, "agent-2") for n in (2, 10)]
    result = comments_plan([], listed)
    assert [op.source_comment_id for op in result.operations if isinstance(op, AddComment)] == [
        "77:2",
        "77:10",
    ]


def test_comment_sync_can_be_switched_off() -> None:
    data = DEFAULT.model_dump(exclude_unset=True)
    data["comments"] = {"sync": False}
    assert comments_plan([PUBLIC_NOTE], [AGENT_NOTE], mapping=from_data(data)).is_empty


# -- deletes and cancels ----------------------------------------------------------------------

DELETE_KEY = idempotency_key("delete", "crm", "500A")
DELETE_NOTICE = AddComment(
    "zenvia",
    "77",
    "Salesforce case 500A was deleted, so syncworker closed this one.",
    False,
    None,
    DELETE_KEY,
)


@pytest.mark.parametrize(
    "crm",
    [
        pytest.param(None, id="case-gone"),
        pytest.param(dataclasses.replace(case(), deleted=True), id="case-flagged-deleted"),
    ],
)
def test_a_deleted_case_closes_the_ticket_with_a_notice(crm: RemoteRecord | None) -> None:
    result = plan(DEFAULT, link=IN_SYNC, crm=crm, zenvia=ticket())
    assert result.operations == (DELETE_NOTICE, UpdateFields("zenvia", "77", {"status": 6}))
    assert result.link_state is LinkState.ORPHANED
    assert result.reason == "Salesforce case 500A was deleted; the link is orphaned"


def test_a_deleted_case_leaves_an_already_closed_ticket_closed() -> None:
    result = plan(DEFAULT, link=IN_SYNC, crm=None, zenvia=ticket(status=6))
    [notice] = result.operations
    assert isinstance(notice, AddComment)
    assert notice.body.startswith("Salesforce case 500A was deleted, so syncworker stopped syncing")


def test_the_delete_notice_is_written_once() -> None:
    posted = RemoteComment("11", "77", DELETE_NOTICE.body, False, T0)
    result = plan(
        DEFAULT, link=IN_SYNC, crm=None, zenvia=ticket(status=6), zenvia_comments=[posted]
    )
    assert (result.operations, result.link_state) == ((), LinkState.ORPHANED)


def test_unlink_on_delete_writes_nothing() -> None:
    data = DEFAULT.model_dump(exclude_unset=True)
    data["on_delete"] = "unlink"
    result = plan(from_data(data), link=IN_SYNC, crm=case(), zenvia=None)
    assert (result.operations, result.link_state) == ((), LinkState.ORPHANED)
    assert result.crm_baseline == CASE_BASELINE


def test_an_orphaned_link_plans_nothing() -> None:
    orphaned = dataclasses.replace(IN_SYNC, state=LinkState.ORPHANED)
    result = plan(DEFAULT, link=orphaned, crm=case(Subject="changed"), zenvia=ticket())
    assert (result.is_empty, result.link_state) == (True, LinkState.ORPHANED)


CANCEL_KEY = idempotency_key("cancel", "zenvia", "77")


def test_a_canceled_ticket_closes_the_case_with_a_notice() -> None:
    result = merge(case(Status="Escalated"), ticket(status=4, statusType="CANCELED"))
    assert result.operations == (
        UpdateFields("crm", "500A", {"Status": "Closed"}),
        AddComment(
            "crm",
            "500A",
            "Zenvia ticket 77 was canceled, so syncworker closed this case.",
            False,
            None,
            CANCEL_KEY,
        ),
    )
    assert result.conflicts == ()


def test_the_cancel_notice_is_written_once() -> None:
    world = World(DEFAULT)
    world.open_record("crm", CASE)
    world.sync()
    world.edit("zenvia", "status", 4)
    world.sync(crash_after=1, lose_ack=True)  # the notice was posted, its answer lost
    world.sync()
    notice = f"Zenvia ticket {world.ids['zenvia']} was canceled, so syncworker closed this case."
    notices = [c for c in world.comments_on("crm") if c.body == notice]
    assert len(notices) == 1
    assert world.value("crm", "Status") == "Closed"
    assert world.sync().is_empty


def test_unlink_on_cancel_orphans_the_link_and_writes_nothing() -> None:
    data = DEFAULT.model_dump(exclude_unset=True)
    data["on_cancel"] = "unlink"
    result = merge(case(), ticket(status=4), from_data(data))
    assert (result.operations, result.link_state) == ((), LinkState.ORPHANED)


# -- dry run ----------------------------------------------------------------------------------


def test_describe_reads_as_a_dry_run_report() -> None:
    result = merge(
        case(Subject="From CRM", Status="On Hold"), ticket(subject="From Zenvia"), MANUAL
    )
    assert result.describe() == [
        "update zenvia 77: status=3, justification=11",
        "conflict on subject: crm='From CRM' zenvia='From Zenvia' (manual): "
        "parked until an operator resolves it",
        "link becomes conflict",
    ]
    assert merge(case(), ticket()).describe() == ["nothing to do"]


# -- a CLOSED Zenvia ticket takes nothing but its reopening --------------------------------------

CLOSED = {"status": 6, "statusType": "CLOSED"}
CLOSED_SYNC = LinkSnapshot(
    "500A", "77", {**CASE_BASELINE, "Status": "Closed"}, {**TICKET_BASELINE, "status": 6}
)


def test_an_edit_for_a_closed_ticket_waits_and_is_still_a_change_later() -> None:
    note = RemoteComment("c5", "500A", "One more thing", True, T0)
    result = plan(
        DEFAULT,
        link=CLOSED_SYNC,
        crm=case(Status="Closed", Subject="Renamed"),
        zenvia=ticket(**CLOSED),
        crm_comments=[note],
    )
    assert (result.operations, result.comment_pairs) == ((), ())
    assert result.crm_baseline is not None
    assert result.crm_baseline["Subject"] == "Printer jams", "still a change once it reopens"
    assert result.notes == (
        "Zenvia ticket 77 is closed: its edits and comments wait until it reopens",
    )


def test_a_case_reopened_reopens_the_ticket_with_its_edits_and_comments() -> None:
    note = RemoteComment("c5", "500A", "Back again", True, T0)
    result = plan(
        DEFAULT,
        link=CLOSED_SYNC,
        crm=case(Status="Working", Subject="Renamed"),
        zenvia=ticket(**CLOSED),
        crm_comments=[note],
    )
    update, comment = result.operations
    assert update == UpdateFields("zenvia", "77", {"subject": "Renamed", "status": 2})
    assert isinstance(comment, AddComment)
    assert comment.side == "zenvia"


def test_a_comment_made_as_the_case_closes_reaches_the_ticket_before_it_closes() -> None:
    note = RemoteComment("c6", "500A", "Closing now", True, T0)
    result = plan(
        DEFAULT, link=IN_SYNC, crm=case(Status="Closed"), zenvia=ticket(), crm_comments=[note]
    )
    comment, close = result.operations
    assert isinstance(comment, AddComment)
    assert close == UpdateFields("zenvia", "77", {"status": 6})


URGENT_CASE, URGENT_TICKET = {**CASE, "Priority": "High"}, {**TICKET, "urgency": 4}
URGENT_SYNC = LinkSnapshot(
    "500A", "77", DEFAULT.project("crm", URGENT_CASE), DEFAULT.project("zenvia", URGENT_TICKET)
)


def test_an_urgency_zenvia_cleared_after_a_category_change_is_written_back_from_the_case() -> None:
    """Urgency 4 fits problems only and agrees with High; when the case becomes a question,
    the category is written alone (the engine does not know which urgencies a category
    allows, so an Urgente the new category keeps is left alone) and Zenvia clears the urgency.
    That empty urgency is Zenvia's side effect, not an edit: the case keeps High and the
    ticket takes High's value."""
    question = {**URGENT_CASE, "Type": "Question"}
    first = plan(
        DEFAULT,
        link=URGENT_SYNC,
        crm=RemoteRecord("500A", T0, question),
        zenvia=RemoteRecord("77", T0, URGENT_TICKET),
    )
    assert writes(first) == {"zenvia": {"category": 1}}
    assert first.crm_baseline is not None
    assert first.zenvia_baseline is not None

    cleared = {**URGENT_TICKET, "category": 1, "urgency": None}
    second = plan(
        DEFAULT,
        link=LinkSnapshot("500A", "77", first.crm_baseline, first.zenvia_baseline),
        crm=RemoteRecord("500A", T0, question),
        zenvia=RemoteRecord("77", T0, cleared),
    )
    assert writes(second) == {"zenvia": {"urgency": 3}}


def test_an_agents_category_change_that_cleared_the_urgency_keeps_the_cases_priority() -> None:
    """The agent made the ticket a question, so Zenvia cleared its Urgente in the same edit:
    the case takes the new type and keeps High, and the ticket takes High's own value."""
    cleared = {**URGENT_TICKET, "category": 1, "urgency": None}
    result = plan(
        DEFAULT,
        link=URGENT_SYNC,
        crm=RemoteRecord("500A", T0, URGENT_CASE),
        zenvia=RemoteRecord("77", T0, cleared),
    )
    assert writes(result) == {"crm": {"Type": "Question"}, "zenvia": {"urgency": 3}}


def test_a_priority_changed_while_zenvia_cleared_the_urgency_reaches_the_ticket() -> None:
    cleared = {**URGENT_TICKET, "category": 1, "urgency": None}
    result = plan(
        DEFAULT,
        link=URGENT_SYNC,
        crm=RemoteRecord("500A", T0, {**URGENT_CASE, "Priority": "Low"}),
        zenvia=RemoteRecord("77", T0, cleared),
    )
    assert writes(result) == {"crm": {"Type": "Question"}, "zenvia": {"urgency": 1}}


def test_a_category_change_leaves_an_urgency_that_is_the_cases_own_value() -> None:
    assert writes(merge(case(Type="Question"), ticket())) == {"zenvia": {"category": 1}}


def test_an_urgent_ticket_whose_case_changes_type_keeps_its_priority_on_the_case() -> None:
    """The agent made the ticket Urgente (problems only) as the case became a question: the
    case takes High; the category is written, and Zenvia's clearing is answered next sync."""
    result = merge(case(Type="Question"), ticket(urgency=4))
    assert writes(result) == {"crm": {"Priority": "High"}, "zenvia": {"category": 1}}


def test_a_person_editing_what_an_interrupted_run_wrote_keeps_the_edit() -> None:
    """The run wrote the ticket's category to the case and died before writing the urgency.
    An agent then retyped the case. The write was folded into both baselines as it landed
    (`bookkeeping.fold_written`), so the next run sees one change, the agent's, instead of a
    both-sides conflict that category's policy (zenvia_wins) would give to the ticket."""
    world = World(DEFAULT)
    world.open_record("crm", CASE)
    world.sync()
    world.edit("zenvia", "category", 1)
    world.edit("crm", "Priority", "Low")
    interrupted = world.sync(crash_after=1)
    assert [op.side for op in interrupted.operations] == ["crm", "zenvia"]
    assert world.value("crm", "Type") == "Question"

    world.edit("crm", "Type", "Feature Request")
    world.sync()
    assert (world.value("crm", "Type"), world.value("zenvia", "category")) == ("Feature Request", 3)
    assert world.value("zenvia", "urgency") == 1


def test_a_write_whose_fold_the_database_refused_does_not_beat_a_later_edit() -> None:
    """The run wrote the ticket's category to the case; the database then took nothing more
    (the fold, the commit). An agent retyped the case again. The update was recorded before
    it was sent, and the next plan folds it (`bookkeeping.fold_in_flight`: the case no longer
    holds the type the plan read): one change, the agent's, instead of a both-sides conflict
    that category's policy (zenvia_wins) would give to the ticket."""
    world = World(DEFAULT)
    world.open_record("crm", CASE)
    world.sync()
    world.edit("zenvia", "category", 1)
    lost = world.sync(database_lost=True)
    assert [op.side for op in lost.operations] == ["crm"]
    assert world.value("crm", "Type") == "Question"

    world.edit("crm", "Type", "Feature Request")
    world.sync()
    assert (world.value("crm", "Type"), world.value("zenvia", "category")) == ("Feature Request", 3)


def test_a_change_whose_record_still_holds_what_the_plan_read_stays_a_change() -> None:
    """Of the write in flight, a field whose record still holds what the plan read there did
    not land (or was put back): it stays a change to write again. One holding our value, or
    anything else (a person's edit after it), is folded with the plan's baselines."""
    stored = {
        "crm": {"Type": "Problem", "Priority": "High", "Subject": "Printer"},
        "zenvia": {"category": 2, "urgency": 1, "subject": "Printer"},
    }
    planned = {
        "crm": {"Type": "Question", "Priority": "Low", "Subject": "Toner"},
        "zenvia": {"category": 1, "urgency": 3, "subject": "Toner"},
    }
    changes = {"Type": "Question", "Priority": "Low", "Subject": "Toner"}
    in_flight = bookkeeping.write_in_flight(planned, "crm", changes, stored["crm"])
    held = {
        "crm": {"Type": "Question", "Priority": "Medium", "Subject": "Printer"},
        "zenvia": {"category": 1},
    }

    folded = bookkeeping.fold_in_flight(DEFAULT, stored, in_flight, held)

    assert folded["crm"] == {"Type": "Question", "Priority": "Low", "Subject": "Printer"}
    assert folded["zenvia"] == {"category": 1, "urgency": 3, "subject": "Printer"}
    assert bookkeeping.fold_in_flight(DEFAULT, stored, None, held) == stored


def test_an_agents_edit_of_a_ticket_whose_create_reply_was_lost_reaches_the_case() -> None:
    """The create landed but its reply was lost; an agent then raised the ticket's urgency.
    The next run finds the ticket and adopts it with the baselines its create planned
    (`bookkeeping.adopted_baselines`), so the first merge is three-way: one change, the
    agent's, instead of a both-sides conflict that priority's policy (crm_wins) would give
    to the case."""
    world = World(DEFAULT)
    world.open_record("crm", CASE)
    world.sync(crash_after=0, lose_ack=True)
    zenvia = world.remotes["zenvia"]
    (ticket_id,) = zenvia.fields
    zenvia.fields[ticket_id]["urgency"] = 3
    zenvia.versions[ticket_id] = world.tick()

    world.sync()
    assert world.ids["zenvia"] == ticket_id
    assert (world.value("crm", "Priority"), world.value("zenvia", "urgency")) == ("High", 3)
