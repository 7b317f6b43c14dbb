"""`syncworker check` run as a separate process against both sandboxes over real sockets,
real Postgres and real Redis: one clean pass, then one run per misconfiguration, each showing
its ✗ line, its fix and exit code 1."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from syncworker.sandbox.salesforce import OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from tests.conftest import create_throwaway_database, drop_database
from tests.integration.cli_processes import cli_env, free_port, run_cli
from tests.stack import BROKER_URL, SF_CLIENT_ID, SF_CLIENT_SECRET, ZENVIA_TOKEN, stack_settings

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).parents[2] / "syncworker" / "mappings" / "salesforce_zenvia.yaml"
AGENT_5 = "005000000000005AAA"
# A new org's Case.Type holds Mechanical, Electrical, …: its admin adds what the shipped
# mapping writes (without them `check` shows the ✗ this file tests with Priority).
ADDED_TYPES = {"Type": ("Question", "Problem", "Feature Request")}


class Sandboxes:
    """Both sandboxes served on loopback, and the environment `syncworker check` needs."""

    def __init__(self, zenvia: SandboxServer, salesforce: SandboxServer, env: dict[str, str]):
        self.zenvia = zenvia
        self.salesforce = salesforce
        self.env = env

    def check(self, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        return run_cli("check", *args, env={**self.env, **overrides})


@contextlib.contextmanager
def sandboxes(
    database_url: str,
    picklists: dict[str, tuple[str, ...]] | None = None,
    zenvia_options: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Sandboxes]:
    zenvia = ZenviaSandbox(token=ZENVIA_TOKEN, seed=3, **(zenvia_options or {}))
    salesforce = SalesforceSandbox(
        client_id=SF_CLIENT_ID,
        client_secret=SF_CLIENT_SECRET,
        seed=3,
        picklists={**ADDED_TYPES, **(picklists or {})},
        **options,
    )
    redis.Redis.from_url(BROKER_URL).flushdb()  # no rate budget left over from another test
    with SandboxServer(zenvia) as zenvia_server, SandboxServer(salesforce) as salesforce_server:
        settings = stack_settings(database_url, zenvia_server.base_url, salesforce_server.base_url)
        yield Sandboxes(zenvia_server, salesforce_server, cli_env(settings))


def assert_blocked(result: subprocess.CompletedProcess[str], line: str, fix: str) -> None:
    """Exit code 1, that one ✗ line, its fix on the next line, and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"exit code {result.returncode}; output:\n{output}"
    assert "Traceback" not in output, output
    lines = result.stdout.splitlines()
    found = [i for i, text in enumerate(lines) if text.startswith("✗ ")]
    assert len(found) == 1, f"expected one ✗ line:\n{result.stdout}"
    assert line in lines[found[0]], f"no ✗ line with {line!r}:\n{result.stdout}"
    assert fix in lines[found[0] + 1], f"fix {fix!r} not under {lines[found[0]]!r}"
    assert "blocked: fix each ✗ above" in result.stdout


def answered_later(desk: ZenviaSandbox, ticket_id: str, seconds: float = 5) -> None:
    """An agent's reply on the ticket `seconds` after now (no sleeping: the desk's clock)."""
    desk.clock = lambda: datetime.now(UTC) + timedelta(seconds=seconds)
    desk.agent.add_action(ticket_id, "Any news?")
    desk.clock = lambda: datetime.now(UTC)


def test_check_passes_against_the_sandboxes_reading_one_zenvia_page_and_writing_nothing(
    database_url: str,
) -> None:
    with sandboxes(database_url) as running:
        desk = running.zenvia.app
        assert isinstance(desk, ZenviaSandbox)
        seen = desk.agent.create_ticket("seen", status=2, urgency=2, category=1, owner_id="agent-2")
        answered_later(desk, str(seen["id"]))
        running.zenvia.reset_counters()

        result = running.check()
        as_json = running.check("--json")

        zenvia_sent = dict(running.zenvia.counters.by_endpoint)
        salesforce_sent = dict(running.salesforce.counters.by_endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "✓ settings valid",
        "✓ database migrated",
        "✓ redis eviction",
        "✓ salesforce login",
        "✓ salesforce external id: Case.Zenvia_Ticket_Id__c is External ID + Unique",
        "✓ salesforce picklist Status",
        "✓ salesforce client lookup: Case.ContactEmail gives a new ticket's contact",
        f"✓ salesforce owner {AGENT_5}: user {AGENT_5} exists",
        "✓ salesforce daily quota",
        "✓ zenvia token",
        "✓ zenvia cost: one request costs 1 of 100000",
        "! zenvia status ids: 2 on listed tickets; cannot verify 1, 3, 4, 5, 6",
        f"✓ zenvia comment discovery: adding an action does not move updatedAt (ticket "
        f"{seen['id']} has an action at ",
    ):
        assert line in result.stdout, f"{line!r} not in:\n{result.stdout}"
    assert result.stdout.rstrip().endswith("ready (2 Zenvia request(s) spent)")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0
    assert report["ok"] is True
    assert report["zenvia_requests"] == 2
    agents = next(i for i in report["items"] if i["name"] == "agent ids")
    assert agents["status"] == "warn"
    assert "agent-2 on listed tickets" in agents["message"]
    # Two runs: one listing page and the listed ticket's actions each on Zenvia; only reads
    # (and tokens) on Salesforce.
    assert zenvia_sent == {"GET /v2/tickets": 2, "GET /v2/tickets/{ticket_id}/actions": 2}
    assert all(label.startswith("GET ") or "oauth2" in label for label in salesforce_sent)


