"""Small, deterministic reproductions of what the chaos scenarios found.

Each test names the scenario that first showed the defect; they run in `make test` (real
Postgres, Redis and sandboxes; workers only where the defect needs one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from syncworker import sync
from syncworker.connectors.errors import TransientError
from syncworker.sandbox.salesforce import OWNER_IDS
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link
from tests.chaos.invariants import check, snapshot
from tests.conftest import ADMIN_URL
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(chaos_database: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    """These tests run syncs in-process without polls: a comment sweep due meanwhile would
    take both records as the last sync left them (as a sweep does), so none is due."""
    with running_stack(
        chaos_database[1], tmp_path, SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600"
    ) as running:
        yield running


def only_ticket(stack: Stack) -> str:
    [ticket] = stack.tickets()
    return str(ticket["id"])


def synced_question(stack: Stack, subject: str) -> tuple[str, str]:
    """A case of Type Question synced in-process to its ticket: (case id, ticket id). Returns
    in the next whole second: these tests' later edits must not share a stamp with the sync's
    read (the same-second-edits chaos scenario covers that)."""
    case_id = stack.salesforce.agent.create_case(
        Subject=subject, Status="New", Origin="Web", Type="Question"
    )
    sync.sync_record(stack.runtime, "crm", case_id)
    next_second()
    return case_id, only_ticket(stack)


def next_second() -> None:
    """Wait for the next whole second: a later edit then gets a later Salesforce stamp."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def assert_a_later_case_edit_wins(stack: Stack, case_id: str, ticket_id: str) -> None:
    """The agent changes the case's Type once more; the retry must carry it to the ticket
    (category is zenvia_wins, so our own unrecorded write would beat it). The edit comes a
    second after the failed sync's read, as it would for a person, and a poll sees it."""
    next_second()
    stack.salesforce.agent.edit(case_id, Type="Problem")
    time.sleep(stack.settings.poll_interval_seconds + 0.2)
    stack.poll()  # the retry runs once a poll has seen the edit (no worker: it runs here)
    sync.sync_record(stack.runtime, "crm", case_id)  # the retry

    assert stack.salesforce.agent.case(case_id)["Type"] == "Problem", "the later edit was lost"
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 2


def test_a_comment_added_to_an_otherwise_unchanged_case_reaches_zenvia(stack: Stack) -> None:
    """Found by every chaos scenario: a CaseComment does not move its Case's SystemModstamp, so
    `changed_since` returns the case with the version already synced, `repo.observe` finds
    nothing newer and enqueues nothing; reconcile compares the same version and misses it too."""
    stack.start_worker()
    case_id = stack.salesforce.agent.create_case(Subject="Quiet case", Status="New", Origin="Web")
    stack.settle()
    ticket_id = only_ticket(stack)

    stack.salesforce.agent.add_comment(case_id, "Customer sent the invoice", public=True)
    stack.settle()
    stack.reconcile()
    stack.settle()

    copies = [a for a in stack.zenvia.actions(ticket_id) if "sent the invoice" in a["description"]]
    assert len(copies) == 1, "the case's only change, a new comment, never reached Zenvia"


def test_an_edit_made_while_a_create_reply_was_lost_survives_the_first_merge(
    stack: Stack,
) -> None:
    """Found by flaky-remotes: the reply to POST /tickets is lost; before the create's retry,
    the Zenvia poller's sync finds the new ticket by its marker, attaches it to the link
    and plans a merge with no baselines: every field differs "on both sides" and its conflict
    policy decides, so an edit made on the case meanwhile is overwritten by the copy's stale
    value (category is zenvia_wins). Fixed by adopting the ticket with the baselines its
    create planned (`sync.link.adopt`)."""
    runtime = stack.runtime
    case_id = stack.salesforce.agent.create_case(
        Subject="Lost reply", Status="New", Origin="Web", Type="Question", Priority="Low"
    )
    stack.zenvia.drop_next_response_after_handling("POST /v2/tickets")
    with pytest.raises(TransientError):
        sync.sync_record(runtime, "crm", case_id)
    ticket_id = only_ticket(stack)

    stack.salesforce.agent.edit(case_id, Type="Problem")  # an agent recategorises the case
    time.sleep(stack.settings.poll_interval_seconds + 0.2)  # the create's reads are not fresh
    sync.sync_record(runtime, "zenvia", ticket_id)  # the Zenvia poll's sync comes first
    sync.sync_record(runtime, "crm", case_id)  # then the create's retry

    assert stack.salesforce.agent.case(case_id)["Type"] == "Problem", "the case edit was lost"
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 2  # Problem
    assert len(stack.tickets()) == 1


