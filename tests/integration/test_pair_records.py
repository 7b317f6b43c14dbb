"""Pairing two existing records (`repo.pair_records`, used by onboarding and `links import`):
a half link is completed, a record linked elsewhere is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from syncworker.model import Side
from syncworker.store import repo
from syncworker.store.tables import Link
from tests.conftest import unique_id

SF = "salesforce"


@pytest.fixture
def db(session: Session) -> Session:
    """Postgres, rolled back after each test (add_link and create_link, which this builds on,
    are proven on SQLite too in test_store.py)."""
    return session


def synced_half_link(
    db: Session, *, crm_id: str | None = None, zenvia_id: str | None = None
) -> Link:
    """A record a sync saw and left alone (out of scope): a half link with a baseline."""
    side: Side = "crm" if crm_id else "zenvia"
    link = repo.create_link(db, side=side, remote_id=crm_id or zenvia_id or "", crm_system=SF)
    assert link.id is not None
    values = {
        "crm_baseline": {"Status": "Closed"},
        "last_synced_at": datetime(2026, 3, 1, tzinfo=UTC),
    }
    assert repo.save_link_state(db, link_id=link.id, expected_revision=0, values=values)
    db.refresh(link)
    return link


def test_two_records_nobody_linked_get_one_link_without_baselines(db: Session) -> None:
    case_id, ticket_id = unique_id("500"), unique_id()
    link = repo.pair_records(db, crm_system=SF, crm_id=case_id, zenvia_id=ticket_id)
    assert (link.crm_id, link.zenvia_id, link.crm_baseline, link.last_synced_at) == (
        case_id,
        ticket_id,
        None,
        None,
    )


@pytest.mark.parametrize("seen", ["crm", "zenvia"])
def test_a_half_link_is_completed_and_forgets_its_baseline_so_the_first_sync_merges(
    db: Session, seen: str
) -> None:
    case_id, ticket_id = unique_id("500"), unique_id()
    half = synced_half_link(
        db, **({"crm_id": case_id} if seen == "crm" else {"zenvia_id": ticket_id})
    )
    link = repo.pair_records(db, crm_system=SF, crm_id=case_id, zenvia_id=ticket_id)
    assert link.id == half.id
    assert (link.crm_id, link.zenvia_id) == (case_id, ticket_id)
    assert (link.crm_baseline, link.zenvia_baseline, link.last_synced_at) == (None, None, None)


def test_a_record_linked_to_another_record_is_refused(db: Session) -> None:
    case_id, ticket_id = unique_id("500"), unique_id()
    repo.pair_records(db, crm_system=SF, crm_id=case_id, zenvia_id=ticket_id)
    for crm_id, zenvia_id in (
        (case_id, unique_id()),
        (unique_id("500"), ticket_id),
        (case_id, ticket_id),
    ):
        with pytest.raises(repo.DuplicateLinkError, match="is already linked"):
            repo.pair_records(db, crm_system=SF, crm_id=crm_id, zenvia_id=zenvia_id)


def test_two_half_links_are_refused_rather_than_merged(db: Session) -> None:
    case_id, ticket_id = unique_id("500"), unique_id()
    synced_half_link(db, crm_id=case_id)
    synced_half_link(db, zenvia_id=ticket_id)
    with pytest.raises(repo.DuplicateLinkError, match="already linked"):
        repo.pair_records(db, crm_system=SF, crm_id=case_id, zenvia_id=ticket_id)


def test_a_half_link_whose_counterpart_a_create_may_be_making_is_refused(db: Session) -> None:
    case_id, ticket_id = unique_id("500"), unique_id()
    half = synced_half_link(db, crm_id=case_id)
    key = unique_id("create-")
    repo.begin_intent(db, key=key, link_id=half.id, side="zenvia", kind="create", source_id=case_id)
    with pytest.raises(repo.DuplicateLinkError, match="already linked"):
        repo.pair_records(db, crm_system=SF, crm_id=case_id, zenvia_id=ticket_id)
