"""Going live on accounts with history: sandboxes over real sockets, real Postgres and Redis,
the onboarding's syncs run in-process one by one so every Zenvia request can be counted."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import syncworker
from syncworker import onboard, sync
from syncworker.cli import onboard as onboard_cli
from syncworker.context import Runtime
from syncworker.mapping import shipped_mapping_file
from syncworker.model import Side
from syncworker.onboard import PATIENCE
from syncworker.sandbox.salesforce import to_id18
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE
from tests.integration.cli_processes import cli_env, run_cli
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.integration

EACH = 60  # records per group; 4 groups on each side, plus closed and ambiguous ones
CONTACTS = tuple(to_id18(f"003{n:012d}") for n in range(1, 4 * EACH + 1))


def onboarding_mapping(path: Path) -> Path:
    """The shipped mapping, copying only open records, matching by the case's ticket-id field
    and by the same customer (a Zenvia client id that is the Contact id) and subject."""
    shipped = Path(syncworker.__file__).parent / "mappings" / shipped_mapping_file("salesforce")
    data = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    data["scope"]["states"] = ["new", "open", "waiting"]
    data["matching"] = {
        "by_id": {"crm": "Zenvia_Ticket_Id__c"},
        "rules": [
            {
                "name": "same customer and subject",
                "same": [
                    {"crm": "ContactId", "zenvia": "clients"},
                    {"crm": "Subject", "zenvia": "subject"},
                ],
                "created": {"crm": "CreatedDate", "zenvia": "createdAt"},
                "within_minutes": 60,
            }
        ],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def history_stack(committed_database_url: str, tmp_path: Path) -> Iterator[Stack]:
    catalogue = dataclasses.replace(
        DEFAULT_CATALOGUE, clients=(*DEFAULT_CATALOGUE.clients, *CONTACTS)
    )
    mapping_file = onboarding_mapping(tmp_path / "mapping.yaml")
    with running_stack(
        committed_database_url,
        tmp_path,
        catalogue=catalogue,
        SYNCWORKER_MAPPING_FILE=str(mapping_file),
    ) as running:
        yield running


@dataclasses.dataclass
class Account:
    by_id: list[tuple[str, str]]
    by_rule: list[tuple[str, str]]
    by_file: list[tuple[str, str]]
    ambiguous: list[str]  # one case and the two tickets it matches
    closed: dict[Side, list[str]]
    half_linked: tuple[str, str] = ("", "")  # a closed case a sync saw, and its open copy


def seed(stack: Stack) -> Account:
    """A year of history in miniature: a third of the open records copied by hand (found by
    each matching way), others alone on their side, closed ones and one ambiguous match."""
    sf, zv = stack.salesforce.agent, stack.zenvia.agent

    def case(subject: str, contact: int, **fields: str) -> str:
        given = {"Status": "New", "Origin": "Web", **fields}
        return sf.create_case(Subject=subject, ContactId=CONTACTS[contact], **given)

    def ticket(subject: str, contact: int, status: int | None = None) -> str:
        return str(zv.create_ticket(subject, clients=[CONTACTS[contact]], status=status)["id"])

    account = Account([], [], [], [], {"crm": [], "zenvia": []})
    for n in range(EACH):
        t = ticket(f"Copied with its id {n}", n)
        account.by_id.append((case(f"Typed in by hand {n}", n, Zenvia_Ticket_Id__c=t), t))
        t = ticket(f"Same customer, same subject {n}", EACH + n)
        account.by_rule.append((case(f"Same customer, same subject {n}", EACH + n), t))
        t = ticket(f"Listed in the file {n}", 2 * EACH + n)
        account.by_file.append((case(f"Pasted in a spreadsheet {n}", 2 * EACH + n), t))
        case(f"Only a case {n}", 3 * EACH + n)
        ticket(f"Only a ticket {n}", 3 * EACH + n)
        if n % 10 == 0:  # comments: copied one way, or both ways on a merge
            sf.add_comment(account.by_id[-1][0], f"Called the customer {n}", public=True)
            zv.add_action(account.by_rule[-1][1], f"Cliente respondeu {n}", public=True)
            case_id, ticket_id = account.by_file[-1]  # a comment copied by hand as well
            sf.add_comment(case_id, f"Refund  approved {n}", public=True)
            zv.add_action(ticket_id, f"refund approved {n}", public=True)
    for n in range(5):
        account.closed["crm"].append(case(f"Closed long ago {n}", n, Status="Closed"))
        account.closed["zenvia"].append(ticket(f"Fechado há tempos {n}", n, status=6))
    account.half_linked = (
        case("Seen by a poll", 1, Status="Closed"),
        ticket("Seen by a poll", 1),
    )
    account.ambiguous = [
        case("Twice the same", 0),
        ticket("Twice the same", 0),
        ticket("Twice the same", 0),
    ]
    return account


def sync_queue(stack: Stack, queued: list[tuple[Side, str]]) -> int:
    """Run each queued sync in-process; the Zenvia requests they sent."""
    before = stack.runtime.connectors["zenvia"].requests.total
    for side, record_id in queued:
        sync.sync_record(stack.runtime, side, record_id)
    return stack.runtime.connectors["zenvia"].requests.total - before


def collecting(rt: Runtime) -> tuple[Runtime, list[tuple[Side, str]]]:
    queued: list[tuple[Side, str]] = []
    return dataclasses.replace(rt, enqueue_sync=lambda s, i: queued.append((s, i))), queued


def test_an_account_with_history_is_onboarded_without_duplicates_as_its_dry_run_said(
    history_stack: Stack,
) -> None:
    stack = history_stack
    account = seed(stack)
    sync.sync_record(stack.runtime, "crm", account.half_linked[0])  # out of scope: half link
    cases_before, tickets_before = len(stack.cases()), len(stack.tickets())
    csv = "case id,ticket id\n" + "".join(f"{c[:15]},{t}\n" for c, t in account.by_file)
    pairs, errors = onboard.parse_pairs(csv)
    assert errors == []
    assert onboard.import_pairs(stack.runtime, pairs, dry_run=False) == (EACH, [])

    dry = onboard.survey(stack.runtime)
    assert dry.links_by_rule() == {
        onboard.EARLIER: EACH,  # the file's pairs, linked before and never synced
        "id field": EACH,
        "same customer and subject": EACH + 1,  # one completes the closed case's half link
    }
    assert dry.creates() == {"crm": EACH, "zenvia": EACH}
    assert dry.left_out["crm"]["scope: states"] == 5
    assert dry.left_out["zenvia"]["scope: states"] == 5
    assert (dry.left_out["crm"]["ambiguous"], dry.left_out["zenvia"]["ambiguous"]) == (1, 2)
    assert [(a.side, a.record_id) for a in dry.ambiguous] == [("crm", account.ambiguous[0])]
    # pairs whose subjects differ take the newer one (newest_wins); the hand-closed case
    # takes the open ticket's status the same way, or closes it
    overwritten = dry.overwrites()
    assert overwritten["crm"]["Subject"] + overwritten["zenvia"]["subject"] == 2 * EACH
    predicted = dry.zenvia_requests()["total"]
    assert predicted > dry.zenvia_requests()["writes"] > 2 * EACH  # creates, comments, merges

    # The real run, interrupted after half its syncs, then run again to the end.
    rt, queued = collecting(stack.runtime)
    first = onboard.run(rt, onboard.survey(rt))
    assert (first.linked, first.queued) == (2 * EACH + 1, 5 * EACH + 1)
    spent = sync_queue(stack, queued[: len(queued) // 2])
    resumed = onboard.survey(rt)
    assert resumed.new_links == []
    assert len(resumed.steps) == len(queued) - len(queued) // 2
    queued.clear()
    second = onboard.run(rt, resumed)
    assert (second.linked, second.queued) == (0, len(resumed.steps))
    spent += sync_queue(stack, queued)

    assert spent == predicted
    assert (len(stack.cases()), len(stack.tickets())) == (
        cases_before + EACH,
        tickets_before + EACH,
    )
    links = {(link.crm_id, link.zenvia_id) for link in stack.links() if link.crm_id}
    for pair in [*account.by_id, *account.by_rule, *account.by_file, account.half_linked]:
        assert pair in links
    subjects = Counter(t["subject"] for t in stack.tickets())
    assert subjects["Twice the same"] == 2, "an ambiguous match is neither paired nor copied"
    assert all(count == 1 for subject, count in subjects.items() if subject != "Twice the same")
    assert not any(c["Subject"].startswith("Fechado") for c in stack.cases())
    for case_id, ticket_id in [*account.by_id, *account.by_file]:
        assert (
            stack.salesforce.agent.case(case_id)["Subject"]
            == stack.zenvia.ticket(ticket_id)["subject"]
        ), "a merge leaves one subject on both sides"
    for case_id, ticket_id in account.by_file[::10]:
        ticket_texts = [a["description"] for a in stack.zenvia.actions(ticket_id)]
        case_texts = [c.body for c in stack.runtime.connectors["crm"].list_comments(case_id)]
        assert sum("approved" in text for text in [*ticket_texts, *case_texts]) == 2, (
            "a comment copied by hand is paired, not copied again"
        )

    finished = onboard.survey(rt)
    assert (finished.new_links, finished.steps) == ([], [])
    assert finished.already_synced == 5 * EACH + 1


def test_the_commands_report_refuse_until_decided_and_name_each_bad_line(
    history_stack: Stack, tmp_path: Path
) -> None:
    stack = history_stack
    sf, zv = stack.salesforce.agent, stack.zenvia.agent
    by_hand = sf.create_case(Subject="Typed twice", Status="New", Origin="Web")
    copy = str(zv.create_ticket("Typed twice, in Portuguese")["id"])
    sf.create_case(Subject="Only here", Status="New", Origin="Web")
    sf.create_case(Subject="Twice the same", Status="New", Origin="Web", ContactId=CONTACTS[0])
    for _ in range(2):
        zv.create_ticket("Twice the same", clients=[CONTACTS[0]])
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        f"{by_hand[:15]},{copy}\n{by_hand},{copy}\nnot-an-id,1\n{to_id18('500000000009999')},999999\n"
    )
    env = cli_env(stack.env)

    locked_out = {"code": "TOO_MANY_REQUESTS", "message": "Too many failed requests"}
    # the ticket listing answers 429 once for the import's check, once for the survey
    stack.zenvia.answer_next("GET /v2/tickets", 429, locked_out, headers={"Retry-After": "1"})
    checked = run_cli("links", "import", str(pairs), "--dry-run", env=env)
    assert "would link 1 pair(s); 3 line(s) refused" in checked.stdout
    assert stack.links() == [], "a dry run links nothing"
    imported = run_cli("links", "import", str(pairs), env=env)
    assert imported.returncode == 1, imported.stderr
    assert f"{pairs}: line 2: crm:{by_hand} was already given on line 1" in imported.stderr
    assert (
        f"{pairs}: line 3: not a Salesforce id (15 or 18 letters and digits): 'not-an-id'"
        in imported.stderr
    )
    assert (
        f"line 4: crm record {to_id18('500000000009999')} does not exist; "
        "zenvia record 999999 does not exist"
    ) in imported.stderr
    assert "linked 1 pair(s); 3 line(s) refused" in imported.stdout
    again = run_cli("links", "import", str(pairs), env=env)
    assert f"line 1: salesforce case {by_hand} or Zenvia ticket {copy} is already linked" in (
        again.stderr
    )

    stack.zenvia.answer_next("GET /v2/tickets", 429, locked_out, headers={"Retry-After": "1"})
    dry = run_cli("onboard", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert stack.zenvia.hooks_fired == {"answer GET /v2/tickets": 2}, "both 429s waited out"
    report = json.loads(dry.stdout)
    assert report["links"] == {onboard.EARLIER: 1}
    assert report["creates"] == {"crm": 0, "zenvia": 1}
    assert [a["side"] for a in report["ambiguous"]] == ["crm"]
    assert report["zenvia_requests"]["total"] > 0

    said = run_cli("onboard", "--dry-run", env=env).stdout
    assert "pairs to link and merge (linked before, never synced): 1" in said
    assert "records to create: 1 Zenvia tickets, 0 CRM cases" in said
    assert f"ambiguous (same customer and subject): crm {report['ambiguous'][0]['id']}" in said
    assert f"{report['zenvia_requests']['total']} Zenvia requests" in said

    one_a_second = cli_env(
        stack.env,
        SYNCWORKER_ZENVIA_BUSINESS_HOURS="00:00-23:59",
        SYNCWORKER_ZENVIA_RATE_LIMIT="1",
        SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS="1",
    )
    patient = run_cli("onboard", "--dry-run", "--json", env=one_a_second)
    assert patient.returncode == 0, "a survey waits for the budget instead of failing"
    assert json.loads(patient.stdout)["survey_zenvia_requests"] > 1

    mixed = run_cli("onboard", "--json", env=env)
    assert mixed.returncode == 2
    assert "--json goes with --dry-run" in mixed.stderr

    daytime = cli_env(stack.env, SYNCWORKER_ZENVIA_BUSINESS_HOURS="00:00-23:59")
    refused = run_cli("onboard", "--allow-ambiguous", env=daytime)
    assert refused.returncode == onboard_cli.NOT_NOW
    assert "refused: Zenvia's budget is limited now; run it after 23:59" in refused.stderr
    ambiguous = run_cli("onboard", env=env)
    assert ambiguous.returncode == onboard_cli.NOT_NOW
    assert "pair the ambiguous records with `syncworker links import FILE`" in ambiguous.stderr
    assert len(stack.links()) == 1, "a refused run links nothing"

    stack.zenvia.answer_next(
        "GET /v2/tickets", 429, locked_out, headers={"Retry-After": "1"}, times=PATIENCE + 1
    )
    gave_up = run_cli("onboard", "--dry-run", env=env)
    assert gave_up.returncode == 2
    assert f"still refused after {PATIENCE} waits: try again in 1 s" in gave_up.stderr

    stack.start_worker()
    done = run_cli("onboard", "--allow-ambiguous", "--wait", env=env)
    assert done.returncode == 0, done.stderr
    assert "linked 0 pair(s), queued 2 sync(s)" in done.stdout
    assert "finished 2 sync(s), 0 failed" in done.stdout
    assert len(stack.tickets()) == 4, "the case alone on its side was copied"
