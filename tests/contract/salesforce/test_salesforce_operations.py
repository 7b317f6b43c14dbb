"""The Salesforce connector's operations against the sandbox, over real sockets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from syncworker.connectors.base import Connector
from syncworker.connectors.errors import NotFoundError, PermanentError
from syncworker.connectors.salesforce import (
    DEFAULT_CASE_FIELDS,
    SalesforceConnector,
    UpsertOutcome,
)
from syncworker.engine import is_copy_of
from syncworker.sandbox.salesforce import API_USER_ID, OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.server import SandboxServer

from .conftest import EXT, START, STATIC_TOKEN, MovableClock

pytestmark = pytest.mark.contract

KEY = "0123456789abcdef0123"


def test_the_connector_satisfies_the_connector_protocol(connector: SalesforceConnector) -> None:
    as_protocol: Connector = connector
    assert as_protocol.side == "crm"
    assert as_protocol.system == "salesforce"


def test_get_returns_native_fields_and_system_modstamp_as_version(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="Printer on fire", Origin="Phone")
    record = connector.get(case_id)
    assert record.id == case_id
    assert record.deleted is False
    assert record.version == START
    assert record.version.tzinfo is not None
    assert "attributes" not in record.fields
    assert set(record.fields) == {*DEFAULT_CASE_FIELDS, EXT}
    assert record.fields["Subject"] == "Printer on fire"
    assert record.fields["SystemModstamp"] == "2026-03-10T15:00:00.000+0000"
    assert connector.requests.by_endpoint["GET sobjects/Case/{id}"] == 1


def test_get_of_a_missing_or_deleted_case_is_not_found(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="soon gone")
    sandbox.agent.delete(case_id)
    for missing in (case_id, "500000000000009AAA"):
        with pytest.raises(NotFoundError) as caught:
            connector.get(missing)
        assert caught.value.status == 404


def test_create_upserts_on_the_external_id_and_a_repeat_updates_the_same_case(
    connector: SalesforceConnector,
    sandbox: SalesforceSandbox,
    server: SandboxServer,
    clock: MovableClock,
) -> None:
    first = connector.create(
        {"Subject": "Boleto não gerado", "Priority": "High", "Origin": "Web"},
        idempotency_key=KEY,
        description="Customer cannot print the invoice",
    )
    assert first.fields[EXT] == KEY
    assert first.fields["Description"] == "Customer cannot print the invoice"
    assert first.fields["CreatedById"] == API_USER_ID
    clock.advance(seconds=1)
    again = connector.create({"Subject": "Boleto não gerado"}, idempotency_key=KEY)
    assert again.id == first.id
    assert again.version > first.version
    assert len(sandbox.cases()) == 1
    upserts = server.counters.by_endpoint[
        "PATCH /services/data/{version}/sobjects/Case/{field}/{value}"
    ]
    assert upserts == 2
    assert connector.requests.by_endpoint[f"PATCH sobjects/Case/{EXT}/{{key}}"] == 2


def test_create_refuses_fields_that_would_overwrite_the_key(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    with pytest.raises(PermanentError):
        connector.create({EXT: "other"}, idempotency_key=KEY)
    assert sandbox.cases() == []


def test_find_created_finds_the_case_by_key_even_deleted(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    assert connector.find_created(KEY, around=START) is None
    created = connector.create({"Subject": "x"}, idempotency_key=KEY)
    found = connector.find_created(KEY, around=START)
    assert found is not None
    assert found.id == created.id
    sandbox.agent.delete(created.id)
    gone = connector.find_created(KEY, around=START)
    assert gone is not None
    assert gone.deleted is True


def test_update_sends_one_patch_with_exactly_the_changes(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    case_id = sandbox.agent.create_case(Subject="before", Priority="Low")
    connector.update(case_id, {"Subject": "after", "Status": "Closed"})
    connector.update(case_id, {})
    case = connector.get(case_id)
    assert case.fields["Subject"] == "after"
    assert case.fields["Priority"] == "Low"
    assert case.fields["IsClosed"] is True
    assert case.fields["LastModifiedById"] == API_USER_ID
    assert (
        server.counters.by_endpoint["PATCH /services/data/{version}/sobjects/Case/{record_id}"] == 1
    )


@pytest.mark.parametrize(
    ("changes", "code", "detail"),
    [
        ({"ContactId": "003-not-an-id"}, "MALFORMED_ID", "field ContactId"),
        ({"Subject": "x" * 300}, "STRING_TOO_LONG", "field Subject"),
        ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", "field IsClosed"),
        ({"OwnerId": "005000000000042AAA"}, "INVALID_CROSS_REFERENCE_KEY", "field OwnerId"),
        ({"Nope__c": 1}, "INVALID_FIELD", None),
    ],
    ids=["bad-id", "too-long", "read-only", "owner", "unknown-field"],
)
def test_refused_updates_are_permanent_with_salesforces_code_message_and_fields(
    connector: SalesforceConnector,
    sandbox: SalesforceSandbox,
    changes: dict[str, object],
    code: str,
    detail: str | None,
) -> None:
    case_id = sandbox.agent.create_case(Subject="target")
    with pytest.raises(PermanentError) as caught:
        connector.update(case_id, changes)
    error = caught.value
    assert not isinstance(error, NotFoundError)
    assert error.status == 400
    assert error.code == code
    assert error.message
    assert "PATCH /services/data/v62.0/sobjects/Case/" in (error.path or "")
    if detail:
        assert error.details == [detail]


def test_update_of_a_deleted_case_is_not_found(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="x")
    sandbox.agent.delete(case_id)
    with pytest.raises(NotFoundError) as caught:
        connector.update(case_id, {"Subject": "y"})
    assert caught.value.code == "ENTITY_IS_DELETED"


def test_comments_are_added_as_written_and_listed_in_order(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="talk")
    sandbox.agent.add_comment(case_id, "agent note", public=False)
    added = connector.add_comment(case_id, "Olá, cliente", public=True)
    listed = connector.list_comments(case_id)
    assert listed[1].id == added
    assert [c.record_id for c in listed] == [case_id, case_id]
    assert [c.body for c in listed] == ["agent note", "Olá, cliente"]  # customers read it
    assert [c.public for c in listed] == [False, True]
    assert [c.author_id for c in listed] == [OWNER_IDS[1], API_USER_ID]
    assert listed[1].created_at.tzinfo is not None


def test_a_comment_is_one_request_the_post_itself(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    """A read-back refused after the POST landed would look like a refused POST, and the sync
    would add the comment again: the connector sends nothing after the write."""
    case_id = sandbox.agent.create_case(Subject="one request")
    assert connector.list_comments(case_id) == []  # signed in already
    before = dict(connector.requests.by_endpoint)
    connector.add_comment(case_id, "só isso", public=True)
    sent = connector.requests.by_endpoint - Counter(before)
    assert sent == Counter({"POST sobjects/CaseComment": 1})


def test_a_comment_longer_than_4000_bytes_is_cut_and_still_known_as_ours(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="long")
    connector.add_comment(case_id, "ç" * 3000, public=False)
    [stored] = connector.list_comments(case_id)
    assert len(stored.body.encode()) <= 4000
    assert stored.body.endswith("…")
    assert is_copy_of(stored.body, "ç" * 3000)


def test_a_comment_on_a_missing_case_is_permanent(connector: SalesforceConnector) -> None:
    with pytest.raises(PermanentError) as caught:
        connector.add_comment("500000000000009AAA", "x", public=True)
    assert caught.value.code == "INVALID_CROSS_REFERENCE_KEY"


def test_update_many_reports_each_record_and_chunks_by_200(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    ids = [sandbox.agent.create_case(Subject=f"case {n}") for n in range(230)]
    deleted = ids[5]
    sandbox.agent.delete(deleted)
    changes: dict[str, dict[str, object]] = {case_id: {"Priority": "High"} for case_id in ids}
    changes[ids[7]] = {"Subject": "x" * 256}
    changes[ids[9]] = {}
    results = connector.update_many(changes)
    assert server.counters.by_endpoint["PATCH /services/data/{version}/composite/sobjects"] == 2
    failures = {case_id: error for case_id, error in results.items() if error is not None}
    assert set(failures) == {deleted, ids[7]}
    assert isinstance(failures[deleted], NotFoundError)
    assert isinstance(failures[ids[7]], PermanentError)
    assert failures[ids[7]].code == "STRING_TOO_LONG"
    assert failures[ids[7]].details == ["field Subject"]
    priorities = {c["Id"]: c["Priority"] for c in sandbox.cases(include_deleted=False)}
    assert priorities[ids[0]] == "High"
    assert priorities[ids[229]] == "High"
    assert priorities[ids[9]] == "Medium"


def test_upsert_many_creates_updates_and_reports_failures_per_key(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    existing = connector.create({"Subject": "old"}, idempotency_key="key-existing")
    items: list[tuple[str, dict[str, object]]] = [
        ("key-existing", {"Subject": "new"}),
        ("key-fresh", {"Subject": "fresh", "Origin": "Email"}),
        ("key-bad", {"Subject": "x" * 256}),
    ]
    results = connector.upsert_many(items)
    assert results["key-existing"] == UpsertOutcome(existing.id, created=False)
    fresh = results["key-fresh"]
    assert isinstance(fresh, UpsertOutcome)
    assert fresh.created is True
    bad = results["key-bad"]
    assert isinstance(bad, PermanentError)
    assert bad.code == "STRING_TOO_LONG"
    subjects = {c[EXT]: c["Subject"] for c in sandbox.cases()}
    assert subjects == {"key-existing": "new", "key-fresh": "fresh"}
    with pytest.raises(ValueError, match="once"):
        connector.upsert_many([("k", {}), ("k", {})])


def test_upsert_many_chunks_above_200_records(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    items = [(f"key-{n:03d}", {"Subject": str(n)}) for n in range(401)]
    results = connector.upsert_many(items)
    assert all(isinstance(r, UpsertOutcome) and r.created for r in results.values())
    assert len(sandbox.cases()) == 401
    label = "PATCH /services/data/{version}/composite/sobjects/{sobject}/{field}"
    assert server.counters.by_endpoint[label] == 3


@pytest.mark.parametrize("sandbox_options", [{"external_id_unique": False}])
def test_several_cases_with_one_key_make_create_fail_with_the_candidates(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    ids = {sandbox.agent.create_case(**{EXT: KEY}) for _ in range(2)}
    with pytest.raises(PermanentError) as caught:
        connector.create({"Subject": "which one?"}, idempotency_key=KEY)
    assert caught.value.status == 300
    assert caught.value.code == "MULTIPLE_CHOICES"
    assert set(caught.value.details) == ids
    assert len(sandbox.cases()) == 2
    results = connector.upsert_many([(KEY, {"Subject": "x"})])
    assert isinstance(results[KEY], PermanentError)
    assert results[KEY].code == "DUPLICATE_EXTERNAL_ID"


def test_static_token_connectors_work_without_oauth(
    make_connector: Callable[..., SalesforceConnector],
    server: SandboxServer,
    sandbox: SalesforceSandbox,
) -> None:
    connector = make_connector(
        client_id=None,
        client_secret=None,
        access_token=STATIC_TOKEN,
        instance_url=server.base_url,
    )
    case_id = sandbox.agent.create_case(Subject="static")
    assert connector.get(case_id).id == case_id
    assert "POST oauth2/token" not in connector.requests.by_endpoint


def test_connector_configuration_is_checked_up_front(server: SandboxServer) -> None:
    with httpx.Client() as client:
        with pytest.raises(ValueError, match="api_version"):
            SalesforceConnector(
                client,
                login_url=server.base_url,
                client_id="a",
                client_secret="b",
                api_version="45.0",
            )
        with pytest.raises(ValueError, match="instance_url"):
            SalesforceConnector(client, login_url=server.base_url, access_token="t")
        with pytest.raises(ValueError, match="client_id"):
            SalesforceConnector(client, login_url=server.base_url, client_id="a")
        with pytest.raises(ValueError, match="field name"):
            SalesforceConnector(
                client,
                login_url=server.base_url,
                client_id="a",
                client_secret="b",
                fields=("Id", "Subject; DROP"),
            )


def test_versions_are_utc_datetimes(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="tz")
    assert connector.get(case_id).version == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
