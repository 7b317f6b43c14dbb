"""The mapping store enforces its invariants in the database, on Postgres and SQLite alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from syncworker.model import RemoteRecord
from syncworker.store import repo
from syncworker.store.db import get_engine
from syncworker.store.tables import DeadLetterStatus, Link
from tests.conftest import unique_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Session]:
    if request.param == "postgres":
        yield request.getfixturevalue("session")
    else:
        with Session(get_engine(sqlite_url)) as session:
            yield session
            session.rollback()


def test_a_second_link_for_the_same_case_is_refused_with_a_clear_error(db: Session) -> None:
    case_id = unique_id("500")
    repo.add_link(db, Link(crm_system="salesforce", crm_id=case_id, zenvia_id=unique_id()))
    with pytest.raises(
        repo.DuplicateLinkError, match=f"salesforce case {case_id} .* already linked"
    ):
        repo.add_link(db, Link(crm_system="salesforce", crm_id=case_id, zenvia_id=unique_id()))


def test_a_second_link_for_the_same_ticket_is_refused(db: Session) -> None:
    ticket_id = unique_id()
    repo.add_link(db, Link(crm_system="salesforce", crm_id=unique_id("500"), zenvia_id=ticket_id))
    with pytest.raises(repo.DuplicateLinkError, match=f"Zenvia ticket {ticket_id}"):
        repo.add_link(
            db, Link(crm_system="salesforce", crm_id=unique_id("500"), zenvia_id=ticket_id)
        )


def test_the_unique_constraint_holds_even_without_the_repository(db: Session) -> None:
    ticket_id = unique_id()
    db.add(Link(crm_system="salesforce", crm_id=unique_id(), zenvia_id=ticket_id))
    db.add(Link(crm_system="salesforce", crm_id=unique_id(), zenvia_id=ticket_id))
    with pytest.raises(IntegrityError):
        db.flush()


def test_creating_a_half_link_twice_returns_the_same_link(db: Session) -> None:
    case_id = unique_id("500")
    first = repo.create_link(db, side="crm", remote_id=case_id, crm_system="salesforce")
    second = repo.create_link(db, side="crm", remote_id=case_id, crm_system="salesforce")
    assert first.id == second.id
    assert second.zenvia_id is None


def test_a_stale_writer_cannot_overwrite_a_newer_link_state(db: Session) -> None:
    link = repo.create_link(db, side="zenvia", remote_id=unique_id(), crm_system="salesforce")
    assert link.id is not None
    assert repo.save_link_state(db, link_id=link.id, expected_revision=0, values={"crm_id": "A"})
    assert not repo.save_link_state(
        db, link_id=link.id, expected_revision=0, values={"crm_id": "B"}
    )
    db.expire_all()
    stored = repo.get_link(db, link.id)
    assert stored is not None
    assert (stored.crm_id, stored.revision) == ("A", 1)


def test_cursors_only_move_forward(db: Session) -> None:
    side = "zenvia"
    repo.advance_cursor(db, side=side, watermark=T0, last_id="10")
    repo.advance_cursor(db, side=side, watermark=T0, last_id="11")
    with pytest.raises(repo.CursorRegression, match="zenvia cursor would move back"):
        repo.advance_cursor(db, side=side, watermark=T0 - timedelta(seconds=1), last_id="99")
    cursor = repo.get_cursor(db, side=side)
    assert cursor is not None
    assert (cursor.watermark, cursor.last_id) == (T0, "11")


def test_observations_coalesce_edits_while_a_sync_is_queued(db: Session) -> None:
    rid = unique_id()
    assert repo.observe(db, side="crm", record=RemoteRecord(rid, T0, {"Subject": "a"}))
    repo.mark_queued(db, side="crm", remote_ids=[rid])
    later = T0 + timedelta(minutes=1)
    assert not repo.observe(db, side="crm", record=RemoteRecord(rid, later, {"Subject": "b"}))
    assert not repo.finish_sync(db, side="crm", remote_id=rid, version=later)
    assert not repo.observe(db, side="crm", record=RemoteRecord(rid, later, {"Subject": "b"}))
    observation = repo.get_observation(db, side="crm", remote_id=rid)
    assert observation is not None
    assert (observation.payload, observation.sync_queued_at) == ({"Subject": "b"}, None)
    assert repo.observe(db, side="crm", record=RemoteRecord(rid, later + timedelta(seconds=1), {}))


def test_a_version_seen_during_a_sync_keeps_it_queued_for_one_more_sync(db: Session) -> None:
    rid = unique_id()
    repo.observe(db, side="zenvia", record=RemoteRecord(rid, T0, {}))
    repo.mark_queued(db, side="zenvia", remote_ids=[rid])
    newer = T0 + timedelta(seconds=5)
    repo.observe(db, side="zenvia", record=RemoteRecord(rid, newer, {}))
    assert repo.finish_sync(db, side="zenvia", remote_id=rid, version=T0)
    observation = repo.get_observation(db, side="zenvia", remote_id=rid)
    assert observation is not None
    assert observation.sync_queued_at is not None
    assert observation.synced_version == T0


def test_an_older_observation_never_replaces_a_newer_one(db: Session) -> None:
    rid = unique_id()
    repo.observe(db, side="zenvia", record=RemoteRecord(rid, T0, {"subject": "new"}))
    older = RemoteRecord(rid, T0 - timedelta(hours=1), {"subject": "old"})
    repo.observe(db, side="zenvia", record=older)
    observation = repo.get_observation(db, side="zenvia", remote_id=rid)
    assert observation is not None
    assert (observation.version, observation.payload) == (T0, {"subject": "new"})


def test_intents_are_idempotent_on_their_key_and_count_attempts(db: Session) -> None:
    key = unique_id()
    first = repo.begin_intent(
        db, key=key, link_id=None, side="zenvia", kind="create", source_id="c"
    )
    repo.count_attempt(db, key=key)
    repo.count_attempt(db, key=key)
    repo.count_attempt(db, key=key, delta=-1)
    again = repo.begin_intent(
        db, key=key, link_id=None, side="zenvia", kind="create", source_id="c"
    )
    db.refresh(again)
    assert first.id == again.id
    assert again.attempts == 1
    repo.complete_intent(db, key=key, remote_id="123")
    intent = repo.get_intent(db, key=key)
    assert intent is not None
    assert (intent.status, intent.remote_id) == ("done", "123")


def test_comment_links_are_recorded_once(db: Session) -> None:
    link = repo.create_link(db, side="crm", remote_id=unique_id(), crm_system="salesforce")
    assert link.id is not None
    crm_comment, action = unique_id(), unique_id()
    for _ in range(2):
        repo.link_comments(
            db, link_id=link.id, crm_comment_id=crm_comment, zenvia_comment_id=action, origin="crm"
        )
    assert len(repo.comment_links_for(db, link_id=link.id)) == 1


def test_a_recurring_failure_reopens_one_dead_letter_and_counts_attempts(db: Session) -> None:
    rid = unique_id()
    for message in ("first failure", "second failure"):
        letter = repo.record_dead_letter(
            db,
            link_id=None,
            side="zenvia",
            record_id=rid,
            operation="update",
            error_class="PermanentError",
            message=message,
            remote_status=400,
            remote_code="VALIDATION_ERROR",
        )
        assert letter.id is not None
        repo.close_dead_letter(db, letter_id=letter.id, status=DeadLetterStatus.DISCARDED)
    letter = repo.record_dead_letter(
        db,
        link_id=None,
        side="zenvia",
        record_id=rid,
        operation="update",
        error_class="PermanentError",
        message="third",
    )
    assert (letter.attempts, letter.status, letter.message) == (3, "open", "third")


def test_an_intent_remembers_when_each_send_that_may_have_reached_the_remote_began(
    db: Session,
) -> None:
    key = unique_id()
    intent = repo.begin_intent(
        db, key=key, link_id=None, side="zenvia", kind="create", source_id="c"
    )
    assert repo.attempt_times(intent) == []
    repo.count_attempt(db, key=key)
    repo.count_attempt(db, key=key)
    repo.count_attempt(db, key=key, delta=-1)  # refused unsent: that send is forgotten
    repo.count_attempt(db, key=key)

    intent = repo.get_intent(db, key=key)
    assert intent is not None
    db.refresh(intent)
    times = repo.attempt_times(intent)
    assert intent.attempts == len(times) == 2
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)


def test_a_poll_observing_a_record_a_sync_inserts_meanwhile_does_not_fail(
    session: Session, database_url: str
) -> None:
    """A sync's first read inserts the record's observation while a poll is observing it: the
    poll's one read of what is stored sees the row whole or not at all (found by the
    flaky-remotes chaos run at 1,000 pairs, as a KeyError that stopped the poll)."""
    rid = unique_id()
    inserted: list[bool] = []

    def a_sync_commits_meanwhile(_conn: object, _cur: object, statement: str, *_: object) -> None:
        if inserted or "FROM observations" not in statement:
            return
        inserted.append(True)
        with Session(get_engine(database_url)) as sync:
            repo.observe(sync, side="crm", record=RemoteRecord(rid, T0, {"Subject": "a"}))
            sync.commit()

    bind = session.connection()
    event.listen(bind, "after_cursor_execute", a_sync_commits_meanwhile)
    try:
        due = repo.observe_many(
            session,
            side="crm",
            records=[RemoteRecord(rid, T0, {"Subject": "b"})],
            compare_payloads=True,
        )
    finally:
        event.remove(bind, "after_cursor_execute", a_sync_commits_meanwhile)
    assert inserted
    assert due == [rid]
