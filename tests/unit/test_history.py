"""A pair's history entries, from the plans the engine makes against the default mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from syncworker import engine
from syncworker.history import Entry, of_dead_letter, of_sync
from syncworker.mapping import from_data, load_default
from syncworker.model import RemoteComment, RemoteRecord
from syncworker.store.tables import DeadLetter

MAPPING = load_default("salesforce")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CASE = {"Subject": "Printer jams", "Status": "Working", "Priority": "Medium", "Origin": "Web"}
TICKET = {"subject": "Printer jams", "status": 2, "urgency": 2, "type": "PUBLIC"}
IN_SYNC = engine.LinkSnapshot(
    "500A", "77", MAPPING.project("crm", CASE), MAPPING.project("zenvia", TICKET)
)
IDS = {"crm": "500A", "zenvia": "77"}


def case(seconds: int = 0, **changes: Any) -> RemoteRecord:
    return RemoteRecord("500A", T0 + timedelta(seconds=seconds), {**CASE, **changes})


def ticket(seconds: int = 0, **changes: Any) -> RemoteRecord:
    return RemoteRecord("77", T0 + timedelta(seconds=seconds), {**TICKET, **changes})


def story(crm: RemoteRecord, zenvia: RemoteRecord, **inputs: Any) -> list[Entry]:
    plan = engine.plan(MAPPING, link=IN_SYNC, crm=crm, zenvia=zenvia, **inputs)
    return of_sync(
        plan, records={"crm": crm, "zenvia": zenvia}, record_ids=IDS, previous_state="active"
    )


def test_a_field_edited_on_one_side_is_written_with_its_old_and_new_value() -> None:
    (entry,) = story(case(Subject="Printer on fire"), ticket())
    assert entry == Entry("update", "zenvia", "77", "subject", "Printer jams", "Printer on fire")


def test_a_status_write_does_not_list_the_justification_that_rides_with_it() -> None:
    entries = story(case(Status="On Hold"), ticket())
    assert [(e.kind, e.side, e.field, e.old, e.new) for e in entries] == [
        ("update", "zenvia", "status", 2, 3)
    ]


def test_a_conflict_names_its_policy_its_winner_and_both_values() -> None:
    entries = story(case(5, Priority="High"), ticket(9, urgency=1))
    conflict = next(e for e in entries if e.kind == "conflict")
    assert conflict.field == "priority"
    assert conflict.side == "crm"
    assert conflict.new == {"crm": "High", "zenvia": 1}
    assert conflict.detail == "crm_wins: crm wins"
    write = next(e for e in entries if e.kind == "update")
    assert (write.side, write.field, write.old, write.new) == ("zenvia", "urgency", 1, 3)


def test_a_copied_comment_says_where_it_came_from_and_a_first_line() -> None:
    comment = RemoteComment("00aX", "500A", "Customer called again\nsecond line", True, T0)
    (entry,) = story(case(), ticket(), crm_comments=[comment])
    assert (entry.kind, entry.side, entry.record_id) == ("comment", "zenvia", "77")
    assert entry.new == "Customer called again"
    assert entry.detail == "public comment copied from crm comment 00aX"


def test_a_create_names_the_new_record_and_its_source() -> None:
    crm = case()
    plan = engine.plan(MAPPING, link=None, crm=crm, zenvia=None)
    entries = of_sync(
        plan, records={"crm": crm, "zenvia": None}, record_ids=IDS, previous_state="active"
    )
    create = entries[0]
    assert (create.kind, create.side, create.record_id) == ("create", "zenvia", "77")
    assert create.detail == "created from crm 500A"
    assert create.new["subject"] == "Printer jams"


def test_a_parked_conflict_records_the_state_change_and_why() -> None:
    data = MAPPING.model_dump(exclude_unset=True)
    data["fields"]["subject"]["conflict"] = "manual"
    manual = from_data(data)
    crm, zenvia = case(Subject="A"), ticket(subject="B")
    plan = engine.plan(manual, link=IN_SYNC, crm=crm, zenvia=zenvia)
    entries = of_sync(
        plan, records={"crm": crm, "zenvia": zenvia}, record_ids=IDS, previous_state="active"
    )
    assert [(e.kind, e.detail) for e in entries] == [
        ("conflict", "manual: parked until an operator resolves it"),
        ("state", "manual conflict on subject"),
    ]
    assert (entries[1].old, entries[1].new) == ("active", "conflict")


def test_the_echo_of_our_own_write_tells_nothing() -> None:
    assert story(case(), ticket()) == []


def test_a_dead_letter_keeps_the_remotes_own_message_and_status() -> None:
    letter = DeadLetter(
        side="crm",
        record_id="500B",
        operation="sync",
        error_class="PermanentError",
        message="zenvia 400 VALIDATION_ERROR: ownerId is not an agent",
        remote_status=400,
        remote_code="VALIDATION_ERROR",
    )
    entry = of_dead_letter(letter)
    assert (entry.kind, entry.side, entry.record_id) == ("error", "crm", "500B")
    assert entry.new == {"status": 400, "code": "VALIDATION_ERROR"}
    assert entry.detail == (
        "sync failed (PermanentError): zenvia 400 VALIDATION_ERROR: ownerId is not an agent"
    )


def test_a_copy_an_interrupted_sync_made_is_told_when_it_is_paired() -> None:
    original = RemoteComment("00aX", "500A", "Customer called again", True, T0)
    copy = RemoteComment("a-9", "77", engine.copy_text(MAPPING, "crm", original), True, T0)
    (entry,) = story(case(), ticket(), crm_comments=[original], zenvia_comments=[copy])
    assert entry.kind == "comment"
    assert entry.detail == (
        "paired crm comment 00aX with zenvia comment a-9: copied by an earlier, interrupted sync"
    )
