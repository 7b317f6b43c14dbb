"""Polling and streaming: changed_since, iter_all, query batches beyond 2,000 rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import SandboxServer

from .conftest import START, MovableClock

pytestmark = pytest.mark.contract

MS = timedelta(milliseconds=1)


def test_changed_since_yields_changed_and_deleted_cases_in_version_order(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    old = sandbox.agent.create_case(Subject="old, untouched")
    first = sandbox.agent.create_case(Subject="first")
    second = sandbox.agent.create_case(Subject="second")
    doomed = sandbox.agent.create_case(Subject="doomed")
    clock.advance(minutes=5)
    since = clock()
    sandbox.agent.edit(second, Priority="High")  # since + 0 ms
    sandbox.agent.delete(doomed)  # since + 1 ms
    sandbox.agent.edit(first, Status="Working")  # since + 2 ms

    changed = list(connector.changed_since(since))

    assert [(r.id, r.deleted) for r in changed] == [
        (second, False),
        (doomed, True),
        (first, False),
    ]
    assert [r.version for r in changed] == [since, since + MS, since + 2 * MS]
    assert changed[1].fields["IsDeleted"] is True
    assert old not in {r.id for r in changed}
    # changed comments + changed cases + the comment versions of those cases
    assert connector.requests.by_endpoint["GET queryAll"] == 3


def test_since_is_inclusive_to_the_millisecond(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="on the edge")
    stamp = connector.get(case_id).version
    assert [r.id for r in connector.changed_since(stamp)] == [case_id]
    assert [r.id for r in connector.changed_since(stamp + timedelta(microseconds=999))] == [case_id]
    assert list(connector.changed_since(stamp + MS)) == []


def test_a_new_comment_moves_its_case_version_to_the_comment_stamp(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    """A CaseComment does not touch its Case in Salesforce; the connector folds the newest
    comment's SystemModstamp into the case's version so a comment alone is seen as a change."""
    quiet = sandbox.agent.create_case(Subject="quiet case")
    busy = sandbox.agent.create_case(Subject="busy case")
    clock.advance(hours=1)
    since = clock()
    sandbox.agent.edit(busy, Subject="busy case, edited")
    sandbox.agent.add_comment(quiet, "customer called back")
    sandbox.agent.add_comment(busy, "and here too")

    changed = list(connector.changed_since(since))

    stamps = {c["ParentId"]: c["SystemModstamp"] for c in sandbox.comments()}
    assert [r.id for r in changed] == [quiet, busy]
    assert [r.version for r in changed] == [_stamp(stamps[quiet]), _stamp(stamps[busy])]
    assert changed[0].fields["SystemModstamp"] == "2026-03-10T15:00:00.000+0000"
    assert connector.get(quiet).version == changed[0].version


def _stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_changed_since_needs_an_aware_datetime(connector: SalesforceConnector) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(connector.changed_since(START.replace(tzinfo=None)))


def test_iter_all_streams_every_live_case_in_default_batches_beyond_2000(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    ids = [sandbox.agent.create_case(Subject=f"case {n}") for n in range(2_050)]
    sandbox.agent.delete(ids[0])

    streamed = [record.id for record in connector.iter_all()]

    assert streamed == ids[1:]
    assert connector.requests.by_endpoint["GET query"] == 1
    assert connector.requests.by_endpoint["GET query/{locator}"] == 1
    assert server.counters.by_endpoint["GET /services/data/{version}/query/{locator}"] == 1


def test_changed_since_follows_next_records_url_with_a_small_batch_size(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    for n in range(2_450):
        sandbox.agent.create_case(Subject=f"case {n}")
    rows = list(
        connector.query(
            "SELECT Id, SystemModstamp FROM Case ORDER BY SystemModstamp, Id", batch_size=200
        )
    )
    assert len(rows) == 2_450
    assert len({row["Id"] for row in rows}) == 2_450
    assert connector.requests.by_endpoint["GET query/{locator}"] == 12  # 13 batches of ≤ 200

    changed = list(connector.changed_since(START))
    assert len(changed) == 2_450
    versions = [(r.version, r.id) for r in changed]
    assert versions == sorted(versions)
    assert connector.requests.by_endpoint["GET queryAll/{locator}"] == 1  # 2,000 + 450


def test_an_expired_session_mid_stream_reauthenticates_and_keeps_the_cursor(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    for n in range(450):
        sandbox.agent.create_case(Subject=str(n))
    stream = connector.query("SELECT Id FROM Case ORDER BY Id", batch_size=200)
    head = [next(stream) for _ in range(200)]
    sandbox.expire_tokens()
    rest = list(stream)
    assert len({row["Id"] for row in head + rest}) == 450
    assert connector.requests.by_endpoint["POST oauth2/token"] == 2
