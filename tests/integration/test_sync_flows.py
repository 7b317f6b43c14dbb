"""End to end: real Postgres, real Redis, real Celery worker processes, sandboxes over HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from syncworker import engine, sync
from syncworker.connectors.errors import RateLimitedError
from syncworker.model import Side
from syncworker.sandbox.server import Request, Response, SandboxApp
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE
from syncworker.store import repo
from syncworker.store.db import session_scope
from tests.stack import BROKER_URL, Stack, running_stack

pytestmark = pytest.mark.integration
# Tests that count requests: the comment sweep (every second in the test stack) would add its
# listings to theirs.
NO_SWEEP = pytest.mark.stack_settings(SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600")

OWNER_1, OWNER_2 = "005000000000001AAA", "005000000000002AAA"


def ticket_for(stack: Stack, subject: str) -> dict[str, Any]:
    matches = [t for t in stack.tickets() if t["subject"] == subject]
    assert len(matches) == 1, f"expected one ticket {subject!r}, found {len(matches)}"
    return matches[0]


def case_for(stack: Stack, subject: str) -> dict[str, Any]:
    matches = [c for c in stack.cases() if c["Subject"] == subject]
    assert len(matches) == 1, f"expected one case {subject!r}, found {len(matches)}"
    return matches[0]


def after_handling(app: SandboxApp, label: str, action: Callable[[], None]) -> None:
    """Run `action` once, right after the sandbox applied a request to `label`."""
    _once_around(app, label, action, before=False)


def before_handling(app: SandboxApp, label: str, action: Callable[[], None]) -> None:
    """Run `action` once, right before the sandbox handles a request to `label` (a person
    who acts in the instant between our read and our write)."""
    _once_around(app, label, action, before=True)


def _once_around(app: SandboxApp, label: str, action: Callable[[], None], *, before: bool) -> None:
    route = next(r for r in app.routes if r.label == label)
    original, fired = route.handler, []

    def handler(request: Request) -> Response:
        if before and not fired:
            fired.append(True)
            action()
        response = original(request)
        if not fired:
            fired.append(True)
            action()
        return response

    route.handler = handler


def test_new_records_cross_over_in_both_directions(stack: Stack) -> None:
    stack.start_worker()
    case_id = stack.salesforce.agent.create_case(
        Subject="Printer on fire",
        Status="New",
        Priority="High",
        Origin="Web",
        OwnerId=OWNER_2,
        Description="Smoke everywhere",
    )
    ticket = stack.zenvia.agent.create_ticket(
        "Boleto não chegou", urgency=1, owner_id="agent-1", description="Cliente aguardando"
    )
    stack.settle()

    pushed = ticket_for(stack, "Printer on fire")
    assert (pushed["urgency"]["id"], pushed["ownerId"], pushed["status"]["id"]) == (3, "agent-2", 1)
    assert "Smoke everywhere" in stack.zenvia.actions(str(pushed["id"]))[0]["description"]
    pulled = case_for(stack, "Boleto não chegou")
    assert (pulled["Priority"], pulled["OwnerId"], pulled["Status"]) == ("Low", OWNER_1, "New")
    assert pulled["Zenvia_Ticket_Id__c"] == str(ticket["id"])
    assert stack.salesforce.agent.case(case_id)["Zenvia_Ticket_Id__c"] == str(pushed["id"])
    assert (len(stack.cases()), len(stack.tickets())) == (2, 2)


def test_field_edits_flow_both_ways_and_do_not_echo(stack: Stack) -> None:
    stack.start_worker()
    case_id = stack.salesforce.agent.create_case(
        Subject="VPN down", Status="New", Priority="Low", Origin="Email"
    )
    stack.settle()
    ticket_id = str(ticket_for(stack, "VPN down")["id"])

    stack.salesforce.agent.edit(case_id, Subject="VPN down for everyone", Priority="Medium")
    stack.zenvia.agent.edit(ticket_id, "owner", {"ownerId": "agent-3"})
    stack.zenvia.agent.set_status(ticket_id, 2)
    stack.settle()

    ticket = stack.zenvia.ticket(ticket_id)
    case = stack.salesforce.agent.case(case_id)
    assert (ticket["subject"], ticket["urgency"]["id"]) == ("VPN down for everyone", 2)
    assert (case["OwnerId"], case["Status"]) == ("005000000000003AAA", "Working")

    def writes() -> dict[str, int]:
        zenvia = stack.zenvia_server.counters.by_endpoint
        salesforce = stack.salesforce_server.counters.by_endpoint
        return {
            label: count
            for label, count in [*zenvia.items(), *salesforce.items()]
            if not label.startswith("GET") and "oauth2" not in label
        }

    before = writes()
    stack.settle()
    assert writes() == before, "a sync after a sync writes nothing (echo-free)"


def test_comments_flow_both_ways_keeping_visibility_and_never_echo(stack: Stack) -> None:
    stack.start_worker()
    case_id = stack.salesforce.agent.create_case(Subject="Refund", Status="New", Origin="Web")
    stack.settle()
    ticket_id = str(ticket_for(stack, "Refund")["id"])

    stack.salesforce.agent.add_comment(case_id, "Customer called again", public=True)
    stack.salesforce.agent.add_comment(case_id, "Finance is on it (internal)", public=False)
    stack.zenvia.agent.add_action(ticket_id, "Estorno aprovado", public=True)
    stack.settle()
    stack.settle()

    actions = stack.zenvia.actions(ticket_id)
    public_copy = [a for a in actions if "Customer called again" in a["description"]]
    internal_copy = [a for a in actions if "Finance is on it" in a["description"]]
    assert [a["type"] for a in public_copy] == ["PUBLIC"]
    assert [a["type"] for a in internal_copy] == ["INTERNAL"]
    comments = stack.salesforce.comments(case_id)
    copied = [c for c in comments if "Estorno aprovado" in c["CommentBody"]]
    assert [c["IsPublished"] for c in copied] == [True]
    assert sum("Customer called again" in c["CommentBody"] for c in comments) == 1
    assert sum("Finance is on it" in c["CommentBody"] for c in comments) == 1


def test_a_conflict_follows_the_field_policy(stack: Stack) -> None:
    stack.start_worker()
    case_id = stack.salesforce.agent.create_case(
        Subject="Slow app", Status="New", Priority="Low", Origin="Web"
    )
    stack.settle()
    ticket_id = str(ticket_for(stack, "Slow app")["id"])

    stack.zenvia.agent.edit(ticket_id, "urgency", {"urgency": {"id": 3}})
    stack.salesforce.agent.edit(case_id, Priority="Medium")
    stack.settle()

    assert stack.salesforce.agent.case(case_id)["Priority"] == "Medium"  # priority: crm_wins
    assert stack.zenvia.ticket(ticket_id)["urgency"]["id"] == 2


@pytest.mark.parametrize("direction", ["case-to-ticket", "ticket-to-case"])
def test_a_worker_killed_between_remote_create_and_commit_creates_nothing_twice(
    committed_database_url: str, tmp_path: Path, direction: str
) -> None:
    with running_stack(committed_database_url, tmp_path) as stack:
        worker = stack.start_worker(concurrency=1)
        if direction == "case-to-ticket":
            after_handling(stack.zenvia, "POST /v2/tickets", worker.kill)
            stack.salesforce.agent.create_case(Subject="Crash me", Status="New", Origin="Web")
        else:
            upsert = "PATCH /services/data/{version}/sobjects/Case/{field}/{value}"
            after_handling(stack.salesforce, upsert, worker.kill)
            stack.zenvia.agent.create_ticket("Crash me")
            time.sleep(stack.zenvia.listing_lag.total_seconds() + 0.1)  # until listings show it
        stack.poll()
        stack.workers[0].process.wait(timeout=30)  # the hook killed it mid-sync
        stack.start_worker()
        stack.reconcile()
        stack.settle()
        assert len([t for t in stack.tickets() if t["subject"] == "Crash me"]) == 1
        assert len([c for c in stack.cases() if c["Subject"] == "Crash me"]) == 1
        links = [link for link in stack.links() if link.crm_id and link.zenvia_id]
        assert len(links) == 1


def test_a_worker_killed_after_its_create_was_linked_leaves_a_three_way_merge(
    committed_database_url: str, tmp_path: Path
) -> None:
    """The create's reply linked the new case, then the worker died copying the ticket's
    comment, before the commit. The agent then moves the ticket back to New, and later the
    case's priority is raised: the ticket's status edit must still win, as a change against
    the baselines the create planned, not lose a both-sides conflict to the case edited
    last (found by the 1,000-pair kill-workers chaos run)."""
    with running_stack(committed_database_url, tmp_path) as stack:
        worker = stack.start_worker(concurrency=1)
        comment = "POST /services/data/{version}/sobjects/CaseComment"
        after_handling(stack.salesforce, comment, worker.kill)
        ticket_id = str(
            stack.zenvia.agent.create_ticket("Killed after linking", status=2, description="Oi")[
                "id"
            ]
        )
        time.sleep(stack.zenvia.listing_lag.total_seconds() + 0.1)  # until listings show it
        stack.poll()
        stack.workers[0].process.wait(timeout=30)  # the hook killed it mid-sync
        (case,) = [c for c in stack.cases() if c["Subject"] == "Killed after linking"]
        assert case["Status"] == "Working"

        stack.zenvia.agent.set_status(ticket_id, 1)
        time.sleep(1.1)  # the case's stamp (whole seconds) lands after the ticket's edit
        stack.salesforce.agent.edit(case["Id"], Priority="High")
        stack.start_worker()
        stack.settle()

        ticket = stack.zenvia.ticket(ticket_id)
        assert (ticket["status"]["id"], ticket["urgency"]["id"]) == (1, 3)
        assert stack.salesforce.agent.case(case["Id"])["Status"] == "New"


def test_two_workers_and_duplicate_deliveries_never_double_a_write(stack: Stack) -> None:
    stack.start_worker()
    stack.start_worker()
    case_ids = [
        stack.salesforce.agent.create_case(Subject=f"Bulk {n}", Status="New", Origin="Web")
        for n in range(20)
    ]
    stack.settle()
    assert stack.zenvia_server.counters.by_endpoint["POST /v2/tickets"] == 20

    for case_id in case_ids[:5]:
        stack.salesforce.agent.add_comment(case_id, f"note for {case_id}")
    before = dict(stack.zenvia_server.counters.by_endpoint)
    for _ in range(3):  # every sync delivered three times, concurrently, to two workers
        for case_id in case_ids:
            stack.runtime.enqueue_sync("crm", case_id)
    stack.settle()
    after = stack.zenvia_server.counters.by_endpoint
    assert after["POST /v2/tickets"] == before["POST /v2/tickets"] == 20
    assert (
        after["POST /v2/tickets/{ticket_id}/actions"]
        - before.get("POST /v2/tickets/{ticket_id}/actions", 0)
        == 5
    )
    assert len(stack.tickets()) == 20


def test_a_rate_limited_zenvia_sees_zero_429s(committed_database_url: str, tmp_path: Path) -> None:
    from syncworker.sandbox.server import RateLimit

    overrides = {
        "SYNCWORKER_ZENVIA_RATE_LIMIT": "10",
        "SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS": "3",
        # the creates under test, not a sweep that waits on the same small budget
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": "3600",
    }
    with running_stack(committed_database_url, tmp_path, **overrides) as stack:
        stack.zenvia_server.faults.rate_limit = RateLimit(requests=10, window_seconds=2.5)
        stack.start_worker(concurrency=4)
        for n in range(12):
            stack.salesforce.agent.create_case(Subject=f"Limited {n}", Status="New", Origin="Web")
        stack.settle(timeout=180)
        assert len(stack.tickets()) == 12
        assert stack.zenvia_server.counters.throttled == 0


def test_a_permanent_error_dead_letters_one_record_and_replay_fixes_it(
    committed_database_url: str, tmp_path: Path
) -> None:
    four_agents = dataclasses.replace(DEFAULT_CATALOGUE, agents=DEFAULT_CATALOGUE.agents[:4])
    with running_stack(committed_database_url, tmp_path, catalogue=four_agents) as stack:
        stack.start_worker()
        bad = stack.salesforce.agent.create_case(
            Subject="Owned by agent 5", Status="New", Origin="Web", OwnerId="005000000000005AAA"
        )
        stack.salesforce.agent.create_case(Subject="Fine", Status="New", Origin="Web")
        stack.settle()
        assert [t["subject"] for t in stack.tickets()] == ["Fine"]
        with session_scope(stack.database_url) as session:
            letters = repo.list_dead_letters(session, status="open")
            assert len(letters) == 1
            assert letters[0].record_id == bad
            assert "VALIDATION_ERROR" in letters[0].message
            assert "ownerId" in letters[0].message
            letter_id = letters[0].id
        stack.salesforce.agent.edit(bad, OwnerId=OWNER_1)
        from syncworker.tasks import replay

        assert letter_id is not None
        replay.delay(letter_id)
        stack.settle()
        assert sorted(t["subject"] for t in stack.tickets()) == ["Fine", "Owned by agent 5"]
        with session_scope(stack.database_url) as session:  # the sync that went through
            assert [letter.status for letter in repo.list_dead_letters(session)] == ["replayed"]


def test_changes_while_the_worker_was_down_and_lost_updates_are_recovered(stack: Stack) -> None:
    worker = stack.start_worker()
    case_id = stack.salesforce.agent.create_case(Subject="Down", Status="New", Origin="Web")
    stack.settle()
    ticket_id = str(ticket_for(stack, "Down")["id"])

    worker.stop()
    stack.salesforce.agent.edit(case_id, Subject="Edited while down")
    stack.poll()
    stack.start_worker()
    stack.settle()
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Edited while down"

    stack.salesforce.agent.edit(case_id, Subject="Invisible to polling")
    with session_scope(stack.database_url) as session:  # the poller never sees this edit
        cursor = repo.get_cursor(session, side="crm")
        assert cursor is not None
        from datetime import timedelta

        repo.advance_cursor(
            session, side="crm", watermark=cursor.watermark + timedelta(hours=1), last_id=""
        )
    stack.settle()
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Edited while down"
    stack.reconcile()
    stack.settle()
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Invisible to polling"


def test_a_manual_conflict_parks_the_link_until_an_operator_resolves_it(
    committed_database_url: str, tmp_path: Path
) -> None:
    default = Path("syncworker/mappings/salesforce_zenvia.yaml").read_text()
    manual = default.replace(
        "    zenvia: subject\n    direction: both\n    conflict: newest_wins",
        "    zenvia: subject\n    direction: both\n    conflict: manual",
    )
    assert manual != default
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(manual)
    with running_stack(
        committed_database_url, tmp_path, SYNCWORKER_MAPPING_FILE=str(mapping_file)
    ) as stack:
        stack.start_worker()
        case_id = stack.salesforce.agent.create_case(Subject="Original", Origin="Web")
        stack.settle()
        ticket_id = str(ticket_for(stack, "Original")["id"])
        time.sleep(1.1)  # both edits in a second of their own: the conflict is the subject here

        stack.salesforce.agent.edit(case_id, Subject="Case says")
        stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Ticket says"})
        stack.settle()
        (link,) = stack.links()
        assert (link.state, link.conflict_fields) == ("conflict", ["subject"])
        assert stack.salesforce.agent.case(case_id)["Subject"] == "Case says"
        assert stack.zenvia.ticket(ticket_id)["subject"] == "Ticket says"

        assert link.id is not None
        outcome = sync.resolve_conflict(stack.runtime, link.id, {"subject": "zenvia"})
        assert outcome.state == "active"
        assert stack.salesforce.agent.case(case_id)["Subject"] == "Ticket says"
        stack.settle()
        (link,) = stack.links()
        assert (link.state, link.conflict_fields) == ("active", [])


# -- what a sync reads: our own writes' echoes, the shared budget, syncs without news -----------


def held_poll(stack: Stack) -> list[tuple[Side, str]]:
    """One poll of both sides; the syncs it queues for news are returned instead of sent
    (the comment sweep's are left out)."""
    queued, news = _held_poll(stack)
    return queued[:news]


@contextlib.contextmanager
def holding(stack: Stack) -> Iterator[list[tuple[Side, str]]]:
    """The syncs queued inside the block, held in a list instead of sent."""
    held: list[tuple[Side, str]] = []
    send = stack.runtime.enqueue_sync
    stack.runtime.enqueue_sync = lambda side, record_id: held.append((side, record_id))
    try:
        yield held
    finally:
        stack.runtime.enqueue_sync = send


def _held_poll(stack: Stack) -> tuple[list[tuple[Side, str]], int]:
    """The syncs one poll queues, news first (the sweep queues last), and how many are news.

    It polls a whole second after whatever came before: Salesforce stamps whole seconds, so
    an edit in the second of our last read is only news to a poll made after that second.
    """
    time.sleep(1.0)
    with holding(stack) as held:
        news = sum(outcome.enqueued for outcome in stack.poll())
    return held, news


def sync_here(stack: Stack, queued: list[tuple[Side, str]]) -> None:
    """Run the syncs in this process, one after the other (no worker)."""
    for side, record_id in queued:
        sync.sync_record(stack.runtime, side, record_id)


def settle_here(stack: Stack) -> None:
    """Poll and sync in this process until a poll brings no news (sweeps aside)."""
    for _ in range(10):
        queued, news = _held_poll(stack)
        sync_here(stack, queued)
        if not news:
            return
    raise AssertionError("polls kept finding changes")


def synced_pair(stack: Stack, subject: str) -> tuple[str, str]:
    """A new case and the ticket the in-process syncs made of it: (case id, ticket id)."""
    case_id = stack.salesforce.agent.create_case(Subject=subject, Status="New", Origin="Web")
    settle_here(stack)
    return case_id, str(ticket_for(stack, subject)["id"])


def requests_made(stack: Stack, during: Callable[[], None]) -> dict[str, dict[str, int]]:
    servers = {"zenvia": stack.zenvia_server, "salesforce": stack.salesforce_server}
    before = {name: Counter(server.counters.by_endpoint) for name, server in servers.items()}
    during()
    return {
        name: dict(Counter(server.counters.by_endpoint) - before[name])
        for name, server in servers.items()
    }


@NO_SWEEP
@pytest.mark.parametrize("written", ["ticket", "case"])
def test_the_echo_of_our_own_write_reads_no_ticket_and_only_the_cases_comments(
    stack: Stack, written: str
) -> None:
    """The echo of a case write lists the case's comments (the connector folds their stamps
    into the case's version: ours moved it). The echo of a ticket write reads nothing: an
    action that does not move updatedAt is the sweep's to find, and one that does (a status
    it carries) would show in the fields."""
    case_id, ticket_id = synced_pair(stack, "Echo")
    if written == "ticket":
        stack.salesforce.agent.edit(case_id, Subject="Echo edited")
        assert held_poll(stack) == [("crm", case_id)]
    else:
        stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Echo edited"})
        assert held_poll(stack) == [("zenvia", ticket_id)]
    sync_here(stack, [("crm", case_id)] if written == "ticket" else [("zenvia", ticket_id)])
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Echo edited"
    assert stack.salesforce.agent.case(case_id)["Subject"] == "Echo edited"

    echo = held_poll(stack)
    spent = requests_made(stack, lambda: sync_here(stack, echo))

    if written == "ticket":
        assert echo == [("zenvia", ticket_id)]
        assert spent == {"zenvia": {}, "salesforce": {}}
    else:
        assert echo == [("crm", case_id)]
        assert spent == {"zenvia": {}, "salesforce": {"GET /services/data/{version}/query": 1}}
    assert held_poll(stack) == []


@pytest.mark.parametrize("written", ["ticket", "case"])
def test_a_comment_made_right_after_our_write_still_crosses_over(
    stack: Stack, written: str
) -> None:
    case_id, ticket_id = synced_pair(stack, "Busy")
    if written == "ticket":
        stack.salesforce.agent.edit(case_id, Subject="Busy edited")
        sync_here(stack, held_poll(stack))
        stack.zenvia.agent.add_action(ticket_id, "Right after the write", public=True)
    else:
        stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Busy edited"})
        sync_here(stack, held_poll(stack))
        stack.salesforce.agent.add_comment(case_id, "Right after the write")
    settle_here(stack)

    copies = (
        [c["CommentBody"] for c in stack.salesforce.comments(case_id)]
        if written == "ticket"
        else [a["description"] for a in stack.zenvia.actions(ticket_id)]
    )
    assert sum("Right after the write" in text for text in copies) == 1


def test_a_sync_refused_by_the_zenvia_budget_has_spent_none_of_it(
    committed_database_url: str, tmp_path: Path
) -> None:
    with running_stack(committed_database_url, tmp_path, **limited_zenvia()) as stack:
        gate = stack.runtime.gates["zenvia"]
        case_id = stack.salesforce.agent.create_case(Subject="Budget", Status="New", Origin="Web")
        gate.reset()
        settle_here(stack)
        ticket_id = str(ticket_for(stack, "Budget")["id"])
        stack.salesforce.agent.edit(case_id, Subject="Budget edited")
        queued = held_poll(stack)
        gate.reset()
        for _ in range(9):  # one request left: the plan needs two (the re-read, the PATCH)
            gate.before_request("GET /tickets/{id}")

        before = Counter(stack.zenvia_server.counters.by_endpoint)
        with pytest.raises(RateLimitedError):
            sync_here(stack, queued)
        assert Counter(stack.zenvia_server.counters.by_endpoint) == before

        gate.reset()
        done = requests_made(stack, lambda: sync_here(stack, queued))
        assert done["zenvia"] == {
            "GET /v2/tickets/{ticket_id}": 1,
            "PATCH /v2/tickets/{ticket_id}/attributes/subject": 1,
        }
        assert stack.zenvia.ticket(ticket_id)["subject"] == "Budget edited"


def limited_zenvia(**overrides: str) -> dict[str, str]:
    """Zenvia's business-hours budget (10 a minute; the test stack's business hours are
    always), the sweep once an hour."""
    return {
        "SYNCWORKER_ZENVIA_RATE_LIMIT": "10",
        "SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS": "60",
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": "3600",
        **overrides,
    }


def synced_on_a_budget(stack: Stack, subject: str) -> tuple[str, str]:
    """A new case and its ticket, on a limited Zenvia budget: the create, then its echo, each
    synced here on a fresh window."""
    case_id = stack.salesforce.agent.create_case(Subject=subject, Status="New", Origin="Web")
    for _ in range(2):
        stack.runtime.gates["zenvia"].reset()
        sync_here(stack, held_poll(stack))
    return case_id, str(ticket_for(stack, subject)["id"])


@pytest.mark.parametrize("edited", ["ticket", "case"])
def test_a_change_is_synced_at_a_syncs_priority_while_its_tickets_comment_sweep_is_due(
    committed_database_url: str, tmp_path: Path, edited: str
) -> None:
    """Found by `bench.business_day --capacity`: in business hours nearly every open ticket's
    sweep is due, and a sync of a pair whose sweep was due ran wholly at the sweep's priority,
    so an agent's edit waited with the sweep for the night. Now the edit goes; the sweep's
    own listing waits for its share of the budget (the ticket stays due), unless the ticket's
    version moved, when the sync lists its actions anyway."""
    settings = limited_zenvia(SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="1")
    with running_stack(committed_database_url, tmp_path, **settings) as stack:
        gate = stack.runtime.gates["zenvia"]
        case_id, ticket_id = synced_on_a_budget(stack, "Due")
        if edited == "ticket":
            stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Due edited"})
        else:
            stack.salesforce.agent.edit(case_id, Subject="Due edited")
        gate.reset()
        queued = held_poll(stack)  # a second later: the ticket's sweep is due
        assert queued == [("zenvia", ticket_id) if edited == "ticket" else ("crm", case_id)]
        for _ in range((gate.remaining() or 0) - 4):
            gate.before_request("GET /tickets/{id}")
        assert gate.remaining() == 4  # a sweep may not take them, a sync may

        spent = requests_made(stack, lambda: sync_here(stack, queued))

        assert stack.salesforce.agent.case(case_id)["Subject"] == "Due edited"
        assert stack.zenvia.ticket(ticket_id)["subject"] == "Due edited"
        with session_scope(stack.database_url) as session:
            link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
            assert link is not None
            assert link.comments_due_at is not None
        if edited == "ticket":
            assert spent["zenvia"] == {"GET /v2/tickets/{ticket_id}/actions": 1}
            assert link.comments_due_at > stack.runtime.clock()  # listed: the next sweep later
        else:
            assert spent["zenvia"] == {
                "GET /v2/tickets/{ticket_id}": 1,  # read again before the write
                "PATCH /v2/tickets/{ticket_id}/attributes/subject": 1,
            }
            assert link.comments_due_at <= stack.runtime.clock()  # still due


@NO_SWEEP
def test_a_sync_that_waited_for_the_budget_plans_on_the_polls_read(stack: Stack) -> None:
    """A sync deferred past a poll interval (the budget, a backlog) used to read the ticket
    again although the poll's read was the newest there is: a business day's requests went
    to re-reads. The ticket is read again only before a write to it."""
    case_id, ticket_id = synced_pair(stack, "Waited")
    stack.zenvia.agent.edit(ticket_id, "subject", {"subject": "Waited edited"})
    queued = held_poll(stack)
    assert queued == [("zenvia", ticket_id)]
    time.sleep(stack.settings.poll_interval_seconds + 0.5)  # the poll's read is no longer fresh

    spent = requests_made(stack, lambda: sync_here(stack, queued))

    assert stack.salesforce.agent.case(case_id)["Subject"] == "Waited edited"
    # the actions are listed: the version moved, and an agent often comments with an edit
    assert spent["zenvia"] == {"GET /v2/tickets/{ticket_id}/actions": 1}


def test_a_sync_queued_with_no_news_reads_both_sides_and_finds_a_deletion(stack: Stack) -> None:
    case_id, ticket_id = synced_pair(stack, "Doomed")

    stack.salesforce.agent.delete(case_id)  # no poll sees it: reconcile's orphan check queues this
    sync_here(stack, [("crm", case_id)])

    (link,) = stack.links()
    assert link.state == "orphaned"
    assert stack.zenvia.ticket(ticket_id)["status"]["type"] == "CLOSED"


def test_an_operators_resync_lists_every_comment_even_if_the_version_did_not_move(
    stack: Stack,
) -> None:
    case_id, ticket_id = synced_pair(stack, "Missed")
    stack.salesforce.agent.add_comment(case_id, "Made in the same second as our read")
    with session_scope(stack.database_url) as session:  # as if the case's version had not moved
        link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
        assert link is not None
        assert link.id is not None
        future = stack.runtime.clock() + timedelta(hours=1)
        repo.save_link_state(
            session,
            link_id=link.id,
            expected_revision=link.revision,
            values={"crm_version": future},
        )

    sync.sync_record(stack.runtime, "crm", case_id, fresh=True)

    copies = [a["description"] for a in stack.zenvia.actions(ticket_id)]
    assert sum("Made in the same second as our read" in text for text in copies) == 1


@pytest.mark.stack_settings(SYNCWORKER_POLL_OVERLAP_SECONDS="1")
def test_records_made_on_a_quiet_remote_long_after_the_first_poll_are_found(stack: Stack) -> None:
    """A first poll that finds nothing still pins where the next one starts: a record made
    well past the overlap before the next poll is copied, not left to a reconcile."""
    stack.start_worker()
    assert all(outcome.seen == 0 and outcome.complete for outcome in stack.poll())
    stack.salesforce.agent.create_case(Subject="Quiet case", Status="New", Origin="Web")
    stack.zenvia.agent.create_ticket("Quiet ticket")
    time.sleep(stack.zenvia.listing_lag.total_seconds() + 1.5)  # listed, and past the overlap
    stack.settle()
    assert ticket_for(stack, "Quiet case")
    assert case_for(stack, "Quiet ticket")


@pytest.mark.stack_settings(
    SYNCWORKER_STALE_QUEUED_SECONDS="2", SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600"
)
def test_a_sync_whose_message_a_killed_worker_took_is_sent_again_by_a_poll(stack: Stack) -> None:
    case_id, ticket_id = synced_pair(stack, "Message lost")
    with session_scope(stack.database_url) as session:  # queued; the messages died with a worker
        repo.mark_queued(session, side="crm", remote_ids=[case_id])
        repo.mark_queued(session, side="zenvia", remote_ids=[ticket_id])

    assert held_poll(stack) == [], "not stale yet: its message may still be on its way"
    time.sleep(2)
    stack.runtime.enqueue_sync("zenvia", "waiting")  # a backlog: the message may be in it
    assert held_poll(stack) == [], "a poll sends again only when no sync waits in the broker"
    redis.Redis.from_url(BROKER_URL).delete("sync")
    assert held_poll(stack) == [("crm", case_id), ("zenvia", ticket_id)], "both sides, at once"
    assert held_poll(stack) == [], "sent once: the flag is renewed with the message"
    sync_here(stack, [("crm", case_id), ("zenvia", ticket_id)])
    assert stack.backlog() == 0


@pytest.mark.stack_settings(
    SYNCWORKER_STALE_QUEUED_SECONDS="2", SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600"
)
def test_reconcile_sends_a_lost_sync_again_even_behind_a_backlog(stack: Stack) -> None:
    """On a busy day the sync queue may never be empty when a poll looks: reconcile re-sends a
    sync whose message was lost whatever waits."""
    case_id, _ = synced_pair(stack, "Lost on a busy day")
    with session_scope(stack.database_url) as session:
        repo.mark_queued(session, side="crm", remote_ids=[case_id])
    time.sleep(2)
    stack.runtime.enqueue_sync("zenvia", "waiting")
    sent: list[tuple[Side, str]] = []
    stack.runtime.enqueue_sync = lambda side, record_id: sent.append((side, record_id))
    stack.reconcile()
    assert ("crm", case_id) in sent


@pytest.mark.parametrize("source", ["crm", "zenvia"])
def test_a_copy_found_already_made_is_paired_with_its_true_origin(
    stack: Stack, source: Side
) -> None:
    """A copy an interrupted run wrote (its comment link lost) is paired, not written again,
    and the pair records which side the comment was first written on."""
    case_id, ticket_id = synced_pair(stack, f"Found copy {source}")
    record_ids = {"crm": case_id, "zenvia": ticket_id}
    if source == "crm":
        stack.salesforce.agent.add_comment(case_id, "Written on the case", public=True)
    else:
        stack.zenvia.agent.add_action(ticket_id, "Written on the ticket", public=True)
    (original,) = [
        c
        for c in stack.runtime.connectors[source].list_comments(record_ids[source])
        if c.body.startswith("Written on")
    ]
    copy = engine.copy_text(stack.runtime.mapping, source, original)
    if source == "crm":
        stack.zenvia.agent.add_action(ticket_id, copy, public=True)
    else:
        stack.salesforce.agent.add_comment(case_id, copy, public=True)

    settle_here(stack)

    with session_scope(stack.database_url) as session:
        link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
        assert link is not None
        assert link.id is not None
        pairs = repo.comment_links_for(session, link_id=link.id)
    found = [p for p in pairs if original.id in (p.crm_comment_id, p.zenvia_comment_id)]
    assert [p.origin for p in found] == [source]
    target = "zenvia" if source == "crm" else "crm"
    copies = stack.runtime.connectors[target].list_comments(record_ids[target])
    assert sum(c.body == copy for c in copies) == 1


def test_a_sync_whose_pair_lock_was_lost_stops_before_writing(stack: Stack) -> None:
    """Redis restarted while the sync read the ticket, forgetting every lock: another sync of
    the pair may have read and written since, so this one writes nothing and is retried."""
    case_id, ticket_id = synced_pair(stack, "Lock lost")
    stack.salesforce.agent.edit(case_id, Priority="High")

    def restart_forgets_the_locks() -> None:
        for key in stack.runtime.redis.scan_iter("syncworker:lock:*"):
            stack.runtime.redis.delete(key)

    queued = held_poll(stack)
    before_handling(stack.zenvia, "GET /v2/tickets/{ticket_id}", restart_forgets_the_locks)
    patches = requests_made(stack, lambda: _sync_expecting_stale(stack, queued))["zenvia"]
    assert not any(label.startswith("PATCH") for label in patches), patches
    assert stack.zenvia.ticket(ticket_id)["urgency"]["id"] == 2

    sync_here(stack, queued)  # the retry
    assert stack.zenvia.ticket(ticket_id)["urgency"]["id"] == 3


def _sync_expecting_stale(stack: Stack, queued: list[tuple[Side, str]]) -> None:
    with pytest.raises(sync.StaleLink, match="lost its lock"):
        sync_here(stack, queued)