def test_a_create_retry_that_finds_its_lost_ticket_keeps_edits_made_on_both_sides(
    stack: Stack,
) -> None:
    """The creator's own retry finds the ticket of a lost reply (`find_created`): it used to
    force every field the create planned onto the ticket, overwriting a Zenvia agent's edit
    made in between; now it adopts the ticket with the planned baselines and merges."""
    runtime = stack.runtime
    case_id = stack.salesforce.agent.create_case(
        Subject="Printer on fire", Status="New", Origin="Web", Type="Question"
    )
    stack.zenvia.drop_next_response_after_handling("POST /v2/tickets")
    with pytest.raises(TransientError):
        sync.sync_record(runtime, "crm", case_id)
    ticket_id = only_ticket(stack)

    stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Printer smoking, not on fire"})
    stack.salesforce.agent.edit(case_id, Type="Problem")
    time.sleep(runtime.settings.zenvia_listing_lag_seconds)  # until listings show the ticket
    sync.sync_record(runtime, "crm", case_id)  # the create's retry

    assert stack.salesforce.agent.case(case_id)["Subject"] == "Printer smoking, not on fire"
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Printer smoking, not on fire"
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 2  # Problem
    assert len(stack.tickets()) == 1
    link = service_link(stack, ticket_id)
    assert link.crm_id == case_id
    assert link.state == "active"


def service_link(stack: Stack, ticket_id: str) -> Link:
    with session_scope(stack.database_url) as session:
        link = repo.find_link(session, side="zenvia", remote_id=ticket_id, crm_system="salesforce")
    assert link is not None
    return link


def test_our_own_write_from_a_plan_that_failed_halfway_does_not_beat_a_later_edit(
    stack: Stack,
) -> None:
    """Found by flaky-remotes and kill-workers at 1,000 pairs: a plan writes the ticket's
    category, then its next operation (a comment) fails transiently, so no baseline is stored
    (engine.Plan: "on any failure store nothing else"). The retry sees our own write on Zenvia
    as a Zenvia change; if the case was edited again meanwhile, both sides "changed" and the
    echo of our write wins the conflict (category is zenvia_wins): the newer case edit is lost.
    """
    case_id, ticket_id = synced_question(stack, "Half a plan")

    stack.salesforce.agent.edit(case_id, Type="Feature Request")
    stack.salesforce.agent.add_comment(case_id, "Please also export to CSV", public=True)
    stack.zenvia.fail_next(
        "POST /v2/tickets/{ticket_id}/actions", 503, "UNAVAILABLE", "try again later"
    )
    with pytest.raises(TransientError):
        sync.sync_record(stack.runtime, "crm", case_id)  # category written, comment refused
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 3

    assert_a_later_case_edit_wins(stack, case_id, ticket_id)


def test_the_first_patch_of_a_zenvia_update_that_failed_halfway_does_not_beat_a_later_edit(
    stack: Stack,
) -> None:
    """Found by flaky-remotes at 1,000 pairs: a Zenvia update is one PATCH per attribute. The
    category PATCH landed, the owner PATCH failed, and nothing was folded into the baselines,
    so the retry took our own category write for a Zenvia change and it beat the agent's
    newer case edit (category is zenvia_wins)."""
    case_id, ticket_id = synced_question(stack, "Two attributes")

    stack.salesforce.agent.edit(case_id, Type="Feature Request", OwnerId=OWNER_IDS[2])
    stack.zenvia.fail_next(
        "PATCH /v2/tickets/{ticket_id}/attributes/owner", 500, "INTERNAL_ERROR", "try again"
    )
    with pytest.raises(TransientError):
        sync.sync_record(stack.runtime, "crm", case_id)  # category PATCHed, owner refused
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 3

    assert_a_later_case_edit_wins(stack, case_id, ticket_id)


