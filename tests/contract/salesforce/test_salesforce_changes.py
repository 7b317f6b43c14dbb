"""Polling and streaming: changed_since, iter_all, query batches beyond 2,000 rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from syncworker.connectors.base import RemoteRecord, Unreadable
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import Response, SandboxServer

from .conftest import START, MovableClock

pytestmark = pytest.mark.contract

MS = timedelta(milliseconds=1)
SECOND = timedelta(seconds=1)


def test_changed_since_yields_changed_and_deleted_cases_in_version_order(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    old = sandbox.agent.create_case(Subject="old, untouched")
    first = sandbox.agent.create_case(Subject="first")
    second = sandbox.agent.create_case(Subject="second")
    doomed = sandbox.agent.create_case(Subject="doomed")
    clock.advance(minutes=5)
    since = clock()
    sandbox.agent.edit(second, Priority="High")  # since + 0 s
    clock.advance(seconds=1)
    sandbox.agent.delete(doomed)  # since + 1 s
    clock.advance(seconds=1)
    sandbox.agent.edit(first, Status="Working")  # since + 2 s

    changed = list(connector.changed_since(since))

    assert [(r.id, r.deleted) for r in changed] == [
        (second, False),
        (doomed, True),
        (first, False),
    ]
    assert [r.version for r in changed] == [since, since + SECOND, since + 2 * SECOND]
    assert changed[1].fields["IsDeleted"] is True
    assert old not in {r.id for r in changed}
    # changed comments (whose stamps are the only ones that can move these versions) +
    # changed cases
    assert connector.requests.by_endpoint["GET queryAll"] == 2


def test_changes_within_one_second_share_one_stamp_and_a_poll_from_it_lists_both(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    """Salesforce stores whole seconds: a case created 300 ms after a poll saw another one
    carries the same SystemModstamp, so only a poll from that stamp (not after it) sees it."""
    clock.advance(milliseconds=100)
    first = sandbox.agent.create_case(Subject="first")
    [seen] = connector.changed_since(START)
    clock.advance(milliseconds=300)
    second = sandbox.agent.create_case(Subject="second")

    stamps = {case["Id"]: case["SystemModstamp"] for case in sandbox.cases()}
    assert stamps == {first: "2026-03-10T15:00:00.000+0000", second: "2026-03-10T15:00:00.000+0000"}
    assert seen.id == first
    assert seen.version == START
    assert [r.id for r in connector.changed_since(seen.version)] == sorted([first, second])
    assert list(connector.changed_since(seen.version + MS)) == []


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

    assert sorted(streamed) == sorted(ids[1:])
    assert connector.requests.by_endpoint["GET query"] == 1
    assert connector.requests.by_endpoint["GET query/{locator}"] == 1
    assert server.counters.by_endpoint["GET /services/data/{version}/query/{locator}"] == 1


def test_iter_all_folds_each_case_newest_comment_into_its_version_from_one_listing(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    plain = sandbox.agent.create_case(Subject="no comments")
    busy = sandbox.agent.create_case(Subject="two comments")
    withdrawn = sandbox.agent.create_case(Subject="a comment, deleted")
    clock.advance(hours=1)
    sandbox.agent.add_comment(busy, "first")
    clock.advance(minutes=1)
    sandbox.agent.add_comment(busy, "second")
    doomed = sandbox.agent.add_comment(withdrawn, "sent by mistake")
    clock.advance(minutes=1)
    sandbox.agent.delete(doomed)  # a deletion moves the comment's stamp, so the case's too

    versions = {record.id: record.version for record in connector.iter_all()}

    newest: dict[str, datetime] = {}
    for comment in sandbox.comments():
        newest[comment["ParentId"]] = max(
            _stamp(comment["SystemModstamp"]), newest.get(comment["ParentId"], START)
        )
    assert versions == {
        plain: _stamp(sandbox.agent.case(plain)["SystemModstamp"]),
        busy: newest[busy],
        withdrawn: newest[withdrawn],
    }
    assert newest[withdrawn] == START + timedelta(hours=1, minutes=2)
    # one Case listing and one CaseComment listing, whatever the number of cases
    assert dict(connector.requests.by_endpoint) == {
        "POST oauth2/token": 1,
        "GET query": 1,
        "GET queryAll": 1,
    }


def test_iter_all_pages_through_comments_beyond_2000(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    cases = [sandbox.agent.create_case(Subject=f"case {n}") for n in range(3)]
    last = {case: sandbox.agent.add_comment(case, "note 0") for case in cases}
    for n in range(1, 684):
        for case in cases:
            last[case] = sandbox.agent.add_comment(case, f"note {n}")
    stamps = {c["Id"]: _stamp(c["SystemModstamp"]) for c in sandbox.comments()}

    versions = {record.id: record.version for record in connector.iter_all()}

    assert versions == {case: stamps[last[case]] for case in cases}
    assert connector.requests.by_endpoint["GET queryAll"] == 1
    assert connector.requests.by_endpoint["GET queryAll/{locator}"] == 1  # 2,052 comments


def test_iter_all_folds_comments_into_cases_whatever_order_either_listing_comes_in(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    """Salesforce may order ids in a way Python does not (case-insensitively): no listing is
    refused, and every case still gets its own newest comment's stamp."""
    first, second = (sandbox.agent.create_case(Subject=f"case {n}") for n in range(2))
    case_stamp = sandbox.agent.case(first)["SystemModstamp"]
    later, latest = "2026-03-10T16:00:00.000+0000", "2026-03-10T17:00:00.000+0000"
    cases = [{"Id": case, "SystemModstamp": case_stamp} for case in (second, first)]
    comments = [
        {"Id": f"00a{n}", "ParentId": case, "SystemModstamp": stamp}
        for n, (case, stamp) in enumerate([(first, latest), (second, later), (first, later)])
    ]
    for label, rows in (("query", cases), ("queryAll", comments)):
        body = {"totalSize": len(rows), "done": True, "records": rows}
        sandbox.answer_next(f"GET /services/data/{{version}}/{label}", 200, body)

    versions = {r.id: r.version for r in connector.iter_all() if isinstance(r, RemoteRecord)}

    assert versions == {first: _stamp(latest), second: _stamp(later)}


def test_one_unreadable_case_in_a_listing_is_named_and_the_others_are_read(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    since = clock()
    good, bad, other = (sandbox.agent.create_case(Subject=f"case {n}") for n in range(3))

    def corrupt(response: Response) -> Response:
        rows = [
            {**row, "SystemModstamp": "soon"} if row.get("Id") == bad else row
            for row in response.body["records"]
        ]
        return Response(response.status, {**response.body, "records": rows}, response.headers)

    for resource in ("query", "queryAll"):
        sandbox.rewrite_next_response(
            f"GET /services/data/{{version}}/{resource}", corrupt, times=9
        )
    for listed in (list(connector.iter_all()), list(connector.changed_since(since))):
        [unreadable] = [item for item in listed if isinstance(item, Unreadable)]
        assert unreadable.id == bad
        assert "SystemModstamp" in unreadable.error.message
        assert sorted(r.id for r in listed if isinstance(r, RemoteRecord)) == sorted([good, other])


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