def test_a_shared_login_host_is_refused_with_the_my_domain_fix(database_url: str) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_SALESFORCE_LOGIN_URL="https://login.salesforce.com")
    assert_blocked(result, "settings valid: invalid configuration", "fix the variable(s) named")
    assert "https://NAME.my.salesforce.com" in result.stdout


def test_a_login_url_where_nothing_answers_fails_the_salesforce_login(database_url: str) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_SALESFORCE_LOGIN_URL=f"http://127.0.0.1:{free_port()}")
    assert_blocked(result, "salesforce login: salesforce on POST", "My Domain")
    assert "✓ zenvia token" in result.stdout  # the other checks still ran


def test_an_api_version_the_org_does_not_offer_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_SALESFORCE_API_VERSION="69.0")
    assert_blocked(
        result,
        "salesforce api version: the org does not offer API v69.0 (newest: v68.0)",
        "set SYNCWORKER_SALESFORCE_API_VERSION=68.0",
    )


def test_a_daily_quota_inside_the_reserve_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url, daily_quota=100) as running:
        org = running.salesforce.app
        assert isinstance(org, SalesforceSandbox)
        org.api_usage = 94
        result = running.check()
    assert_blocked(result, "salesforce daily quota: 2 of 100 API requests left", "24-hour")
    assert "syncs stop at the 10% reserve" in result.stdout


def test_a_case_without_the_external_id_field_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url, external_id_field="Other_Key__c") as running:
        result = running.check()
    assert_blocked(
        result, "salesforce external id: Case has no field Zenvia_Ticket_Id__c", "External ID"
    )


def test_an_external_id_field_that_is_not_unique_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url, external_id_unique=False) as running:
        result = running.check()
    assert_blocked(result, "external id: Case.Zenvia_Ticket_Id__c is not Unique", "tick Unique")


@pytest.mark.parametrize(
    ("restricted", "effect"),
    [(("Priority",), "Salesforce refuses these writes"), ((), "would store them silently")],
    ids=["restricted-picklist", "unrestricted-picklist"],
)
def test_a_picklist_value_the_org_lacks_is_a_blocker(
    database_url: str, restricted: tuple[str, ...], effect: str
) -> None:
    picklists = {"Priority": ("High", "Low")}
    with sandboxes(database_url, picklists, restricted_picklists=restricted) as running:
        result = running.check()
    assert_blocked(result, "picklist Priority: Case.Priority has no active value 'Medium'", "Setup")
    assert effect in result.stdout


def test_an_owner_id_the_org_lacks_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url, owner_ids=OWNER_IDS[:4]) as running:
        result = running.check()
    assert_blocked(
        result, f"salesforce owner {AGENT_5}: {AGENT_5} is no user or queue", "copy the id"
    )


def test_a_15_character_owner_id_is_normalised_and_both_checks_say_so(
    database_url: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(SHIPPED.read_text(encoding="utf-8").replace(AGENT_5, AGENT_5[:15]))
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_MAPPING_FILE=str(mapping))
        mapping_check = run_cli("mapping", "check", str(mapping), env=running.env)
    note = f"{AGENT_5[:15]} normalised to {AGENT_5}"
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"✓ salesforce owner {AGENT_5[:15]}: exists; {note}" in result.stdout
    assert mapping_check.returncode == 0, mapping_check.stderr
    assert note in mapping_check.stdout


def test_a_client_lookup_field_case_does_not_have_is_a_blocker(
    database_url: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    shipped = SHIPPED.read_text(encoding="utf-8")
    mapping.write_text(shipped.replace("crm: ContactEmail", "crm: Contact_Mail__c"))
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_MAPPING_FILE=str(mapping))
    assert_blocked(
        result,
        "salesforce client lookup: Case has no field Contact_Mail__c",
        "name the Case's e-mail field in client_lookup.crm",
    )