def test_a_zenvia_write_whose_reply_was_lost_does_not_beat_a_later_edit(stack: Stack) -> None:
    """Found by flaky-remotes at 1,000 pairs: the PATCH landed but its reply was lost, so the
    sync could not fold it; the retry took our own write for a Zenvia change. The sync now
    reads the ticket after a lost reply and folds the values it holds."""
    case_id, ticket_id = synced_question(stack, "Lost reply")

    stack.salesforce.agent.edit(case_id, Type="Feature Request")
    stack.zenvia.drop_next_response_after_handling(
        "PATCH /v2/tickets/{ticket_id}/attributes/category"
    )
    with pytest.raises(TransientError):
        sync.sync_record(stack.runtime, "crm", case_id)
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 3  # applied, never heard

    assert_a_later_case_edit_wins(stack, case_id, ticket_id)


@contextlib.contextmanager
def connections_refused(database: str) -> Iterator[None]:
    """What clients see while Postgres restarts: their connections die, new ones are refused."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def test_our_write_whose_commit_the_database_refused_does_not_beat_a_later_edit(
    stack: Stack, chaos_database: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by postgres-restart at 1,000 pairs: the category PATCH landed, then Postgres
    refused the commit that folds it into the baselines, so the retry took our own write for
    a Zenvia change and it beat the agent's newer case edit (category is zenvia_wins). The
    update is now recorded on the link before it is sent, and the retry folds what the ticket
    holds of it (`bookkeeping.fold_in_flight`)."""
    case_id, ticket_id = synced_question(stack, "Outage after the write")
    stack.salesforce.agent.edit(case_id, Type="Feature Request")
    zenvia = stack.runtime.connectors["zenvia"]
    send = zenvia.update
    with contextlib.ExitStack() as outage:

        def update_then_refuse(*args: Any, **kwargs: Any) -> None:
            send(*args, **kwargs)
            outage.enter_context(connections_refused(chaos_database[0]))

        monkeypatch.setattr(zenvia, "update", update_then_refuse)
        with pytest.raises(OperationalError):
            sync.sync_record(stack.runtime, "crm", case_id)  # category PATCHed, commit refused
    monkeypatch.undo()
    assert stack.zenvia.ticket(ticket_id)["category"]["id"] == 3

    assert_a_later_case_edit_wins(stack, case_id, ticket_id)


def test_a_sync_that_failed_on_a_database_outage_does_not_block_the_record(
    stack: Stack, chaos_database: tuple[str, str]
) -> None:
    """Found by postgres-restart: `tasks.sync` classifies only remote errors; a database error
    fails the task (acked: the message is gone) and leaves the record's queued flag set, and
    `repo.observe` never enqueues a flagged record again, so later edits wait for reconcile
    (hourly by default) instead of the next poll."""
    worker = stack.start_worker(concurrency=1)
    case_id = stack.salesforce.agent.create_case(Subject="Before", Status="New", Origin="Web")
    stack.settle()
    ticket_id = only_ticket(stack)
    worker.stop()

    stack.salesforce.agent.edit(case_id, Subject="During the outage")
    stack.poll()  # flags the case and enqueues its sync; no worker is running
    with connections_refused(chaos_database[0]):
        worker = stack.start_worker(concurrency=1)
        wait_until(
            lambda: "after an infrastructure error" in worker.log(), timeout=30, what="the retry"
        )

    stack.salesforce.agent.edit(case_id, Subject="After the outage")

    def synced() -> bool:
        stack.poll()
        return bool(stack.zenvia.ticket(ticket_id)["subject"] == "After the outage")

    with contextlib.suppress(AssertionError):
        wait_until(synced, timeout=20, interval=1.0)
    assert stack.zenvia.ticket(ticket_id)["subject"] == "After the outage", (
        f"the edit is stuck behind the dropped sync (backlog {stack.backlog()})"
    )
    stack.reconcile()
    stack.settle()
    assert check(snapshot(stack.zenvia, stack.salesforce, stack.database_url), stack.mapping).ok
