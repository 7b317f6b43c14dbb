"""Bad input end to end: one record a remote serves malformed, or whose text cannot be copied,
is dead-lettered with a reason a person understands, and every other record keeps syncing.

Real worker, Postgres, Redis; the sandboxes' `rewrite_next_response` hooks corrupt one ticket in
every answer that carries it, as a remote with one broken record would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncworker.sandbox.server import Response
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetter
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.integration

FOREVER = 1_000_000


@pytest.fixture
def stack(chaos_database: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    with running_stack(chaos_database[1], tmp_path) as running:
        yield running


def settle_as_far_as_possible(stack: Stack, timeout: float = 20.0) -> str | None:
    """settle(), but a record stuck for good is what these tests look at, not a failure here."""
    try:
        stack.settle(timeout=timeout)
    except AssertionError as stuck:
        return str(stuck)
    return None


def open_letters(stack: Stack) -> list[DeadLetter]:
    with session_scope(stack.database_url) as session:
        return list(repo.list_dead_letters(session, status="open"))


def subjects(records: list[dict[str, Any]], key: str) -> set[str]:
    return {str(record[key]) for record in records}


def corrupt_ticket(stack: Stack, ticket_id: str) -> None:
    """Every answer that carries this ticket carries it with a status id that is not a number."""

    def broken(ticket: Any) -> Any:
        if isinstance(ticket, dict) and str(ticket.get("id")) == ticket_id:
            return {**ticket, "status": {**ticket["status"], "id": "two"}}
        return ticket

    def rewrite(response: Response) -> Response:
        body = response.body
        response.body = [broken(t) for t in body] if isinstance(body, list) else broken(body)
        return response

    for label in ("GET /v2/tickets", "GET /v2/tickets/{ticket_id}"):
        stack.zenvia.rewrite_next_response(label, rewrite, times=FOREVER)


def test_a_ticket_served_malformed_is_dead_lettered_and_the_others_keep_syncing(
    stack: Stack,
) -> None:
    stack.start_worker()
    bad = str(stack.zenvia.agent.create_ticket("Served malformed", urgency=1)["id"])
    stack.zenvia.agent.create_ticket("Served fine", urgency=2)
    stack.salesforce.agent.create_case(Subject="From the CRM", Status="New", Origin="Web")
    corrupt_ticket(stack, bad)
    stuck = settle_as_far_as_possible(stack)
    stack.zenvia.agent.create_ticket("Created later", urgency=3)
    stuck = settle_as_far_as_possible(stack) or stuck
    with contextlib.suppress(Exception):
        stack.reconcile()
    stuck = settle_as_far_as_possible(stack) or stuck

    cases = subjects(stack.cases(), "Subject")
    assert {"Served fine", "Created later"} <= cases, (
        f"one malformed ticket stopped every other ticket from syncing ({stuck}); "
        f"cases: {sorted(cases)}"
    )
    assert "Served malformed" not in cases
    assert "From the CRM" in subjects(stack.tickets(), "subject")
    letters = [letter for letter in open_letters(stack) if letter.record_id == bad]
    assert len(letters) == 1, "the malformed ticket should be parked as a dead letter"
    assert letters[0].error_class == "MalformedResponseError"
    assert "status.id" in letters[0].message
    assert "not an integer" in letters[0].message


def test_a_comment_whose_text_cannot_be_copied_is_dead_lettered_and_the_others_keep_syncing(
    stack: Stack,
) -> None:
    """Half an emoji ("\\ud83d") is legal in Zenvia's JSON but cannot be written as UTF-8."""
    stack.start_worker()
    broken_case = stack.salesforce.agent.create_case(
        Subject="Emoji cut in half", Status="New", Origin="Web"
    )
    other_case = stack.salesforce.agent.create_case(Subject="Other", Status="New", Origin="Web")
    stack.settle()
    ticket = next(t for t in stack.tickets() if t["subject"] == "Emoji cut in half")
    ticket_id = str(ticket["id"])

    stack.zenvia.agent.add_action(ticket_id, "Cliente enviou \ud83d", public=True)
    stack.salesforce.agent.edit(other_case, Subject="Other, edited")
    stuck = settle_as_far_as_possible(stack)

    assert "Other, edited" in subjects(stack.tickets(), "subject")
    letters = [
        letter
        for letter in open_letters(stack)
        if (letter.side, letter.record_id) in {("zenvia", ticket_id), ("crm", broken_case)}
    ]
    assert len(letters) == 1, (
        f"the uncopyable comment should park its record as a dead letter ({stuck}; backlog "
        f"{stack.backlog()}; worker errors: "
        f"{[line[:160] for line in stack.workers[0].log().splitlines() if 'unexpected' in line]})"
    )
    assert letters[0].error_class in {"PermanentError", "MalformedResponseError"}
    assert any(word in letters[0].message for word in ("UTF-8", "encode", "surrogate"))
