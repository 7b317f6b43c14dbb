"""Sync behaviour that the real APIs force on us (docs/real-apis.md): a 404 is not a deletion,
a stamp shared by two changes is not "no change". Real Postgres, Redis, worker and sandboxes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syncworker import sync
from syncworker.model import Side
from syncworker.sandbox.salesforce import VisibilityDelay
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetterStatus
from tests.integration.test_sync_flows import (
    before_handling,
    held_poll,
    holding,
    limited_zenvia,
    requests_made,
    settle_here,
    sync_here,
    synced_on_a_budget,
    synced_pair,
)
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.integration


def open_letters(stack: Stack) -> list[str]:
    with session_scope(stack.database_url) as session:
        return [
            letter.message
            for letter in repo.list_dead_letters(session, status=DeadLetterStatus.OPEN)
        ]


def test_one_404_on_a_ticket_keeps_the_link_closes_nothing_and_heals_on_the_next_read(
    stack: Stack,
) -> None:
    case_id, ticket_id = synced_pair(stack, "Vanishing ticket")
    stack.zenvia.fail_next("GET /v2/tickets/{ticket_id}", 404, "NOT_FOUND", "Ticket not found")
    stack.salesforce.agent.edit(case_id, Priority="High")

    with pytest.raises(sync.RecordMissing) as missing:
        sync_here(stack, held_poll(stack))
    # what the sync task does with a permanent error of the record it was given
    sync.dead_letter(stack.runtime, "crm", case_id, missing.value, operation="sync")

    (link,) = stack.links()
    assert link.state == "missing"
    assert stack.salesforce.agent.case(case_id)["Status"] == "New", "the case was not closed"
    (message,) = open_letters(stack)
    assert "does not say it was deleted" in message
    assert "links restore" in message

    stack.salesforce.agent.edit(case_id, Priority="Low")
    settle_here(stack)
    (link,) = stack.links()
    assert (link.state, link.zenvia_id) == ("active", ticket_id)
    assert stack.zenvia.ticket(ticket_id)["urgency"]["id"] == 1
    assert open_letters(stack) == []


@pytest.mark.parametrize(("state", "checked"), [("active", True), ("missing", False)])
def test_reconcile_reads_an_unseen_record_again_only_if_it_is_not_already_missing(
    stack: Stack, state: str, checked: bool
) -> None:
    """A link marked missing is not read again on every pass: Zenvia answers a few 404s with a
    lockout. A listing that shows its record again, or an operator, brings it back."""
    case_id, _ = synced_pair(stack, f"Unseen {state}")
    with session_scope(stack.database_url) as session:
        link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
        assert link is not None
        assert link.id is not None
        repo.save_link_state(
            session,
            link_id=link.id,
            expected_revision=link.revision,
            values={"state": state, "zenvia_id": "990001"},  # no listing shows this ticket
        )
    queued: list[tuple[str, str]] = []
    send = stack.runtime.enqueue_sync
    stack.runtime.enqueue_sync = lambda side, record_id: queued.append((side, record_id))
    try:
        outcome = stack.reconcile()
    finally:
        stack.runtime.enqueue_sync = send
    assert outcome.complete
    assert (("zenvia", "990001") in queued) is checked
    assert outcome.orphans == int(checked)


def test_an_operator_restores_a_link_orphaned_by_mistake(stack: Stack) -> None:
    case_id, ticket_id = synced_pair(stack, "Wrongly orphaned")
    with session_scope(stack.database_url) as session:
        link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
        assert link is not None
        assert link.id is not None
        repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values={"state": "orphaned"}
        )
        link_id = link.id
    stack.salesforce.agent.edit(case_id, Subject="Edited while orphaned")
    sync_here(stack, held_poll(stack))
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Wrongly orphaned", "orphaned: no sync"

    outcome = sync.restore_link(stack.runtime, link_id)

    assert outcome.state == "active"
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Edited while orphaned"


def test_an_agents_comment_reaches_the_case_although_it_does_not_move_updated_at(
    stack: Stack,
) -> None:
    case_id, ticket_id = synced_pair(stack, "Quiet comment")
    before = stack.zenvia.ticket(ticket_id)["updatedAt"]
    stack.zenvia.agent.add_action(ticket_id, "Agent replied", public=True)
    assert stack.zenvia.ticket(ticket_id)["updatedAt"] == before, "the sandbox's harsh default"

    settle_here(stack)  # the test stack sweeps each open ticket's comments every second

    copies = [c["CommentBody"] for c in stack.salesforce.comments(case_id)]
    assert sum("Agent replied" in body for body in copies) == 1


def test_a_closed_ticket_leaves_the_sweep(stack: Stack) -> None:
    case_id, ticket_id = synced_pair(stack, "Closing sweep")
    stack.salesforce.agent.edit(case_id, Status="Closed")
    settle_here(stack)
    assert stack.zenvia.ticket(ticket_id)["status"]["type"] == "CLOSED"
    (link,) = stack.links()
    assert link.comments_due_at is None


def test_a_case_edited_again_in_the_second_the_poll_read_it_still_reaches_the_ticket(
    stack: Stack,
) -> None:
    """Salesforce stamps whole seconds: the second edit keeps the first one's stamp."""
    case_id, ticket_id = synced_pair(stack, "Twice in a second")
    time.sleep(1 - time.time() % 1 + 0.05)  # the start of a fresh second
    stack.salesforce.agent.edit(case_id, Subject="First edit")
    queued: list[tuple[Side, str]] = []
    send = stack.runtime.enqueue_sync
    stack.runtime.enqueue_sync = lambda side, record_id: queued.append((side, record_id))
    try:
        stack.poll()
    finally:
        stack.runtime.enqueue_sync = send
    sync_here(stack, [(side, rid) for side, rid in queued if side == "crm"])
    first = stack.salesforce.agent.case(case_id)["SystemModstamp"]
    stack.salesforce.agent.edit(case_id, Subject="Second edit")
    assert stack.salesforce.agent.case(case_id)["SystemModstamp"] == first, "same second"
    assert stack.zenvia.ticket(ticket_id)["subject"] == "First edit"

    settle_here(stack)

    assert stack.zenvia.ticket(ticket_id)["subject"] == "Second edit"


