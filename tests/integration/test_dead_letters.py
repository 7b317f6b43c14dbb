"""Dead letters: replaying one marks it replayed and queues its record's sync, whichever entry
point asks (the function, the `syncworker.replay` task; the CLI's is in test_cli.py), and
parking one flags its link even when another sync committed the link meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import Session

from syncworker import dead_letters, sync, tasks
from syncworker.connectors.errors import PermanentError
from syncworker.model import LinkState, Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetter, DeadLetterStatus, Link
from tests.conftest import unique_id

pytestmark = pytest.mark.integration


def parked_letter(database_url: str) -> tuple[int, str]:
    record_id = unique_id()
    with session_scope(database_url) as session:
        letter = repo.record_dead_letter(
            session,
            link_id=None,
            side="zenvia",
            record_id=record_id,
            operation="sync",
            error_class="PermanentError",
            message="refused",
        )
        assert letter.id is not None
        return letter.id, record_id


def letter(database_url: str, letter_id: int) -> DeadLetter:
    with session_scope(database_url) as session:
        found = repo.get_dead_letter(session, letter_id)
        assert found is not None
        return found


def test_replay_marks_the_letter_replayed_and_queues_its_sync(database_url: str) -> None:
    letter_id, record_id = parked_letter(database_url)
    queued: list[tuple[Side, str]] = []

    replayed = dead_letters.replay(database_url, letter_id, lambda *sync: queued.append(sync))

    assert replayed == queued[0] == ("zenvia", record_id)
    assert len(queued) == 1
    after = letter(database_url, letter_id)
    assert (after.status, after.replayed_at is not None) == (DeadLetterStatus.REPLAYED, True)


def test_a_queue_that_refuses_leaves_the_letter_open(database_url: str) -> None:
    letter_id, _record_id = parked_letter(database_url)

    def refuse(side: Side, record_id: str) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        dead_letters.replay(database_url, letter_id, refuse)
    assert letter(database_url, letter_id).status == DeadLetterStatus.OPEN


def test_an_unknown_letter_is_a_lookup_error(database_url: str) -> None:
    with pytest.raises(LookupError, match="no dead letter with id 999999"):
        dead_letters.replay(database_url, 999999, lambda side, record_id: None)


def test_the_replay_task_marks_the_letter_replayed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    letter_id, record_id = parked_letter(database_url)
    queued: list[tuple[Side, str]] = []
    runtime = SimpleNamespace(database_url=database_url, enqueue_sync=lambda *s: queued.append(s))
    monkeypatch.setattr(tasks, "get_runtime", lambda: runtime)

    result = tasks.replay.apply(args=(letter_id,)).get()

    assert result == {"dead_letter_id": letter_id, "side": "zenvia", "record_id": record_id}
    assert queued == [("zenvia", record_id)]
    assert letter(database_url, letter_id).status == DeadLetterStatus.REPLAYED


def test_dead_letter_flags_a_link_another_sync_committed_meanwhile(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = unique_id("500")
    with session_scope(database_url) as session:
        link = repo.add_link(
            session, Link(crm_system="salesforce", crm_id=case_id, zenvia_id=unique_id())
        )
        assert link.id is not None
        link_id = link.id
    find_link = repo.find_link

    def read_then_committed_elsewhere(session: Session, **where: Any) -> Link | None:
        found = find_link(session, **where)
        with session_scope(database_url) as other:
            current = other.get(Link, link_id)
            assert current is not None
            assert repo.save_link_state(
                other, link_id=link_id, expected_revision=current.revision, values={}
            )
        return found

    monkeypatch.setattr(repo, "find_link", read_then_committed_elsewhere)
    runtime = SimpleNamespace(
        database_url=database_url, crm_system="salesforce", clock=lambda: datetime.now(UTC)
    )

    sync.dead_letter(
        runtime, "crm", case_id, PermanentError("refused", remote="salesforce"), operation="sync"
    )

    with session_scope(database_url) as session:
        flagged = session.get(Link, link_id)
        assert flagged is not None
        assert (flagged.state, flagged.state_reason) == (LinkState.ERROR, "salesforce: refused")
