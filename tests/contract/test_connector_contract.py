"""The connector contract: what the sync service relies on from every connector.

One suite, run for each remote against its sandbox over real HTTP, through the `Connector`
protocol only. What differs between remotes (how a person makes a record there, a valid
payload, how to provoke its faults) comes from its harness (`connector_harness.py`); a new
CRM's connector must pass every test here before the service may use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import pytest

from syncworker.connectors.base import (
    Connector,
    CrmConnector,
    Listed,
    ListingPage,
    NativeFields,
    RemoteRecord,
)
from syncworker.connectors.errors import (
    AuthError,
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.engine import is_copy_of
from syncworker.markers import idempotency_key
from syncworker.runtime import build_gates
from syncworker.settings import Settings

from .connector_harness import HARNESSES, START, Harness
from .recording_gate import RecordingGate

pytestmark = pytest.mark.contract

KEY = idempotency_key("contract", "the create under test")
OTHER_KEY = idempotency_key("contract", "another create")


@pytest.fixture(scope="session")
def _running() -> Iterator[dict[str, Harness]]:
    """One sandbox server per remote for the session; each test resets its remote."""
    running: dict[str, Harness] = {}
    yield running
    for harness in running.values():
        harness.stop()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, _running: dict[str, Harness]) -> Iterator[Harness]:
    name: str = request.param
    if name not in _running:
        _running[name] = HARNESSES[name]()
    running = _running[name]
    running.reset()
    yield running
    running.close_connectors()


@pytest.fixture
def connector(harness: Harness) -> Connector:
    return harness.connector()


def _records(listed: Iterable[Listed]) -> list[RemoteRecord]:
    return [item for item in listed if isinstance(item, RemoteRecord)]


def _paged(pages: Iterable[ListingPage]) -> list[RemoteRecord]:
    return [record for page in pages for record in _records(page.records)]


def _count(connector: Connector) -> int:
    return len(_records(connector.iter_all()))


def _merged(heard: list[NativeFields]) -> NativeFields:
    merged: NativeFields = {}
    for fields in heard:
        merged.update(fields)
    return merged


def _wait_out_listing_lag(harness: Harness, connector: Connector) -> None:
    harness.advance(connector.listing_lag.total_seconds())


# -- listing and cursors -----------------------------------------------------------------------


def test_a_pass_lists_what_changed_since_and_not_what_did_not(
    harness: Harness, connector: Connector
) -> None:
    """A poll lists from its cursor minus `stamp_precision`, once `listing_lag` has passed:
    then a change made after the cursor is listed even when the remote stamped it earlier
    than the cursor (whole seconds), and a record unchanged since before is not."""
    quiet = harness.human_create("unchanged since before")
    edited = harness.human_create("edited after the cursor")
    harness.advance(60.4)
    since = harness.clock()
    harness.advance(0.2)
    made = harness.human_create("made after the cursor")
    harness.human_edit(edited, "edited")
    _wait_out_listing_lag(harness, connector)
    start = since - connector.stamp_precision

    listed = {record.id: record for record in _records(connector.changed_since(start))}
    paged = _paged(connector.changed_pages(start))

    assert {made, edited} <= set(listed)
    assert quiet not in listed
    assert {record.id for record in paged} == set(listed)
    assert listed[edited].fields[harness.title_field] == "edited"
    for record in listed.values():
        assert record.version.utcoffset() == timedelta(0)
        assert record.version >= start


def test_listings_come_in_version_order_where_the_connector_says_so(
    harness: Harness, connector: Connector
) -> None:
    """`changed_since` is always in ascending (version, id) order; `changed_pages` too when
    `listing_ordered` says so (the poll's cursor then follows the records)."""
    ids = [harness.human_create(f"record {n}") for n in range(4)]
    harness.advance(60)
    since = harness.clock()
    for n, record_id in enumerate(reversed(ids)):  # versions in the opposite order to ids
        harness.advance(1.5)
        harness.human_edit(record_id, f"edit {n}")
    harness.advance(1.5)
    harness.human_edit(ids[3], "same moment")  # two changes sharing one stamp: ids break ties
    harness.human_edit(ids[1], "same moment")
    _wait_out_listing_lag(harness, connector)
    start = since - connector.stamp_precision

    listed = [(r.version, r.id) for r in _records(connector.changed_since(start))]
    paged = [(r.version, r.id) for r in _paged(connector.changed_pages(start))]

    assert set(ids) <= {record_id for _, record_id in listed}
    assert listed == sorted(listed)
    if connector.listing_ordered:
        assert paged == sorted(paged)


def test_a_stopped_pass_goes_on_from_where_it_stopped_and_misses_nothing(
    harness: Harness, connector: Connector
) -> None:
    """A poll may stop after any page (its budget ran out). It goes on from the page's
    `resume` position, stored as JSON, or, when there is none before the end, from its
    cursor (an ordered listing's last record). Either way it lists everything a whole
    pass does; a resumed pass costs no request a whole pass would not."""
    since = harness.clock()
    made = {harness.human_create(f"record {n}") for n in range(5)}
    _wait_out_listing_lag(harness, connector)
    sent = connector.requests.total
    whole = list(connector.changed_pages(since))
    whole_cost = connector.requests.total - sent
    everything = {record.id for record in _paged(whole)}

    assert made <= everything
    assert whole[-1].resume is None, "the last page ends the pass"
    assert connector.listing_ordered or all(page.resume is not None for page in whole[:-1])
    for stop in range(len(whole)):
        sent = connector.requests.total
        pages = connector.changed_pages(since)
        first = [next(pages) for _ in range(stop + 1)]
        resume = first[-1].resume
        if resume is not None:
            rest = list(connector.changed_pages(since, json.loads(json.dumps(resume))))
            assert connector.requests.total - sent == whole_cost
        elif connector.listing_ordered:
            seen = _paged(first)
            cursor = max((record.version for record in seen), default=since)
            rest = list(connector.changed_pages(cursor))
        else:
            rest = []
        assert {record.id for record in _paged(first + rest)} == everything, f"stopped at {stop}"


# -- get -----------------------------------------------------------------------------------


def test_get_reads_the_record_at_the_version_a_listing_gave_it(
    harness: Harness, connector: Connector
) -> None:
    """The service compares a read's version with the listed one, and takes `changed_at`
    of a stored payload for the record's own change time."""
    record_id = harness.human_create("read me")
    _wait_out_listing_lag(harness, connector)
    listed = {r.id: r for r in _records(connector.changed_since(START))}

    record = connector.get(record_id)

    assert record.id == record_id
    assert not record.deleted
    assert record.fields[harness.title_field] == "read me"
    assert record.version == listed[record_id].version
    assert record.version.utcoffset() == timedelta(0)
    assert connector.changed_at(record.fields) == record.changed_at
    assert record.changed_at is None or record.changed_at <= record.version


def test_a_missing_record_is_not_found_and_not_taken_as_deleted(
    harness: Harness, connector: Connector
) -> None:
    """A 404 alone proves nothing: only `confirm_deleted` may say a record is gone."""
    live = harness.human_create("still here")

    with pytest.raises(NotFoundError) as caught:
        connector.get(harness.missing_id)

    assert caught.value.remote == connector.system
    assert connector.confirm_deleted(harness.missing_id) is False
    assert connector.confirm_deleted(live) is False


def test_a_deleted_record_is_not_found_and_confirmed_deleted(
    harness: Harness, connector: Connector
) -> None:
    record_id = harness.human_create("to be deleted")
    if not harness.human_delete(record_id):
        pytest.skip(f"{harness.name} records cannot be deleted")

    with pytest.raises(NotFoundError):
        connector.get(record_id)
    assert connector.confirm_deleted(record_id) is True


# -- create idempotency --------------------------------------------------------------------


def test_a_created_record_reads_back_as_created(harness: Harness, connector: Connector) -> None:
    fields = harness.create_fields("Created by the sync")

    created = connector.create(fields, idempotency_key=KEY, description="Why it was made")
    record = connector.get(created.id)

    assert record.version == created.version
    assert {name: record.fields[name] for name in fields} == fields


def test_a_create_whose_reply_was_lost_is_found_and_never_made_twice(
    harness: Harness, connector: Connector
) -> None:
    """The service records each send, then asks `find_created` before sending again: it
    must find what a create with a lost reply made, and never answer "not created" while
    the remote may not list it yet (a RateLimitedError says to wait instead)."""
    before = _count(connector)
    harness.human_create("a person's record of the same moment")
    sent_at = harness.clock()
    harness.lose_next_reply("create")
    fields = harness.create_fields("Its reply was lost")

    try:
        returned: RemoteRecord | None = connector.create(fields, idempotency_key=KEY)
    except TransientError:
        returned = None
    assert _count(connector) == before + 2
    early: RemoteRecord | None = None
    wait = 0.0
    try:
        early = connector.find_created(KEY, around=sent_at, attempts=[sent_at])
    except RateLimitedError as refused:
        wait = refused.retry_after
    assert (early is not None) != (wait > 0), "before the listing lag: the record or a wait"
    _wait_out_listing_lag(harness, connector)
    found = connector.find_created(KEY, around=sent_at, attempts=[sent_at])

    assert found is not None
    assert early is None or early.id == found.id
    assert returned is None or found.id == returned.id
    assert connector.get(found.id).fields[harness.title_field] == "Its reply was lost"
    assert _count(connector) == before + 2


def test_find_created_finds_nothing_for_a_key_never_sent(
    harness: Harness, connector: Connector
) -> None:
    """Never someone else's record: not a person's, not one created under another key."""
    around = harness.clock()
    harness.human_create("Same title")
    connector.create(harness.create_fields("Same title"), idempotency_key=OTHER_KEY)
    _wait_out_listing_lag(harness, connector)

    assert connector.find_created(KEY, around=around, attempts=[around]) is None
    assert connector.find_created(OTHER_KEY, around=around, attempts=[around]) is not None


def test_a_crm_record_names_the_ticket_noted_on_it(harness: Harness, connector: Connector) -> None:
    """The CRM side notes a case's ticket, and reads the note back from the record alone: how
    the service recognises a case its own create made whose link was never committed."""
    if connector.side != "crm":
        pytest.skip(f"{harness.name} is the ticket side: its creates leave a marker instead")
    assert isinstance(connector, CrmConnector)
    record_id = harness.human_create("a person's case, paired later")
    assert connector.noted_ticket(connector.get(record_id)) is None
    requests = connector.requests.total

    connector.note_ticket(record_id, "4711")

    assert connector.requests.total == requests + 1
    assert connector.noted_ticket(connector.get(record_id)) == "4711"


# -- update and `landed` -------------------------------------------------------------------


def test_an_update_lands_every_change_and_says_so(harness: Harness, connector: Connector) -> None:
    record_id = harness.human_create("before the update")
    harness.advance(2)  # past any stamp precision: the update gets a later version
    before = connector.get(record_id)
    heard: list[NativeFields] = []

    connector.update(record_id, dict(harness.changes), landed=heard.append)
    after = connector.get(record_id)

    assert _merged(heard) == harness.changes
    assert {name: after.fields[name] for name in harness.changes} == harness.changes
    assert after.version > before.version


def test_an_update_sends_the_requests_it_says_it_costs(
    harness: Harness, connector: Connector
) -> None:
    """A plan's reservation holds `requests_to_update` per update: an update that sends more
    than it says would overrun the window the budget kept for it."""
    record_id = harness.human_create("counted")
    connector.get(record_id)  # signed in: a token request is not the update's
    sent_before = connector.requests.total

    connector.update(record_id, dict(harness.changes))

    assert connector.requests.total - sent_before == connector.requests_to_update(harness.changes)
    assert connector.requests_to_update({}) == 0


def test_an_empty_update_sends_nothing(harness: Harness, connector: Connector) -> None:
    record_id = harness.human_create("left alone")
    heard: list[NativeFields] = []

    connector.update(record_id, {}, landed=heard.append)

    assert _merged(heard) == {}
    assert connector.requests.total == 0
    assert harness.server.counters.total == 0


def test_a_refused_update_is_permanent_in_the_remotes_words_and_landed_tells_what_stayed(
    harness: Harness, connector: Connector
) -> None:
    """An update may take several requests: `landed` must name exactly the fields the
    remote now holds from it, so the service's baseline matches the remote after a refusal."""
    record_id = harness.human_create("before the refusal")
    before = connector.get(record_id)
    heard: list[NativeFields] = []

    with pytest.raises(PermanentError) as caught:
        connector.update(record_id, dict(harness.refused_changes), landed=heard.append)

    error = caught.value
    assert not isinstance(error, NotFoundError | MalformedResponseError)
    assert error.status is not None
    assert 400 <= error.status < 500
    assert harness.refused_message in error.message
    assert error.remote == connector.system
    landed = _merged(heard)
    assert landed == {name: harness.refused_changes[name] for name in landed}
    after = connector.get(record_id)
    for name, value in harness.refused_changes.items():
        expected = value if name in landed else before.fields[name]
        assert after.fields[name] == expected, name


# -- comments ------------------------------------------------------------------------------


def test_a_comment_is_listed_once_as_written_with_its_visibility(
    harness: Harness, connector: Connector
) -> None:
    record_id = harness.human_create("commented")

    public = connector.add_comment(record_id, "Seen by the customer", public=True)
    internal = connector.add_comment(record_id, "For agents only", public=False)
    comments = connector.list_comments(record_id)

    by_id = {comment.id: comment for comment in comments}
    assert len(comments) == len(by_id) == 2
    assert (by_id[public].body, by_id[public].public) == ("Seen by the customer", True)
    assert (by_id[internal].body, by_id[internal].public) == ("For agents only", False)
    for comment in comments:
        assert comment.record_id == record_id
        assert comment.created_at.utcoffset() == timedelta(0)


def test_a_long_comment_still_reads_as_our_copy(harness: Harness, connector: Connector) -> None:
    """A remote may cut a long text; `is_copy_of` must still know it, or the service would
    copy it back or write it again."""
    record_id = harness.human_create("a long story")
    body = "\n".join(f"Paragraph {n}: {'ação e reação ' * 6}" for n in range(60))

    connector.add_comment(record_id, body, public=True)
    [listed] = connector.list_comments(record_id)

    assert is_copy_of(listed.body, body)


def test_a_comment_whose_reply_was_lost_is_found_by_its_text_once(
    harness: Harness, connector: Connector
) -> None:
    """Comments carry no marker: the service looks for its text before posting again."""
    record_id = harness.human_create("commented")
    connector.get(record_id)
    harness.lose_next_reply("add_comment")
    body = "Written once, its reply lost"

    try:
        returned: str | None = connector.add_comment(record_id, body, public=False)
    except TransientError:
        returned = None
    copies = [c for c in connector.list_comments(record_id) if is_copy_of(c.body, body)]

    assert len(copies) == 1
    assert returned is None or copies[0].id == returned


# -- error classes -------------------------------------------------------------------------

Provoke = Callable[[Harness, Connector, str], None]


def _server_error(harness: Harness, connector: Connector, record_id: str) -> None:
    harness.server.faults.error_rate = 1.0
    connector.get(record_id)


def _dropped_connection(harness: Harness, connector: Connector, record_id: str) -> None:
    harness.server.faults.drop_rate = 1.0
    connector.get(record_id)


def _validation(harness: Harness, connector: Connector, record_id: str) -> None:
    harness.refuse_next_update("The title breaks the remote's rule")
    connector.update(record_id, {harness.title_field: "refused"})


def _refused_credentials(harness: Harness, connector: Connector, record_id: str) -> None:
    harness.connector(credentials=False).get(record_id)


def _rate_limited(harness: Harness, connector: Connector, record_id: str) -> None:
    harness.throttle()
    connector.get(record_id)


@pytest.mark.parametrize(
    ("provoke", "expected", "status"),
    [
        (_server_error, TransientError, 500),
        (_dropped_connection, TransientError, None),
        (_validation, PermanentError, 400),
        (_refused_credentials, AuthError, 401),
        (_rate_limited, RateLimitedError, 429),
    ],
    ids=["5xx", "dropped", "validation", "401", "rate-limit"],
)
def test_each_failure_has_the_class_that_says_what_to_do_next(
    harness: Harness, provoke: Provoke, expected: type[RemoteError], status: int | None
) -> None:
    """transient → retry with backoff, rate-limited → retry after the stated wait, permanent →
    dead letter with the remote's message, auth → stop; the connector retries none itself
    (one dropped pooled connection aside)."""
    gate = RecordingGate()
    connector = harness.connector(gate=gate)
    record_id = harness.human_create("target")
    connector.get(record_id)  # signed in, a connection pooled
    harness.server.reset_counters()

    with pytest.raises(RemoteError) as caught:
        provoke(harness, connector, record_id)

    error = caught.value
    assert type(error) is expected
    assert error.status == status
    assert error.remote == connector.system
    if expected is not TransientError or status is not None:
        assert harness.server.counters.total == 1, "sent once, never retried"
    if isinstance(error, RateLimitedError):
        _endpoint, response = gate.after[-1]
        assert error.retry_after == float(response.headers["Retry-After"])
    if expected is PermanentError:
        assert error.message == "The title breaks the remote's rule"
        assert connector.get(record_id).fields[harness.title_field] == "target"


# -- rate-limit signals --------------------------------------------------------------------


def test_the_gate_is_asked_before_every_request_and_hears_every_answer(
    harness: Harness,
) -> None:
    gate = RecordingGate()
    connector = harness.connector(gate=gate)
    record_id = harness.human_create("busy")

    connector.get(record_id)
    connector.update(record_id, dict(harness.changes))
    connector.add_comment(record_id, "a note", public=False)
    connector.list_comments(record_id)
    list(connector.changed_since(START))
    with pytest.raises(NotFoundError):
        connector.get(harness.missing_id)

    assert len(gate.before) == connector.requests.total == harness.server.counters.total
    assert [endpoint for endpoint, _response in gate.after] == gate.before
    assert gate.after[-1][1].status_code == 404


def test_a_gate_refusal_sends_nothing_and_writes_nothing(harness: Harness) -> None:
    """A RateLimitedError means unsent: the service counts the attempt as never made."""
    gate = RecordingGate()
    connector = harness.connector(gate=gate)
    record_id = harness.human_create("untouched")
    gate.refuse_with = 7.5
    attempts: list[Callable[[], object]] = [
        lambda: connector.create(harness.create_fields("never"), idempotency_key=KEY),
        lambda: connector.add_comment(record_id, "never", public=True),
        lambda: connector.update(record_id, dict(harness.changes)),
        lambda: connector.get(record_id),
        lambda: list(connector.changed_since(START)),
    ]

    for attempt in attempts:
        with pytest.raises(RateLimitedError) as caught:
            attempt()
        assert caught.value.retry_after == 7.5

    assert harness.server.counters.total == 0
    gate.refuse_with = None
    assert _count(connector) == 1
    assert connector.list_comments(record_id) == []
    assert connector.get(record_id).fields[harness.title_field] == "untouched"


def test_a_spent_budget_stops_every_worker_before_it_sends(
    harness: Harness, redis_url: str
) -> None:
    """What the remote says of its budget (a stated quota, a 429's wait) reaches the shared
    gate the runtime puts in front of the connector, so every worker waits, not only the
    one that was told."""
    settings = Settings(redis_url=redis_url)
    side = harness.connector().side
    told = harness.connector(gate=build_gates(settings)[side])
    record_id = harness.human_create("wanted by two workers")
    harness.spend_budget()

    with pytest.raises(RateLimitedError):
        told.get(record_id)
    assert build_gates(settings)[side].quota_used() == harness.reported_quota()
    sent = harness.server.counters.total
    other = harness.connector(gate=build_gates(settings)[side])

    with pytest.raises(RateLimitedError) as waiting:
        other.get(record_id)

    assert waiting.value.retry_after > 0
    assert harness.server.counters.total == sent
