"""Every `syncworker` command, run as a separate process against real Postgres, Redis, sandboxes
and Celery workers, the way an operator runs it."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
import typer.main
from sqlalchemy import text, update
from sqlmodel import col

from syncworker.celery_app import app as celery_app
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE
from syncworker.store import migrate, repo
from syncworker.store.db import reset_engines, session_scope
from syncworker.store.tables import Link
from tests.conftest import create_throwaway_database, drop_database
from tests.integration.cli_processes import (
    background,
    cli_env,
    free_port,
    run_cli,
)
from tests.stack import (
    BROKER_URL,
    SF_CLIENT_ID,
    SF_CLIENT_SECRET,
    ZENVIA_TOKEN,
    Stack,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.integration

AGENT_5 = "005000000000005AAA"  # maps to Zenvia's agent-5, missing from a four-agent catalogue
SECRET_SETTINGS = ("SYNCWORKER_ZENVIA_TOKEN", "SYNCWORKER_SALESFORCE_CLIENT_SECRET")


def stack_env(stack: Stack, **overrides: str) -> dict[str, str]:
    return cli_env({**stack.env, **overrides})


def secrets_of(stack: Stack) -> list[str]:
    return [stack.env[name] for name in SECRET_SETTINGS]


def ticket_for(stack: Stack, subject: str) -> dict[str, Any]:
    matches = [t for t in stack.tickets() if t["subject"] == subject]
    assert len(matches) == 1, f"expected one ticket {subject!r}, found {len(matches)}"
    return matches[0]


def case_for(stack: Stack, subject: str) -> dict[str, Any]:
    matches = [c for c in stack.cases() if c["Subject"] == subject]
    assert len(matches) == 1, f"expected one case {subject!r}, found {len(matches)}"
    return matches[0]


def remote_writes(stack: Stack) -> dict[str, int]:
    """Requests that could change a remote (anything but GET and the OAuth token exchange)."""
    counts: dict[str, int] = {}
    for server in (stack.zenvia_server, stack.salesforce_server):
        for label, count in server.counters.by_endpoint.items():
            if not label.startswith("GET ") and "/oauth2/token" not in label:
                counts[label] = count
    return counts


def queued_syncs() -> list[tuple[str, str]]:
    """The (side, record id) of every sync message waiting in the broker's `sync` queue."""
    client = redis.Redis.from_url(BROKER_URL)
    try:
        raw: list[bytes] = cast("list[bytes]", client.lrange("sync", 0, -1))
        messages = [json.loads(message) for message in raw]
    finally:
        client.close()
    bodies = [json.loads(base64.b64decode(message["body"])) for message in messages]
    return sorted((args[0], args[1]) for args, _kwargs, _embed in bodies)


def purge_sync_queue() -> None:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        client.delete("sync")
    finally:
        client.close()