def test_a_stamp_read_again_once_final_is_synced_once_not_again_and_again(
    committed_database_url: str, tmp_path: Path
) -> None:
    """Found by `bench.business_day --capacity`: a case's stamp read within its own second is
    recorded a microsecond short, and the poll that reads it again late enough queues the
    case once more. That sync took the case as the last sync left it (the poll's late read
    did not count as news), so its commit found the stamp still "newer" and queued it again;
    with the ticket's sweep due and refused by the budget, ~50 times a second. Now the late
    read is the final one: the sync plans on it and the pair is done."""
    settings = limited_zenvia(SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="1")
    with running_stack(committed_database_url, tmp_path, **settings) as stack:
        gate = stack.runtime.gates["zenvia"]
        case_id, ticket_id = synced_on_a_budget(stack, "Tight")
        time.sleep(1 - time.time() % 1 + 0.05)  # the start of a fresh second
        stack.salesforce.agent.edit(case_id, Subject="Tight edited")
        gate.reset()
        with holding(stack) as queued:
            sync.poll(stack.runtime, "crm")  # within the stamp's second: not final
        sync_here(stack, queued)
        assert stack.zenvia.ticket(ticket_id)["subject"] == "Tight edited"
        time.sleep(2.5)  # past the stamp's margin; the ticket's sweep is due
        with holding(stack) as queued:
            sync.poll(stack.runtime, "crm")  # the final read
        assert queued == [("crm", case_id)]
        gate.reset()
        for _ in range((gate.remaining() or 0) - 4):
            gate.before_request("GET /tickets/{id}")  # the sweep's listing is refused

        with holding(stack) as again:
            spent = requests_made(stack, lambda: sync_here(stack, queued))

        assert again == [], "the sync sent itself again"
        # the poll's read was the final one; the case's comments of that second are listed
        assert spent == {"zenvia": {}, "salesforce": {"GET /services/data/{version}/query": 1}}
        assert ("crm", case_id) not in held_poll(stack)  # synced for good