def test_a_refused_zenvia_token_is_a_blocker(database_url: str) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_ZENVIA_TOKEN="not-the-token")
        sent = running.zenvia.counters.total
    assert_blocked(result, "zenvia token: zenvia 401", "SYNCWORKER_ZENVIA_TOKEN")
    assert "not-the-token" not in result.stdout + result.stderr
    assert sent == 1  # one failed request of the three that lock a token out


def test_saying_actions_move_updated_at_when_a_reply_did_not_is_a_blocker(
    database_url: str,
) -> None:
    """The setting stops the comment sweep: on an account where a reply leaves updatedAt
    alone, comments added in Zenvia would never sync."""
    with sandboxes(database_url) as running:
        desk = running.zenvia.app
        assert isinstance(desk, ZenviaSandbox)
        ticket = desk.agent.create_ticket("asks", status=2, owner_id="agent-2")
        answered_later(desk, str(ticket["id"]))
        result = running.check(SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT="true")
    assert_blocked(
        result,
        "zenvia comment discovery: SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT=true, but ticket "
        f"{ticket['id']} has an action at ",
        "unset SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT",
    )


def test_an_account_whose_replies_move_updated_at_shows_no_late_action(
    database_url: str,
) -> None:
    options = {"action_moves_updated_at": True}
    with sandboxes(database_url, zenvia_options=options) as running:
        desk = running.zenvia.app
        assert isinstance(desk, ZenviaSandbox)
        ticket = desk.agent.create_ticket("asks", status=2, owner_id="agent-2")
        answered_later(desk, str(ticket["id"]))
        moved = running.check(SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT="true")
        swept = running.check()
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert (
        "✓ zenvia comment discovery: SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT=true (no comment "
        "sweep): none of 1 sampled ticket(s) has an action after its updatedAt"
    ) in moved.stdout
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert (
        "none of 1 sampled ticket(s) has an action after its updatedAt; if adding a comment in "
        "Zenvia moves a ticket's updatedAt on this account, "
        "SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT=true stops the comment sweep"
    ) in swept.stdout


@pytest.mark.parametrize(
    ("status", "body", "headers", "shown", "fix"),
    [
        (
            200,
            [{"id": 1}],
            {},
            "cannot sample tickets' actions: zenvia on action.type: ticket 1: field "
            "'action.type' is not PUBLIC or INTERNAL",
            "run `syncworker check` again once Zenvia answers tickets' actions listings",
        ),
        (
            429,
            {"message": "slow down"},
            {"Retry-After": "7"},
            "cannot sample tickets' actions now: zenvia 429 on GET /v2/tickets/1/actions",
            "run `syncworker check` again in 7 s",
        ),
    ],
    ids=["malformed", "throttled"],
)
def test_an_actions_listing_that_fails_is_a_warning_and_the_check_goes_on(
    database_url: str, status: int, body: object, headers: dict[str, str], shown: str, fix: str
) -> None:
    with sandboxes(database_url) as running:
        desk = running.zenvia.app
        assert isinstance(desk, ZenviaSandbox)
        desk.agent.create_ticket("asks", status=2, owner_id="agent-2")
        desk.answer_next("GET /v2/tickets/{ticket_id}/actions", status, body, headers=headers)
        result = running.check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("! zenvia comment discovery"))
    assert shown in lines[at], lines[at]
    assert fix in lines[at + 1], lines[at + 1]
    assert "✓ zenvia token" in result.stdout


def test_a_database_not_migrated_is_a_blocker(database_url: str) -> None:
    name, empty = create_throwaway_database("syncworker_check")
    try:
        with sandboxes(database_url) as running:
            result = running.check(SYNCWORKER_DATABASE_URL=empty)
    finally:
        drop_database(name)
    assert_blocked(result, "database migrated: at revision (empty database)", "db upgrade")


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server of our own with an evicting policy (the shared one is not
    ours to reconfigure)."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(tmp_path)),
            *("--maxmemory-policy", "allkeys-lru"),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(50):
            with contextlib.suppress(redis.exceptions.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.1)
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_redis_that_evicts_keys_is_a_blocker(database_url: str, evicting_redis: str) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_REDIS_URL=evicting_redis)
    assert_blocked(result, "redis eviction: redis://127.0.0.1", "maxmemory-policy noeviction")
    assert "maxmemory-policy allkeys-lru" in result.stdout


def test_an_unreachable_redis_is_a_blocker_and_the_remotes_are_still_checked(
    database_url: str,
) -> None:
    with sandboxes(database_url) as running:
        result = running.check(SYNCWORKER_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert_blocked(result, "redis reachable: redis://127.0.0.1:", "start Redis")
    assert "✓ salesforce login" in result.stdout
    assert "✓ zenvia token" in result.stdout
