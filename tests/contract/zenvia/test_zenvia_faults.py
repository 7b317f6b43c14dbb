"""Every failure the remote can produce, classified at the connector boundary."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from syncworker.connectors.base import RemoteRecord, Unreadable
from syncworker.connectors.errors import (
    AuthError,
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.connectors.http import retry_after_seconds
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.server import RateLimit, Response, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

KEY = "00000000000000000abc"
GET_TICKET = "GET /v2/tickets/{ticket_id}"


def _created(sandbox: ZenviaSandbox) -> str:
    return str(sandbox.agent.create_ticket("Chamado")["id"])


# -- statuses ------------------------------------------------------------------------------


def test_a_server_error_is_transient_with_zenvias_message(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = _created(sandbox)
    server.faults.error_rate = 1.0

    with pytest.raises(TransientError) as caught:
        connector.get(ticket)

    assert (caught.value.status, caught.value.code) == (500, "INTERNAL_ERROR")
    assert caught.value.message == "injected server error"
    assert server.counters.injected["error"] == 1


def test_an_update_that_fails_halfway_reports_the_patches_that_landed(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    """One PATCH per attribute (category before urgency before subject): the caller must
    learn which values the ticket now holds."""
    ticket = _created(sandbox)
    sandbox.fail_next(
        "PATCH /v2/tickets/{ticket_id}/attributes/urgency", 500, "INTERNAL_ERROR", "later", []
    )
    heard: list[dict[str, Any]] = []

    with pytest.raises(TransientError):
        connector.update(
            ticket, {"subject": "Novo", "urgency": 3, "category": 2}, landed=heard.append
        )

    assert heard == [{"category": 2}]
    assert sandbox.ticket(ticket)["category"]["id"] == 2
    assert sandbox.ticket(ticket)["subject"] != "Novo"


def test_a_validation_error_is_permanent_and_names_the_fields(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    with pytest.raises(PermanentError) as caught:
        connector.create(
            {"subject": "x" * 351, "urgency": 9, "clients": ["client-99"]},
            idempotency_key=KEY,
        )

    error = caught.value
    assert type(error) is PermanentError
    assert (error.status, error.code) == (400, "VALIDATION_ERROR")
    assert error.message == "Invalid request: subject exceeds 350 characters"
    assert error.details == [
        "subject: subject exceeds 350 characters",
        "urgency.id: urgency 9 does not exist",
        "clients[0]: client 'client-99' does not exist",
    ]
    assert "urgency.id: urgency 9 does not exist" in str(error)
    assert sandbox.tickets() == []


def test_a_missing_ticket_is_not_found(connector: ZenviaConnector) -> None:
    with pytest.raises(NotFoundError) as caught:
        connector.add_comment("77", "olá", public=True)

    assert caught.value.message == "Ticket 77 not found"
    assert caught.value.path == "POST /v2/tickets/77/actions"


def test_a_wrong_token_is_an_auth_error(make_connector: Callable[..., ZenviaConnector]) -> None:
    connector = make_connector(token="not-the-token")

    with pytest.raises(AuthError) as caught:
        list(connector.iter_all())

    assert (caught.value.status, caught.value.code) == (401, "AUTHENTICATION_ERROR")
    assert caught.value.message.startswith("Missing or invalid X-API-TOKEN header (")
    assert "SYNCWORKER_ZENVIA_SIGNATURE_SECRET" in caught.value.message


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (409, "DUPLICATED", PermanentError),
        (403, "FORBIDDEN", AuthError),
        (503, "UNAVAILABLE", TransientError),
        (429, "TOO_MANY_REQUESTS", RateLimitedError),
    ],
    ids=["conflict-409", "forbidden-403", "unavailable-503", "rate-limited-no-retry-after"],
)
def test_other_statuses_map_to_their_class(
    connector: ZenviaConnector,
    sandbox: ZenviaSandbox,
    status: int,
    code: str,
    expected: type[RemoteError],
) -> None:
    ticket = _created(sandbox)
    sandbox.fail_next(GET_TICKET, status, code, f"remote says {code}", [])

    with pytest.raises(expected) as caught:
        connector.get(ticket)

    assert type(caught.value) is expected
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == f"remote says {code}"
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after == 60.0  # no Retry-After: the documented block


def test_the_rate_limit_answers_429_with_retry_after(
    make_connector: Callable[..., ZenviaConnector],
    sandbox: ZenviaSandbox,
    own_server: SandboxServer,
) -> None:
    connector = make_connector(on=own_server)
    ticket = _created(sandbox)
    own_server.faults.rate_limit = RateLimit(requests=2, window_seconds=60)
    connector.get(ticket)
    connector.get(ticket)

    with pytest.raises(RateLimitedError) as caught:
        connector.get(ticket)

    assert caught.value.status == 429
    assert caught.value.message == "Too many requests"
    assert 58 <= caught.value.retry_after <= 60
    assert own_server.counters.throttled == 1


def test_the_rate_limit_only_applies_in_business_hours(
    make_connector: Callable[..., ZenviaConnector],
    sandbox: ZenviaSandbox,
    own_server: SandboxServer,
    clock: Any,
) -> None:
    connector = make_connector(on=own_server)
    ticket = _created(sandbox)
    own_server.faults.rate_limit = RateLimit(
        requests=1, window_seconds=60, business_hours=(time(7, 1), time(19, 0))
    )
    clock.set(datetime(2026, 3, 11, 1, 0, tzinfo=UTC))  # 22:00 in Brasília: no limit
    for _ in range(3):
        connector.get(ticket)
    clock.set(datetime(2026, 3, 11, 13, 0, tzinfo=UTC))  # 10:00 in Brasília

    connector.get(ticket)
    with pytest.raises(RateLimitedError):
        connector.get(ticket)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("Wed, 11 Mar 2026 12:01:30 GMT", 90.0),
        ("Wed, 11 Mar 2026 11:00:00 GMT", 0.0),
        ("soon", 60.0),
        (None, 60.0),
    ],
    ids=["seconds", "fractional", "http-date", "http-date-past", "garbage", "absent"],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, expected: float) -> None:
    now = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(header, default=60.0, now=now) == expected


def test_an_http_date_retry_after_reaches_the_error(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = _created(sandbox)
    until = clock() + timedelta(seconds=45)

    def throttle(response: Response) -> Response:
        stamp = until.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return Response(
            429, {"code": "TOO_MANY_REQUESTS", "message": "slow down"}, {"Retry-After": stamp}
        )

    sandbox.rewrite_next_response(GET_TICKET, throttle)

    with pytest.raises(RateLimitedError) as caught:
        connector.get(ticket)

    assert caught.value.retry_after == 45.0
    assert caught.value.message == "slow down"


# -- transport -----------------------------------------------------------------------------


def test_a_hanging_server_is_a_transient_timeout(
    make_connector: Callable[..., ZenviaConnector], sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    connector = make_connector(timeout=0.2)
    ticket = _created(sandbox)
    server.faults.timeout_rate = 1.0
    server.faults.hang_seconds = 0.6

    with pytest.raises(TransientError, match="timed out") as caught:
        connector.get(ticket)

    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert connector.requests.by_endpoint == {"GET /tickets/{id}": 1}


def test_a_connection_dropped_every_time_is_transient(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = _created(sandbox)
    list(connector.iter_all())  # now a pooled keep-alive connection exists
    server.faults.drop_rate = 1.0

    with pytest.raises(TransientError, match="connection failed"):
        connector.get(ticket)

    # pooled connection dropped → one immediate retry on a fresh one, dropped too → give up
    assert connector.requests.by_endpoint["GET /tickets/{id}"] == 2
    assert server.counters.injected["drop"] == 2


def test_a_get_whose_pooled_connection_drops_is_retried_once(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = _created(sandbox)
    connector.get(ticket)
    sandbox.drop_next_request(GET_TICKET)

    record = connector.get(ticket)

    assert record.id == ticket
    assert connector.requests.by_endpoint == {"GET /tickets/{id}": 3}
    assert sandbox.hooks_fired[f"drop_before {GET_TICKET}"] == 1


def test_a_get_dropped_on_a_fresh_connection_is_not_retried(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = _created(sandbox)
    sandbox.drop_next_request(GET_TICKET)

    with pytest.raises(TransientError):
        connector.get(ticket)

    assert connector.requests.by_endpoint == {"GET /tickets/{id}": 1}


def test_a_post_whose_connection_drops_is_never_retried(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = _created(sandbox)
    connector.get(ticket)  # warm the pool: the retry rule must still not apply to a POST
    sandbox.drop_next_request("POST /v2/tickets/{ticket_id}/actions")

    with pytest.raises(TransientError, match="may or may not have been processed"):
        connector.add_comment(ticket, "oi", public=True)

    assert connector.requests.by_endpoint["POST /tickets/{id}/actions"] == 1
    assert server.counters.by_endpoint["POST /v2/tickets/{ticket_id}/actions"] == 1


# -- malformed payloads --------------------------------------------------------------------


def _rewrite_ticket(**changes: Any) -> Callable[[Response], Response]:
    def rewrite(response: Response) -> Response:
        return Response(response.status, {**response.body, **changes}, response.headers)

    return rewrite


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"updatedAt": 1700000000}, "updatedAt"),
        ({"updatedAt": "yesterday"}, "updatedAt"),
        ({"status": {"id": "5", "type": "RESOLVED"}}, "status.id"),
        ({"status": None}, "status"),
        ({"urgency": {"name": "Alta"}}, "urgency.id"),
        ({"clients": "client-1"}, "clients"),
        ({"id": None}, "id"),
        ({"subject": 42}, "subject"),
    ],
    ids=[
        "updatedAt-number",
        "updatedAt-text",
        "status-id-string",
        "status-null",
        "urgency-without-id",
        "clients-string",
        "id-null",
        "subject-number",
    ],
)
def test_a_wrong_typed_ticket_is_malformed_and_names_the_field(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, changes: dict[str, Any], field: str
) -> None:
    ticket = _created(sandbox)
    sandbox.rewrite_next_response(GET_TICKET, _rewrite_ticket(**changes))

    with pytest.raises(MalformedResponseError) as caught:
        connector.get(ticket)

    assert f"field {field!r}" in caught.value.message


def test_one_unreadable_ticket_in_a_listing_is_named_and_the_others_are_read(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    tickets = [_created(sandbox) for _ in range(3)]
    clock.advance(seconds=5)  # past the listing lag
    bad = tickets[1]

    def corrupt(response: Response) -> Response:
        body = [
            {**t, "urgency": {"name": "Alta"}} if str(t["id"]) == bad else t for t in response.body
        ]
        return Response(response.status, body, response.headers)

    created_at = connector.get(tickets[0]).version
    sandbox.rewrite_next_response("GET /v2/tickets", corrupt, times=100)
    for listing in (connector.iter_all, lambda: connector.changed_since(created_at)):
        listed = list(listing())
        [unreadable] = [item for item in listed if isinstance(item, Unreadable)]
        assert unreadable.id == bad
        assert f"ticket {bad}: field 'urgency.id' is not" in unreadable.error.message
        assert sorted(r.id for r in listed if isinstance(r, RemoteRecord)) == sorted(
            t for t in tickets if t != bad
        )


def test_a_listed_ticket_without_a_readable_id_makes_the_page_malformed(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    _created(sandbox)
    sandbox.rewrite_next_response(
        "GET /v2/tickets",
        lambda r: Response(r.status, [{**t, "id": None} for t in r.body], r.headers),
    )

    with pytest.raises(MalformedResponseError, match="field 'id'"):
        list(connector.iter_all())


def test_a_listing_that_is_not_an_array_is_malformed(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.rewrite_next_response(
        "GET /v2/tickets", lambda r: Response(200, {"items": r.body}, r.headers)
    )

    with pytest.raises(MalformedResponseError, match="not a JSON array"):
        list(connector.iter_all())


def test_a_bad_total_header_is_malformed(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.rewrite_next_response(
        "GET /v2/tickets", lambda r: Response(200, r.body, {**r.headers, "x-total": "many"})
    )

    with pytest.raises(MalformedResponseError, match="x-total"):
        list(connector.iter_all())


def test_a_page_that_repeats_is_malformed_not_an_endless_loop(
    make_connector: Callable[..., ZenviaConnector], sandbox: ZenviaSandbox
) -> None:
    connector = make_connector(page_size=2)
    sandbox.agent.populate(6)
    first_page: list[Any] = []

    def remember(response: Response) -> Response:
        first_page.extend(response.body)
        return response

    def repeat(response: Response) -> Response:
        return Response(200, list(first_page), response.headers)

    sandbox.rewrite_next_response("GET /v2/tickets", remember)
    sandbox.rewrite_next_response("GET /v2/tickets", repeat)

    with pytest.raises(MalformedResponseError, match="page 2 repeats page 1"):
        list(connector.iter_all())


def test_a_body_that_is_not_json_is_malformed() -> None:
    """The sandbox always writes JSON, so this one case uses httpx's mock transport."""
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=b"<html>maintenance</html>")
    )
    connector = ZenviaConnector(
        httpx.Client(transport=transport), base_url="https://zenvia.test/v2", token="t0k3n"
    )

    with pytest.raises(MalformedResponseError, match="not JSON"):
        connector.get("1")


