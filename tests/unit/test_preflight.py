"""The pure judgements of `syncworker check` (the probes feeding them are tested end to end in
tests/integration/test_check.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncworker import preflight
from syncworker.connectors import salesforce_preflight
from syncworker.mapping import load_default
from syncworker.preflight_probes import probe_database


def test_a_redis_that_refuses_config_get_cannot_be_verified_and_does_not_block() -> None:
    item = preflight.judge_eviction_policy("rediss://cache.example:6380/0", None)

    assert item.status == "warn"
    assert "cannot verify maxmemory-policy (CONFIG GET refused)" in item.message
    assert "noeviction" in item.fix
    assert not preflight.Checklist([item]).blocked


def test_an_evicting_redis_blocks_with_the_setting_to_change() -> None:
    item = preflight.judge_eviction_policy("redis://r:6379/0", "volatile-lru")

    assert item.status == "fail"
    assert "maxmemory-policy volatile-lru" in item.message
    assert preflight.Checklist([item]).as_dict()["ok"] is False


def test_an_item_that_is_not_ok_refuses_to_exist_without_its_fix() -> None:
    with pytest.raises(ValueError, match="salesforce/login: a fail item needs its fix"):
        preflight.Item("salesforce", "login", "fail", "refused")


def test_an_id_that_is_not_a_salesforce_id_is_named_and_never_looked_up() -> None:
    owners = [
        salesforce_preflight.OwnerId("005xyz", None, "not a Salesforce id (15 or 18 …): '005xyz'")
    ]

    (item,) = salesforce_preflight.judge_owner_ids(owners, users={}, queues=[])

    assert item.status == "fail"
    assert "005xyz" in item.message


def test_an_inactive_user_blocks_because_salesforce_refuses_it_as_an_owner() -> None:
    owner = salesforce_preflight.OwnerId("005000000000001AAA", "005000000000001AAA")

    (item,) = salesforce_preflight.judge_owner_ids([owner], users={owner.written: False}, queues=[])

    assert item.status == "fail"
    assert "inactive" in item.message


@pytest.mark.parametrize(
    ("remaining", "status"),
    [(10_000, "fail"), (10_001, "ok")],
    ids=["inside-the-reserve", "above-the-reserve"],
)
def test_the_daily_quota_blocks_once_only_the_reserve_is_left(remaining: int, status: str) -> None:
    limits = {"DailyApiRequests": {"Max": 100_000, "Remaining": remaining}}

    assert salesforce_preflight.judge_quota(limits, 0.1).status == status


def test_limits_without_the_daily_quota_cannot_be_verified() -> None:
    assert salesforce_preflight.judge_quota({"DataStorageMB": {}}, 0.1).status == "warn"


def test_the_shipped_mapping_names_every_zenvia_id_kind_it_writes() -> None:
    named = preflight.zenvia_ids_named(load_default("salesforce"))

    assert named["status"] == {1, 2, 3, 4, 5, 6}
    assert named["justification"] == {11, 12, 13}
    assert named["urgency"] == {1, 2, 3, 4}
    assert named["agent"] == {f"agent-{n}" for n in range(1, 6)}
    assert "team" not in named


def test_zenvia_ids_on_listed_tickets_pass_and_the_others_cannot_be_verified() -> None:
    tickets: list[dict[str, Any]] = [{"status": 1, "ownerId": "agent-1"}]
    seen = preflight.zenvia_ids_seen(tickets)

    items = preflight.judge_zenvia_ids({"status": {1}, "agent": {"agent-1", "agent-9"}}, seen, 1)

    by_name = {item.name: item for item in items}
    assert by_name["status ids"].status == "ok"
    assert by_name["agent ids"].status == "warn"
    assert "cannot verify agent-9" in by_name["agent ids"].message


EDITED = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def sample(ticket_id: str, action_after: float | None) -> preflight.ActionSample:
    """A ticket edited at EDITED whose newest action came `action_after` seconds later."""
    newest = None if action_after is None else EDITED + timedelta(seconds=action_after)
    return preflight.ActionSample(ticket_id, EDITED, newest)


@pytest.mark.parametrize("setting", [False, True])
def test_an_action_stamped_after_its_tickets_updated_at_proves_actions_do_not_move_it(
    setting: bool,
) -> None:
    samples = [sample("7", None), sample("8", -30), sample("9", 90)]

    item = preflight.judge_actions_move_updated_at(samples, setting=setting)

    proof = "ticket 9 has an action at 2026-12-01T14:01:30+00:00 after its updatedAt"
    assert proof in item.message
    if setting:
        assert item.status == "fail"
        assert "comments added in Zenvia would not sync" in item.message
        assert item.fix.startswith("unset SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT")
    else:
        assert item.status == "ok"
        assert "the comment sweep finds comments added in Zenvia" in item.message


@pytest.mark.parametrize("setting", [False, True])
def test_an_action_within_a_second_of_updated_at_may_be_the_edit_and_proves_nothing(
    setting: bool,
) -> None:
    """A status carried by an action, a new ticket's first action, whole-second stamps."""
    samples = [sample("7", 0), sample("8", 1), sample("9", None)]

    item = preflight.judge_actions_move_updated_at(samples, setting=setting)

    assert item.status == "ok"
    assert "none of 3 sampled ticket(s) has an action after its updatedAt" in item.message
    hint = "SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT=true stops the comment sweep"
    assert (hint in item.message) is not setting


def test_a_missing_sqlite_file_is_named_and_never_created(tmp_path: Path) -> None:
    path = tmp_path / "mapping.sqlite3"

    (item,) = probe_database(f"sqlite:///{path}")

    assert (item.status, item.message) == ("fail", f"{path} does not exist")
    assert "syncworker db upgrade" in item.fix
    assert not path.exists()


def test_the_client_lookup_field_must_be_a_field_of_case() -> None:
    describe = {"fields": [{"name": "Subject"}, {"name": "ContactEmail"}]}

    found = salesforce_preflight.judge_client_lookup(describe, "ContactEmail")
    missing = salesforce_preflight.judge_client_lookup(describe, "Contact_Mail__c")

    assert (found.status, found.message) == (
        "ok",
        "Case.ContactEmail gives a new ticket's contact",
    )
    assert missing.status == "fail"
    assert "Case has no field Contact_Mail__c" in missing.message
    assert "client_lookup" in missing.fix