def assert_clean_failure(result: Any, *expected: str) -> None:
    """Exit code 2, the expected words on stderr, and no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit code {result.returncode}; output:\n{output}"
    assert "Traceback" not in output, output
    for words in expected:
        assert words in result.stderr, f"{words!r} not in stderr:\n{result.stderr}"


# -- help ---------------------------------------------------------------------------------------


def command_paths() -> list[tuple[str, ...]]:
    """Every command and command group of the CLI, as argv prefixes."""
    from syncworker.cli import app

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):  # a group
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


def test_the_help_of_every_command_shows_an_example() -> None:
    """Rendered in-process (two dozen interpreter start-ups would cost half a minute); the
    console script renders the same help, checked on the root and on one nested command."""
    from typer.testing import CliRunner

    from syncworker.cli import app

    paths = command_paths()
    assert ("resync",) in paths
    assert ("dead-letters", "retry") in paths
    runner = CliRunner()
    helps = {path: runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}) for path in paths}
    assert all(result.exit_code == 0 for result in helps.values())
    without = [" ".join(("syncworker", *p)) for p, r in helps.items() if "Example" not in r.output]
    assert without == [], f"--help without an example: {without}"
    for path in [(), ("dead-letters", "retry")]:
        script = run_cli(*path, "--help", env=cli_env())
        assert script.returncode == 0, script.stderr
        assert "Example" in script.stdout


# -- sandboxes ----------------------------------------------------------------------------------


def test_the_zenvia_sandbox_accepts_its_token_and_refuses_any_other(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(SYNCWORKER_ZENVIA_TOKEN=ZENVIA_TOKEN)  # from the environment, not argv
    with background(
        "sandbox", "zenvia", "--port", str(port), env=env, log_path=tmp_path / "zenvia.log"
    ) as sandbox:
        base = sandbox.wait_for_log(r"listening on (http://\S+)/v2").group(1)
        assert base == f"http://127.0.0.1:{port}"
        ok = httpx.get(f"{base}/v2/tickets", headers={"X-API-TOKEN": ZENVIA_TOKEN})
        assert ok.status_code == 200
        assert ok.json() == []
        refused = httpx.get(f"{base}/v2/tickets", headers={"X-API-TOKEN": "not-the-token"})
        assert refused.status_code == 401
        assert refused.json() == {
            "code": "AUTHENTICATION_ERROR",
            "message": "Missing or invalid X-API-TOKEN header",
            "details": [],
        }


def test_the_salesforce_sandbox_issues_tokens_to_its_client_and_refuses_others(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = cli_env(SYNCWORKER_SALESFORCE_CLIENT_SECRET=SF_CLIENT_SECRET)
    args = ("sandbox", "salesforce", "--port", str(port), "--client-id", SF_CLIENT_ID)
    with background(*args, env=env, log_path=tmp_path / "salesforce.log") as sandbox:
        base = sandbox.wait_for_log(r"listening on (http://\S+)/services/data/").group(1)
        assert base == f"http://127.0.0.1:{port}"

        def token(secret: str) -> httpx.Response:
            form = {
                "grant_type": "client_credentials",
                "client_id": SF_CLIENT_ID,
                "client_secret": secret,
            }
            return httpx.post(f"{base}/services/oauth2/token", data=form)

        issued = token(SF_CLIENT_SECRET)
        assert issued.status_code == 200
        assert token("wrong-secret").json() == {
            "error": "invalid_client",
            "error_description": "invalid client credentials",
        }

        def query(bearer: str) -> httpx.Response:
            return httpx.get(
                f"{base}/services/data/v62.0/query",
                params={"q": "SELECT Id FROM Case"},
                headers={"Authorization": f"Bearer {bearer}"},
            )

        ok = query(issued.json()["access_token"])
        assert ok.status_code == 200
        assert ok.json()["totalSize"] == 0
        refused = query("00D000000000001!forged")
        assert refused.status_code == 401
        assert refused.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


@pytest.mark.parametrize(
    "args",
    [
        ("sandbox", "zenvia", "--token", "t0ken"),
        ("sandbox", "salesforce", "--client-id", "c", "--client-secret", "s"),
    ],
    ids=["zenvia", "salesforce"],
)
def test_a_sandbox_refuses_a_public_address_without_allow_remote(args: tuple[str, ...]) -> None:
    result = run_cli(*args, "--host", "0.0.0.0", env=cli_env(), timeout=30)  # noqa: S104
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    words = " ".join(result.stderr.replace("│", " ").split())
    assert "refusing to serve" in words
    assert "non-loopback address '0.0.0.0'" in words
    assert "--allow-remote" in words
    assert "listening" not in result.stdout


def test_a_sandbox_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(SYNCWORKER_ZENVIA_TOKEN=ZENVIA_TOKEN)
    with background(
        "sandbox", "zenvia", "--port", str(port), env=env, log_path=tmp_path / "first.log"
    ) as first:
        first.wait_for_log("listening on")
        second = run_cli("sandbox", "zenvia", "--port", str(port), env=env, timeout=30)
    assert_clean_failure(second, f"cannot listen on 127.0.0.1:{port}: Address already in use")


# -- database -----------------------------------------------------------------------------------


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    name, url = create_throwaway_database("syncworker_cli")
    yield url
    drop_database(name)


@pytest.fixture(scope="module")
def migrated_database_url() -> Iterator[str]:
    name, url = create_throwaway_database("syncworker_cli")
    migrate.upgrade(url)
    reset_engines()
    yield url
    drop_database(name)


def test_db_current_fails_until_db_upgrade_brings_an_empty_database_to_head(
    empty_database_url: str,
) -> None:
    env = cli_env(SYNCWORKER_DATABASE_URL=empty_database_url)

    before = run_cli("db", "current", env=env)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "current: (empty database)" in before.stdout

    upgrade = run_cli("db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    applied = re.search(r"database at revision (\w+)", upgrade.stdout)
    assert applied, upgrade.stdout

    after = run_cli("db", "current", env=env)
    assert after.returncode == 0, after.stdout + after.stderr
    revisions = dict(re.findall(r"^(current|head):\s+(\S+)$", after.stdout, flags=re.MULTILINE))
    assert revisions == {"current": applied.group(1), "head": applied.group(1)}


# -- mapping ------------------------------------------------------------------------------------


def test_mapping_check_accepts_the_shipped_mapping() -> None:
    shipped = Path(__file__).parents[2] / "syncworker" / "mappings" / "salesforce_zenvia.yaml"
    result = run_cli("mapping", "check", str(shipped), env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{shipped}: OK")


def test_mapping_check_names_the_file_and_key_path_of_a_mistake(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "syncworker" / "mappings" / "salesforce_zenvia.yaml"
    broken = tmp_path / "mapping.yaml"
    text_ = shipped.read_text(encoding="utf-8")
    assert "conflict: crm_wins" in text_
    broken.write_text(text_.replace("conflict: crm_wins", "conflict: crm_always", 1))
    result = run_cli("mapping", "check", str(broken), env=cli_env())
    assert_clean_failure(result, f"{broken}: fields.priority.conflict: expected 'crm_wins'")
    assert "got 'crm_always'" in result.stderr


# -- clear errors -------------------------------------------------------------------------------


def test_an_unreachable_database_is_one_line_naming_it_without_its_password() -> None:
    env = cli_env(SYNCWORKER_DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/x")
    result = run_cli("status", env=env)
    assert_clean_failure(result, "cannot reach the mapping database at", "@127.0.0.1:1/x")
    assert "hunter2" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "args",
    [("status",), ("resync", "--crm-id", "500000000000001AAA"), ("dead-letters", "retry", "1")],
    ids=["status", "resync", "dead-letters-retry"],
)
def test_unreachable_redis_is_one_clear_line(
    args: tuple[str, ...], migrated_database_url: str
) -> None:
    env = cli_env(
        SYNCWORKER_DATABASE_URL=migrated_database_url,
        SYNCWORKER_BROKER_URL="redis://127.0.0.1:1/0",
        SYNCWORKER_ZENVIA_TOKEN=ZENVIA_TOKEN,
        SYNCWORKER_SALESFORCE_CLIENT_ID=SF_CLIENT_ID,
        SYNCWORKER_SALESFORCE_CLIENT_SECRET=SF_CLIENT_SECRET,
    )
    started = time.monotonic()
    result = run_cli(*args, env=env, timeout=60)
    assert_clean_failure(result, "cannot reach Redis")
    assert time.monotonic() - started < 15, "gave up on Redis only after Celery's long retries"


def test_a_missing_credential_is_named(migrated_database_url: str) -> None:
    env = cli_env(
        SYNCWORKER_DATABASE_URL=migrated_database_url,
        SYNCWORKER_BROKER_URL=BROKER_URL,
        SYNCWORKER_SALESFORCE_CLIENT_ID=SF_CLIENT_ID,
        SYNCWORKER_SALESFORCE_CLIENT_SECRET=SF_CLIENT_SECRET,
    )
    result = run_cli("resync", "--all", env=env)
    assert_clean_failure(result, "missing required setting(s): SYNCWORKER_ZENVIA_TOKEN")
    assert SF_CLIENT_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args", [("status",), ("worker",), ("beat",)], ids=["status", "worker", "beat"]
)
def test_a_bad_setting_is_named_before_anything_starts(args: tuple[str, ...]) -> None:
    env = cli_env(SYNCWORKER_POLL_INTERVAL_SECONDS="soon")
    result = run_cli(*args, env=env, timeout=30)
    assert_clean_failure(result, "SYNCWORKER_POLL_INTERVAL_SECONDS", "valid number")


def test_a_celery_argument_celery_refuses_is_one_clear_line() -> None:
    result = run_cli("worker", "--loglevel", "chatty", env=cli_env(), timeout=30)
    assert_clean_failure(result, "'CHATTY' is not one of 'DEBUG', 'INFO'")


# -- worker and beat ----------------------------------------------------------------------------


def test_worker_answers_a_ping_and_stops_on_sigterm(stack: Stack, tmp_path: Path) -> None:
    with background(
        "worker", "--concurrency", "1", env=stack_env(stack), log_path=tmp_path / "worker.log"
    ) as worker:

        def pong() -> bool:
            replies = celery_app.control.ping(timeout=0.5)
            return any(name.startswith("celery@") for reply in replies for name in reply)

        wait_until(pong, timeout=60, what=f"the worker to answer a ping; log:\n{worker.log()}")
        assert worker.terminate(timeout=40) == 0, worker.log()[-3000:]
        assert not pong()


def poll_runs(stack: Stack) -> dict[str, int]:
    """How many polls each side has started so far (one `sync_runs` row each)."""
    with session_scope(stack.database_url) as session:
        rows = session.execute(
            text("SELECT side, count(*) FROM sync_runs WHERE kind = 'poll' GROUP BY side")
        ).all()
    return {"crm": 0, "zenvia": 0} | {str(side): int(count) for side, count in rows}


def polls_during(stack: Stack, seconds: float) -> dict[str, int]:
    start = poll_runs(stack)
    time.sleep(seconds)
    end = poll_runs(stack)
    return {side: end[side] - start[side] for side in start}


def test_beat_schedules_polls_and_a_second_beat_waits_instead_of_doubling_them(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_worker(queues="poll")
    env = stack_env(stack, SYNCWORKER_POLL_INTERVAL_SECONDS="1")
    window = 6.0
    with background("beat", env=env, log_path=tmp_path / "beat-1.log") as first:
        wait_until(
            lambda: min(poll_runs(stack).values()) >= 2,
            timeout=45,
            what=f"beat to schedule polls of both sides; its log:\n{first.log()[-3000:]}",
        )
        single = polls_during(stack, window)
        with background("beat", env=env, log_path=tmp_path / "beat-2.log") as second:
            second.wait_for_log("beat: Starting", timeout=30)
            time.sleep(1.0)
            double = polls_during(stack, window)
            assert second.running(), second.log()[-3000:]
            # RedBeat keeps the schedule's state in Redis, so even two unlocked beats would
            # mostly take turns: the counts alone cannot prove the lock. The standby's log can.
            assert "Acquired lock" not in second.log(), "two beats held RedBeat's lock at once"
            assert "Sending due task" not in second.log(), "the standby beat sent tasks"
            # The standby takes over once the first beat stops and releases the lock.
            first.terminate()
            second.wait_for_log("Acquired lock", timeout=30)
    for side in ("crm", "zenvia"):
        assert single[side] >= window / 2, f"one beat polled {side} only {single[side]} times"
        assert double[side] <= 1.3 * single[side] + 1, (
            f"{side}: {single[side]} polls with one beat, {double[side]} with two"
        )


# -- resync -------------------------------------------------------------------------------------


def test_resync_dry_run_prints_the_plan_and_writes_nothing(stack: Stack) -> None:
    worker = stack.start_worker()
    case_id = stack.salesforce.agent.create_case(Subject="Dry run", Status="New", Origin="Web")
    stack.settle()
    worker.stop()  # a sync retried after settle() (a deferred echo) would apply the edit itself
    ticket_id = str(ticket_for(stack, "Dry run")["id"])
    stack.salesforce.agent.edit(case_id, Subject="Dry run, edited", Priority="High")
    # A sync may plan on the last poll's observation while it is younger than one poll
    # interval; let it age so the plan reflects the edit (see the report on resync freshness).
    time.sleep(stack.settings.poll_interval_seconds + 0.5)
    with session_scope(stack.database_url) as session:
        link = repo.find_link(session, side="crm", remote_id=case_id, crm_system="salesforce")
        assert link is not None
    writes_before = remote_writes(stack)
    # The stopped worker hands back any sync it held for later (a deferred echo): count from here.
    queued_before = queued_syncs()

    result = run_cli("resync", "--crm-id", case_id, "--dry-run", env=stack_env(stack))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"crm {case_id} (link {link.id})" in result.stdout
    plan = re.search(rf"update zenvia {ticket_id}: (.*)", result.stdout)
    assert plan, result.stdout
    assert "subject='Dry run, edited'" in plan.group(1)
    assert "urgency=3" in plan.group(1)
    assert remote_writes(stack) == writes_before
    assert stack.zenvia.ticket(ticket_id)["subject"] == "Dry run"
    assert queued_syncs() == queued_before
    with session_scope(stack.database_url) as session:
        after = repo.get_link(session, link.id) if link.id else None
        assert after is not None
        assert (after.revision, after.crm_baseline) == (link.revision, link.crm_baseline)


def test_resync_of_a_ticket_with_wait_returns_once_it_is_synced(stack: Stack) -> None:
    stack.start_worker()
    ticket = stack.zenvia.agent.create_ticket("Only a resync finds me", urgency=2)
    ticket_id = str(ticket["id"])

    result = run_cli("resync", "--zenvia-id", ticket_id, "--wait", env=stack_env(stack))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "queued 1 sync(s)" in result.stdout
    case = case_for(stack, "Only a resync finds me")  # no poll ran: the resync did it
    assert case["Zenvia_Ticket_Id__c"] == ticket_id
    assert case["Priority"] == "Medium"


def test_resync_since_and_all_queue_one_sync_per_record(stack: Stack) -> None:
    old_cases = [
        stack.salesforce.agent.create_case(Subject=f"Old {n}", Status="New") for n in (1, 2)
    ]
    old_ticket = str(stack.zenvia.agent.create_ticket("Old ticket")["id"])
    time.sleep(1.1)
    since = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    new_case = stack.salesforce.agent.create_case(Subject="New", Status="New")
    new_ticket = str(stack.zenvia.agent.create_ticket("New ticket")["id"])
    time.sleep(stack.zenvia.listing_lag.total_seconds() + 0.1)  # date listings lag behind
    env = stack_env(stack)  # no worker runs: every queued sync stays in the broker

    recent = run_cli("resync", "--since", since.isoformat().replace("+00:00", "Z"), env=env)
    assert recent.returncode == 0, recent.stdout + recent.stderr
    assert "queued 2 sync(s)" in recent.stdout
    assert queued_syncs() == sorted([("crm", new_case), ("zenvia", new_ticket)])

    purge_sync_queue()
    everything = run_cli("resync", "--all", env=env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "queued 5 sync(s)" in everything.stdout
    cases = [("crm", case_id) for case_id in (*old_cases, new_case)]
    tickets = [("zenvia", ticket_id) for ticket_id in (old_ticket, new_ticket)]
    assert queued_syncs() == sorted(cases + tickets)


def test_resync_needs_exactly_one_selection(stack: Stack) -> None:
    result = run_cli("resync", env=stack_env(stack))
    assert result.returncode == 2
    assert "give exactly one of --crm-id, --zenvia-id, --since, --all" in result.stderr
    assert "Traceback" not in result.stderr


# -- a deployment with a dead letter: dead-letters, status, links ---------------------------------


@dataclasses.dataclass
class Parked:
    """A running deployment where one case synced and one could not (its owner is unknown)."""

    stack: Stack
    fine_case: str
    fine_ticket: str
    bad_case: str
    letter_id: int

    @property
    def env(self) -> dict[str, str]:
        return stack_env(self.stack)


@pytest.fixture
def parked(committed_database_url: str, tmp_path: Path) -> Iterator[Parked]:
    four_agents = dataclasses.replace(DEFAULT_CATALOGUE, agents=DEFAULT_CATALOGUE.agents[:4])
    with running_stack(committed_database_url, tmp_path, catalogue=four_agents) as stack:
        stack.start_worker()
        fine = stack.salesforce.agent.create_case(Subject="Fine", Status="New", Origin="Web")
        stack.settle()
        bad = stack.salesforce.agent.create_case(
            Subject="Owned by agent 5", Status="New", Origin="Web", OwnerId=AGENT_5
        )
        stack.settle()
        with session_scope(stack.database_url) as session:
            letters = repo.list_dead_letters(session, status="open")
        assert [letter.record_id for letter in letters] == [bad]
        assert letters[0].id is not None
        yield Parked(stack, fine, str(ticket_for(stack, "Fine")["id"]), bad, letters[0].id)


def test_dead_letters_list_and_show_give_the_remotes_own_message(parked: Parked) -> None:
    listed = run_cli("dead-letters", "list", env=parked.env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if parked.bad_case in line)
    assert re.search(rf"\b{parked.letter_id}\b.*\bopen\b.*\bcrm\b", row), row

    shown = run_cli("dead-letters", "show", str(parked.letter_id), env=parked.env)
    assert shown.returncode == 0, shown.stderr
    letter = json.loads(shown.stdout)
    assert (letter["id"], letter["record_id"], letter["status"]) == (
        parked.letter_id,
        parked.bad_case,
        "open",
    )
    assert "VALIDATION_ERROR" in letter["message"]
    assert "ownerId" in letter["message"]

    missing = run_cli("dead-letters", "show", "999999", env=parked.env)
    assert_clean_failure(missing, "no dead letter with id 999999")


def test_dead_letters_retry_replays_the_record_once_it_is_fixed(parked: Parked) -> None:
    stack = parked.stack
    still_broken = run_cli("resync", "--crm-id", parked.bad_case, "--wait", env=parked.env)
    assert_clean_failure(still_broken, "1 sync(s) failed", "dead-letters list")

    stack.salesforce.agent.edit(parked.bad_case, OwnerId="005000000000001AAA")
    retried = run_cli("dead-letters", "retry", str(parked.letter_id), env=parked.env)
    assert retried.returncode == 0, retried.stderr
    assert f"sync of crm {parked.bad_case} queued" in retried.stdout
    stack.settle()

    assert ticket_for(stack, "Owned by agent 5")["ownerId"] == "agent-1"
    assert parked.bad_case not in run_cli("dead-letters", "list", env=parked.env).stdout
    everything = run_cli("dead-letters", "list", "--all", env=parked.env).stdout
    row = next(line for line in everything.splitlines() if parked.bad_case in line)
    assert "replayed" in row


def test_dead_letters_retry_marks_the_letter_replayed_and_a_new_failure_reopens_it(
    parked: Parked,
) -> None:
    retried = run_cli("dead-letters", "retry", str(parked.letter_id), env=parked.env)
    assert retried.returncode == 0, retried.stderr
    parked.stack.settle()

    with session_scope(parked.stack.database_url) as session:
        letter = repo.get_dead_letter(session, parked.letter_id)
    assert letter is not None
    assert letter.replayed_at is not None  # only a replay sets it: the CLI marked it
    assert (letter.status, letter.attempts) == ("open", 2)  # the owner is still unknown


def test_dead_letters_discard_stops_tracking_it(parked: Parked) -> None:
    discarded = run_cli("dead-letters", "discard", str(parked.letter_id), env=parked.env)
    assert discarded.returncode == 0, discarded.stderr
    assert f"discarded dead letter {parked.letter_id}" in discarded.stdout
    assert parked.bad_case not in run_cli("dead-letters", "list", env=parked.env).stdout
    everything = run_cli("dead-letters", "list", "--all", env=parked.env).stdout
    row = next(line for line in everything.splitlines() if parked.bad_case in line)
    assert "discarded" in row
    assert_clean_failure(
        run_cli("dead-letters", "discard", "999999", env=parked.env),
        "no dead letter with id 999999",
    )


def test_status_reports_the_deployment_and_never_a_secret(parked: Parked) -> None:
    with session_scope(parked.stack.database_url) as session:
        session.execute(
            update(Link)
            .where(col(Link.zenvia_id) == parked.fine_ticket)
            .values(comments_due_at=datetime.now(UTC) - timedelta(hours=2))
        )
    as_json = run_cli("status", "--json", env=parked.env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["links"] == {"active": 1, "error": 1}
    assert report["backlog"] == 0
    assert set(report["cursor_lag_seconds"]) == {"crm", "zenvia"}
    assert all(isinstance(lag, float) for lag in report["cursor_lag_seconds"].values())
    assert report["dead_letters_open"] == 1
    assert {run["kind"] for run in report["last_runs"]} >= {"poll"}
    assert set(report["rate_budget"]) == {"crm", "zenvia"}
    sweep = report["comment_sweep"]
    assert (sweep["open_tickets"], sweep["due"]) == (1, 1)  # the parked case has no ticket
    assert 7200 <= sweep["oldest_due_seconds"] < 7200 + 60
    (error,) = report["last_errors"]
    assert (error["dead_letter"], error["record_id"], error["status"]) == (
        parked.letter_id,
        parked.bad_case,
        "open",
    )
    assert "VALIDATION_ERROR" in error["message"]

    table = run_cli("status", env=parked.env)
    assert table.returncode == 0, table.stderr
    assert re.search(r"dead letters open\s*│\s*1\b", table.stdout), table.stdout
    assert re.search(
        r"comment sweep\s*│\s*1 of 1 open ticket\(s\) due, the oldest for 120 min", table.stdout
    ), table.stdout
    assert re.search(
        rf"error crm {parked.bad_case}\s*│.*dead letter {parked.letter_id} \(open\): .*VALIDATION",
        table.stdout,
    ), table.stdout
    for result in (as_json, table):
        for secret in secrets_of(parked.stack):
            assert secret not in result.stdout + result.stderr


def test_links_show_finds_a_link_by_case_ticket_or_link_id_and_never_guesses(
    parked: Parked,
) -> None:
    stack = parked.stack
    by_case = run_cli("links", "show", parked.fine_case, env=parked.env)
    assert by_case.returncode == 0, by_case.stderr
    link = json.loads(by_case.stdout)
    assert (link["crm_id"], link["zenvia_id"], link["state"]) == (
        parked.fine_case,
        parked.fine_ticket,
        "active",
    )
    assert link["crm_baseline"]["Subject"] == "Fine"
    assert link["comment_links"] == []

    by_ticket = run_cli("links", "show", f"zenvia:{parked.fine_ticket}", env=parked.env)
    assert json.loads(by_ticket.stdout)["id"] == link["id"]
    # the 15 characters a Salesforce URL shows name the same case
    by_short_id = run_cli("links", "show", f"crm:{parked.fine_case[:15]}", env=parked.env)
    assert json.loads(by_short_id.stdout)["id"] == link["id"]

    # Ticket ids and link ids are both small numbers: a new ticket's id is another link's id.
    ticket_id = str(stack.zenvia.agent.create_ticket("Numbered like a link")["id"])
    stack.settle()
    with session_scope(stack.database_url) as session:
        namesake = repo.get_link(session, int(ticket_id))
        ticket_link = repo.find_link(
            session, side="zenvia", remote_id=ticket_id, crm_system="salesforce"
        )
    assert namesake is not None
    assert ticket_link is not None
    assert namesake.id != ticket_link.id, "precondition: the number must name two links"

    ambiguous = run_cli("links", "show", ticket_id, env=parked.env)
    assert_clean_failure(
        ambiguous,
        f"link:{ticket_id} (link {namesake.id})",
        f"zenvia:{ticket_id} (link {ticket_link.id})",
    )
    as_ticket = json.loads(run_cli("links", "show", f"zenvia:{ticket_id}", env=parked.env).stdout)
    assert as_ticket["id"] == ticket_link.id
    as_link = json.loads(run_cli("links", "show", f"link:{ticket_id}", env=parked.env).stdout)
    assert as_link["id"] == namesake.id

    assert_clean_failure(
        run_cli("links", "show", "500000000000999AAA", env=parked.env), "no link for"
    )