# -- the gate ------------------------------------------------------------------------------


def test_the_gate_is_consulted_before_every_request_including_the_retry(
    make_connector: Callable[..., ZenviaConnector], sandbox: ZenviaSandbox, recording_gate: Any
) -> None:
    connector = make_connector(gate=recording_gate)
    ticket = _created(sandbox)
    connector.get(ticket)
    sandbox.drop_next_request(GET_TICKET)
    connector.update(ticket, {"subject": "novo"})
    connector.get(ticket)

    assert recording_gate.before == [
        "GET /tickets/{id}",
        "PATCH /tickets/{id}/attributes/subject",
        "GET /tickets/{id}",
        "GET /tickets/{id}",
    ]
    assert [(endpoint, response.status_code) for endpoint, response in recording_gate.after] == [
        ("GET /tickets/{id}", 200),
        ("PATCH /tickets/{id}/attributes/subject", 200),
        ("GET /tickets/{id}", 200),
    ]


def test_a_gate_refusal_propagates_and_sends_nothing(
    make_connector: Callable[..., ZenviaConnector],
    sandbox: ZenviaSandbox,
    server: SandboxServer,
    recording_gate: Any,
) -> None:
    connector = make_connector(gate=recording_gate)
    recording_gate.refuse_with = 12.0

    with pytest.raises(RateLimitedError) as caught:
        connector.create({"subject": "x", "clients": ["client-1"]}, idempotency_key=KEY)

    assert caught.value.retry_after == 12.0
    assert server.counters.total == 0
    assert sandbox.tickets() == []


