"""The connector copes with a real org as the sandbox plays it by default: assignment rules,
My Domain logins, QUERY_TIMEOUT, Salesforce's own Id order, 15/18-character ids, deletions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import unquote

import httpx
import pytest

from syncworker.connectors.base import RemoteRecord
from syncworker.connectors.errors import AuthError, PermanentError, TransientError
from syncworker.connectors.salesforce import SalesforceConnector, UpsertOutcome
from syncworker.sandbox.salesforce import DEFAULT_QUEUE_ID, OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.server import Response, SandboxServer

from .conftest import CLIENT_ID, CLIENT_SECRET, START, MovableClock

pytestmark = pytest.mark.contract

OWNER = OWNER_IDS[3]
KEY = "0123456789abcdef0123"
TOKEN = "POST /services/oauth2/token"


def _owners(sandbox: SalesforceSandbox) -> dict[str, str]:
    return {case["Id"]: case["OwnerId"] for case in sandbox.cases()}


# -- 2. never clobber an owner -------------------------------------------------------------


def test_no_write_of_the_connector_lets_the_assignment_rule_take_a_case(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    human = sandbox.as_user(OWNER).create_case(Subject="owned by a person")
    connector.update(human, {"Priority": "High"})
    connector.add_comment(human, "noted", public=True)
    assert connector.update_many({human: {"Priority": "Low"}}) == {human: None}
    created = connector.create({"Subject": "from Zenvia"}, idempotency_key="key-1")
    [outcome] = connector.upsert_many([("key-2", {"Subject": "also from Zenvia"})]).values()
    assert isinstance(outcome, UpsertOutcome)

    owners = _owners(sandbox)
    assert owners[human] == OWNER
    assert DEFAULT_QUEUE_ID not in {owners[created.id], owners[outcome.id]}


def test_assignment_rules_may_run_on_creates_only(
    make_connector: Callable[..., SalesforceConnector], sandbox: SalesforceSandbox
) -> None:
    connector = make_connector(assignment_rules_on_create=True)
    created = connector.create({"Subject": "route me"}, idempotency_key=KEY)
    human = sandbox.as_user(OWNER).create_case(Subject="owned by a person")
    connector.update(human, {"Priority": "High"})

    owners = _owners(sandbox)
    assert owners[created.id] == DEFAULT_QUEUE_ID
    assert owners[human] == OWNER


# -- 3. log in where a real org allows it --------------------------------------------------


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com"])
def test_client_credentials_on_a_shared_login_host_fail_at_construction_naming_my_domain(
    host: str,
) -> None:
    with httpx.Client() as client, pytest.raises(ValueError, match=r"NAME\.my\.salesforce\.com"):
        SalesforceConnector(
            client,
            login_url=f"https://{host}",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )


def test_client_credentials_without_a_login_url_fail_at_construction() -> None:
    with httpx.Client() as client, pytest.raises(ValueError, match="need login_url"):
        SalesforceConnector(client, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


def test_the_server_refusing_the_domain_is_an_auth_error_naming_my_domain(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    refusal = {
        "error": "invalid_grant",
        "error_description": "request not supported on this domain",
    }
    sandbox.answer_next(TOKEN, 400, refusal)
    with pytest.raises(AuthError) as caught:
        connector.get("500000000000001")
    assert caught.value.code == "invalid_grant"
    assert "request not supported on this domain" in caught.value.message
    assert "https://NAME.my.salesforce.com" in caught.value.message


# -- 4. listings survive QUERY_TIMEOUT -----------------------------------------------------

SMALL_SCAN = {"query_scan_limit": 500}


def _spread_cases(sandbox: SalesforceSandbox, clock: MovableClock, count: int) -> list[str]:
    """`count` cases, ten per second, every seventh with a comment."""
    ids: list[str] = []
    for n in range(count):
        if n % 10 == 0:
            clock.advance(seconds=1)
        ids.append(sandbox.agent.create_case(Subject=f"case {n}"))
        if n % 7 == 0:
            sandbox.agent.add_comment(ids[-1], f"note {n}")
    return ids


@pytest.mark.parametrize("sandbox_options", [SMALL_SCAN])
def test_iter_all_of_an_org_too_big_for_one_query_reads_id_chunks(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    ids = _spread_cases(sandbox, clock, 1_200)

    listed = [r for r in connector.iter_all() if isinstance(r, RemoteRecord)]

    assert sorted(r.id for r in listed) == sorted(ids)
    commented = {c["ParentId"]: c["SystemModstamp"] for c in sandbox.comments()}
    for record in listed:
        if record.id in commented:
            assert record.version == datetime.fromisoformat(commented[record.id])
    # chunks of 10,000 → 5,000 → … → 312 rows: 6 timeouts, then 4 Case and 1 comment chunks
    queries = connector.requests.by_endpoint
    assert queries["GET query"] + queries["GET queryAll"] <= 2 * 6 + 4 + 1 + 2


@pytest.mark.parametrize("sandbox_options", [SMALL_SCAN])
def test_changed_since_a_busy_range_splits_it_and_misses_nothing(
    make_connector: Callable[..., SalesforceConnector],
    sandbox: SalesforceSandbox,
    clock: MovableClock,
) -> None:
    ids = _spread_cases(sandbox, clock, 1_200)
    connector = make_connector(clock=clock)

    changed = list(connector.changed_since(START))

    assert sorted(r.id for r in changed) == sorted(ids)
    versions = [(r.version, r.id) for r in changed if isinstance(r, RemoteRecord)]
    assert versions == sorted(versions)
    assert connector.requests.by_endpoint["GET queryAll"] < 20


@pytest.mark.parametrize("sandbox_options", [{"query_scan_limit": 100}])
def test_one_second_too_busy_for_one_query_is_read_in_id_chunks(
    make_connector: Callable[..., SalesforceConnector],
    sandbox: SalesforceSandbox,
    clock: MovableClock,
) -> None:
    ids = [sandbox.agent.create_case(Subject=str(n)) for n in range(150)]  # one second
    connector = make_connector(clock=clock)

    changed = list(connector.changed_since(START))

    assert sorted(r.id for r in changed) == sorted(ids)


@pytest.mark.parametrize("sandbox_options", [{"query_scan_limit": 5}])
def test_a_timeout_even_for_the_smallest_chunk_stays_transient(
    make_connector: Callable[..., SalesforceConnector],
    sandbox: SalesforceSandbox,
    clock: MovableClock,
) -> None:
    for n in range(8):
        sandbox.agent.create_case(Subject=str(n))
    connector = make_connector(clock=clock)
    with pytest.raises(TransientError) as caught:
        list(connector.changed_since(START))
    assert caught.value.code == "QUERY_TIMEOUT"


# -- 5. no order assumed -------------------------------------------------------------------


def test_changed_since_sorts_whatever_order_the_server_answers_in(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    first = sandbox.agent.create_case(Subject="first")
    clock.advance(seconds=1)
    second = sandbox.agent.create_case(Subject="second")

    def backwards(response: Response) -> Response:
        body = {**response.body, "records": response.body["records"][::-1]}
        return Response(response.status, body, response.headers)

    sandbox.rewrite_next_response("GET /services/data/{version}/queryAll", backwards, times=2)
    assert [r.id for r in connector.changed_since(START)] == [first, second]


# -- 6. ids normalised ---------------------------------------------------------------------


def test_the_connector_takes_15_or_18_character_ids_and_sends_18(
    server: SandboxServer, sandbox: SalesforceSandbox
) -> None:
    sent: list[str] = []

    def record(request: httpx.Request) -> None:
        sent.append(unquote(str(request.url)) + request.content.decode())

    client = httpx.Client(timeout=5.0, event_hooks={"request": [record]})
    connector = SalesforceConnector(
        client, login_url=server.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    case_id = sandbox.agent.create_case(Subject="one")
    short, lower = case_id[:15], case_id.lower()

    assert connector.get(short).id == case_id
    connector.update(lower, {"Subject": "two"})
    connector.add_comment(short, "hello", public=True)
    assert [c.record_id for c in connector.list_comments(lower)] == [case_id]
    assert connector.update_many({short: {"Priority": "High"}}) == {short: None}
    assert connector.confirm_deleted(short) is False
    connector.close()

    assert sandbox.agent.case(case_id)["Priority"] == "High"
    written = [text for text in sent if "oauth2" not in text]
    assert len(written) == 7  # get (+ its comment stamps), update, comment, list, many, confirm
    for text in written:
        assert case_id in text
        assert lower not in text
        assert re.search(short + r"(?![A-Za-z0-9])", text) is None  # never the 15-character form


@pytest.mark.parametrize("bad", ["500", "500000000000001AA!", "500000000000001999"])
def test_a_malformed_id_is_a_permanent_error_saying_what_an_id_is(
    connector: SalesforceConnector, bad: str
) -> None:
    with pytest.raises(PermanentError, match="not a Salesforce id") as caught:
        connector.get(bad)
    assert caught.value.code == "MALFORMED_ID"
    assert connector.requests.total == 0


# -- 8. deletion confirmed -----------------------------------------------------------------


def test_confirm_deleted_is_true_for_deleted_and_merged_cases_only(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    live, doomed, master, duplicate = (
        sandbox.agent.create_case(Subject=name)
        for name in ("live", "doomed", "master", "duplicate")
    )
    sandbox.agent.add_comment(duplicate, "moves to the master")
    sandbox.agent.delete(doomed)
    sandbox.agent.merge(master, duplicate)

    assert connector.confirm_deleted(doomed) is True
    assert connector.confirm_deleted(duplicate) is True
    assert connector.confirm_deleted(live) is False
    assert connector.confirm_deleted(master) is False
    assert connector.confirm_deleted("500000000000009AAA") is False  # never existed / not visible
    assert [c.body for c in connector.list_comments(master)] == ["moves to the master"]
    merged = {c["Id"]: c for c in sandbox.cases()}[duplicate]
    assert merged["MasterRecordId"] == master


def test_changed_at_is_the_case_s_own_stamp_even_when_a_comment_moved_its_version(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    case_id = sandbox.agent.create_case(Subject="one")
    clock.advance(minutes=1)
    sandbox.agent.add_comment(case_id, "later")
    record = connector.get(case_id)
    assert record.version == START + timedelta(minutes=1)
    assert record.changed_at == START
    assert connector.changed_at(record.fields) == START
