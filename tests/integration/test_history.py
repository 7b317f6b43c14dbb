"""A pair's history, as an operator reads it with `syncworker links history`, and its retention."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from syncworker import history
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE
from syncworker.settings import load_settings
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import HistoryEntry, Link
from tests.conftest import unique_id
from tests.integration.cli_processes import cli_env, run_cli
from tests.stack import running_stack

pytestmark = pytest.mark.integration

AGENT_5 = "005000000000005AAA"  # maps to Zenvia's agent-5, missing from a four-agent catalogue


def index_of(rows: list[dict[str, Any]], **wanted: Any) -> int:
    """The position of the first row holding every `wanted` value."""
    for index, row in enumerate(rows):
        if all(row[key] == value for key, value in wanted.items()):
            return index
    raise AssertionError(f"no history row with {wanted}; rows:\n{json.dumps(rows, indent=1)}")


def test_a_pairs_history_tells_its_update_conflict_comment_and_dead_letter_in_order(
    committed_database_url: str, tmp_path: Path
) -> None:
    four_agents = dataclasses.replace(DEFAULT_CATALOGUE, agents=DEFAULT_CATALOGUE.agents[:4])
    with running_stack(committed_database_url, tmp_path, catalogue=four_agents) as stack:
        stack.start_worker()
        agent = stack.salesforce.agent
        case_id = agent.create_case(Subject="Slow app", Status="New", Priority="Low", Origin="Web")
        stack.settle()
        (ticket,) = stack.tickets()
        ticket_id = str(ticket["id"])

        agent.edit(case_id, Subject="Slow app on Mondays")
        stack.settle()
        stack.zenvia.agent.edit(ticket_id, "urgency", {"urgency": {"id": 3}})
        agent.edit(case_id, Priority="Medium")
        stack.settle()
        agent.add_comment(case_id, "Customer called again", public=True)
        stack.settle()
        agent.edit(case_id, OwnerId=AGENT_5)
        stack.settle()

        env = cli_env(stack.env)
        as_json = run_cli("links", "history", case_id, "--json", env=env)
        table = run_cli("links", "history", f"zenvia:{ticket_id}", env=env)

    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    story = [
        index_of(rows, kind="create", side="zenvia", record_id=ticket_id),
        index_of(rows, kind="update", side="zenvia", field="subject", old="Slow app"),
        index_of(rows, kind="conflict", field="priority", detail="crm_wins: crm wins"),
        index_of(rows, kind="update", side="zenvia", field="urgency", old=3, new=2),
        index_of(rows, kind="comment", side="zenvia", new="Customer called again"),
        index_of(rows, kind="error"),
    ]
    assert story == sorted(story), "the history reads oldest first, newest last"
    assert rows[story[1]]["new"] == "Slow app on Mondays"
    assert rows[story[2]]["new"] == {"crm": "Medium", "zenvia": 3}
    assert rows[story[4]]["detail"].startswith("public comment copied from crm comment ")
    error = rows[story[5]]
    assert (error["side"], error["record_id"]) in {("crm", case_id), ("zenvia", ticket_id)}
    assert "VALIDATION_ERROR" in error["detail"]
    assert "ownerId" in error["detail"]
    assert error["new"]["status"] == 400

    assert table.returncode == 0, table.stderr
    assert re.search(r"update\s*│\s*zenvia\s*│.*│\s*subject\s*│\s*\"Slow app\" →", table.stdout)
    assert "crm_wins: crm wins" in table.stdout
    last_row = [line for line in table.stdout.splitlines() if re.match(r"│ \d{4}-", line)][-1]
    # (the ticket's own sync, queued by the same edit, may dead-letter too: both are errors)
    assert re.search(r"│\s*error\s*│\s*(crm|zenvia)\s*│", last_row), table.stdout


def test_links_history_of_an_unknown_record_fails_in_one_line(committed_database_url: str) -> None:
    from syncworker.store import migrate

    migrate.upgrade(committed_database_url)
    env = cli_env({"SYNCWORKER_DATABASE_URL": committed_database_url})
    result = run_cli("links", "history", "crm:500xx0000404", env=env)
    assert result.returncode == 2
    assert "no link for 'crm:500xx0000404' (tried crm ids)" in result.stderr
    assert "Traceback" not in result.stderr


def test_history_older_than_the_retention_is_pruned_and_the_rest_kept(session: Session) -> None:
    link = repo.add_link(session, Link(crm_system="salesforce", crm_id=unique_id("500")))
    assert link.id is not None
    now = datetime(2026, 6, 1, tzinfo=UTC)
    retention = load_settings({}).history_retention_days
    assert retention == 90

    def entry(age: timedelta, detail: str) -> HistoryEntry:
        return history.Entry("update", "crm", link.crm_id, detail=detail).row(
            link_id=link.id or 0, at=now - age
        )

    repo.append_history(
        session,
        rows=[
            entry(timedelta(days=91), "too old"),
            entry(timedelta(days=89, hours=23), "just inside"),
            entry(timedelta(0), "today"),
        ],
    )
    assert history.prune(session, now=now, retention_days=retention) >= 1
    kept = [row.detail for row in repo.history_of(session, link_id=link.id)]
    assert kept == ["just inside", "today"]


def test_pruning_on_sqlite_commits_on_its_own(sqlite_url: str) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with session_scope(sqlite_url) as session:
        link = repo.add_link(session, Link(crm_system="salesforce", crm_id=unique_id("500")))
        assert link.id is not None
        old = history.Entry("update", "crm", link.crm_id, detail="old")
        repo.append_history(session, rows=[old.row(link_id=link.id, at=now - timedelta(days=2))])
        link_id = link.id
    assert history.prune_expired(sqlite_url, now=now, retention_days=1) == 1
    with session_scope(sqlite_url) as session:
        assert list(repo.history_of(session, link_id=link_id)) == []