# -- the token -----------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_reprs_or_errors(
    make_connector: Callable[..., ZenviaConnector],
    sandbox: ZenviaSandbox,
    server: SandboxServer,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make_connector(timeout=0.2)
    wrong = make_connector(token=f"{token}-rotated")
    ticket = _created(sandbox)
    errors: list[BaseException] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except RemoteError as exc:
            errors.append(exc)

    attempt(lambda: connector.get(ticket))
    attempt(lambda: wrong.get(ticket))
    attempt(lambda: connector.get("999"))
    attempt(lambda: connector.update(ticket, {"status": 5}))
    attempt(lambda: connector.update(ticket, {"Token": token}))
    sandbox.fail_next(
        GET_TICKET,
        400,
        "VALIDATION_ERROR",
        f"bad header {token}",
        [{"code": "X", "path": "X-API-TOKEN", "message": f"echoed {token}"}],
    )
    attempt(lambda: connector.get(ticket))
    server.faults.error_rate = 1.0
    attempt(lambda: connector.get(ticket))
    server.faults.error_rate = 0.0
    server.faults.timeout_rate, server.faults.hang_seconds = 1.0, 0.4
    attempt(lambda: connector.get(ticket))
    server.faults.timeout_rate = 0.0
    server.faults.drop_rate = 1.0
    attempt(lambda: connector.create({"subject": "x"}, idempotency_key=KEY))
    server.faults.drop_rate = 0.0

    assert len(errors) == 8
    assert caplog.records, "the connector should have logged its requests at DEBUG"
    rendered = [
        caplog.text,
        repr(connector),
        str(connector),
        repr(wrong),
        *("".join(traceback.format_exception(e)) for e in errors),
        *(repr(e) for e in errors),
        *(repr(vars(e)) for e in errors),
    ]
    leaks = [text for text in rendered if token in text]
    assert leaks == []
    assert "**********" in repr(connector)