def test_a_case_edit_committed_late_reaches_the_ticket_after_our_comment_moved_the_case(
    stack: Stack,
) -> None:
    """A long transaction commits the edit with its earlier stamp, after our comment copy has
    already moved the case's version past it, and that version was synced for good: the
    stamp alone never shows the edit."""
    case_id, ticket_id = synced_pair(stack, "Late commit")
    committed = time.monotonic() + 10
    stack.salesforce.visibility_delay = VisibilityDelay(share=1.0, seconds=10)
    stack.salesforce.agent.edit(case_id, Subject="Committed late")
    stack.salesforce.visibility_delay = None
    stack.zenvia.agent.add_action(ticket_id, "Agent note", public=True)
    settle_here(stack)  # the sweep copies the note onto the case: its version moves on
    time.sleep(2.5)
    settle_here(stack)  # that version read again once final
    assert any("Agent note" in c["CommentBody"] for c in stack.salesforce.comments(case_id))
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Late commit", "not visible yet"

    time.sleep(max(0.0, committed - time.monotonic()) + 0.5)
    settle_here(stack)

    assert stack.zenvia.ticket(ticket_id)["subject"] == "Committed late"


def test_a_comment_meeting_a_ticket_closed_that_instant_waits_for_its_reopening(
    stack: Stack,
) -> None:
    """Zenvia refuses an action on a CLOSED ticket. An agent who closes it between our read
    and our post is a race: the pair is planned again on the closed ticket (the comment waits,
    the case closes), not parked as a dead letter; the comment follows when it reopens."""
    case_id, ticket_id = synced_pair(stack, "Closed meanwhile")
    stack.salesforce.agent.add_comment(case_id, "Any news?")
    close = lambda: stack.zenvia.agent.set_status(ticket_id, 6)  # noqa: E731
    before_handling(stack.zenvia, "POST /v2/tickets/{ticket_id}/actions", close)

    queued = held_poll(stack)
    with pytest.raises(sync.StaleLink, match="ended while this sync wrote"):
        sync_here(stack, queued)
    sync_here(stack, queued)  # the sync task's retry
    settle_here(stack)

    assert open_letters(stack) == []
    assert stack.salesforce.agent.case(case_id)["Status"] == "Closed"
    assert stack.zenvia.ticket(ticket_id)["status"]["type"] == "CLOSED"
    stack.zenvia.agent.set_status(ticket_id, 2)
    settle_here(stack)
    bodies = [action["description"] for action in stack.zenvia.actions(ticket_id)]
    assert sum("Any news?" in body for body in bodies) == 1
    assert open_letters(stack) == []


def test_an_urgente_is_kept_while_its_category_allows_it_and_the_cases_priority_always(
    stack: Stack,
) -> None:
    """Urgency 4 "Urgente" fits Cobrança and problems only, and agrees with High. The case
    becoming a problem leaves it alone; the case becoming a question makes Zenvia clear it, and
    then the case keeps High and the ticket takes High's own Alta, instead of the empty urgency
    flowing back as a lost priority."""
    case_id, ticket_id = synced_pair(stack, "Urgent invoice")
    stack.zenvia.agent.edit(ticket_id, "service", {"service": {"id": 2}})  # Financeiro
    stack.zenvia.agent.edit(ticket_id, "category", {"category": {"id": 4}})
    stack.zenvia.agent.edit(ticket_id, "urgency", {"urgency": {"id": 4}})
    settle_here(stack)
    assert stack.salesforce.agent.case(case_id)["Priority"] == "High"

    stack.salesforce.agent.edit(case_id, Type="Problem")
    settle_here(stack)
    ticket = stack.zenvia.ticket(ticket_id)
    assert (ticket["category"]["id"], ticket["urgency"]["id"]) == (2, 4), "the agent's Urgente"

    stack.salesforce.agent.edit(case_id, Type="Question")
    settle_here(stack)
    ticket = stack.zenvia.ticket(ticket_id)
    assert (ticket["category"]["id"], ticket["urgency"]["id"]) == (1, 3)
    case = stack.salesforce.agent.case(case_id)
    assert (case["Type"], case["Priority"]) == ("Question", "High")
