"""Auth, quota, lost responses, broken answers and secrets: the connector under faults."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from syncworker.connectors.errors import (
    AuthError,
    MalformedResponseError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import RateLimit, SandboxServer

from ..recording_gate import RecordingGate
from .conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    EXT,
    GET_CASE,
    POST_COMMENT,
    QUERY,
    START,
    STATIC_TOKEN,
    UPSERT,
    MovableClock,
)

pytestmark = pytest.mark.contract

KEY = "feedfacecafebeef0000"


class RecordingTransport(httpx.BaseTransport):
    """Wraps the real transport; remembers every Authorization header actually sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.authorizations: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers:
            self.authorizations.append(request.headers["authorization"])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# -- authentication ------------------------------------------------------------------------


def test_an_expired_token_is_renewed_once_transparently(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    case_id = sandbox.agent.create_case(Subject="x")
    connector.get(case_id)
    sandbox.expire_tokens()
    assert connector.get(case_id).id == case_id
    assert connector.requests.by_endpoint["POST oauth2/token"] == 2
    assert connector.requests.by_endpoint["GET sobjects/Case/{id}"] == 3
    assert server.counters.by_status[401] == 1


def test_a_second_invalid_session_after_renewal_is_an_auth_error(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="x")
    sandbox.fail_next(GET_CASE, 401, "INVALID_SESSION_ID", "Session expired or invalid", times=2)
    with pytest.raises(AuthError) as caught:
        connector.get(case_id)
    assert caught.value.code == "INVALID_SESSION_ID"
    assert caught.value.status == 401
    assert connector.requests.by_endpoint["POST oauth2/token"] == 2
    assert connector.requests.by_endpoint["GET sobjects/Case/{id}"] == 2
    assert connector.get(case_id).id == case_id  # the hook is spent; the new token works


def test_a_refused_static_token_is_an_auth_error_without_any_token_request(
    make_connector: Callable[..., SalesforceConnector],
    server: SandboxServer,
    sandbox: SalesforceSandbox,
) -> None:
    connector = make_connector(
        client_id=None, client_secret=None, access_token=STATIC_TOKEN, instance_url=server.base_url
    )
    sandbox.fail_next(GET_CASE, 401, "INVALID_SESSION_ID", "Session expired or invalid")
    with pytest.raises(AuthError):
        connector.get("500000000000001AAA")
    assert connector.requests.total == 1


def test_bad_client_credentials_are_an_auth_error(
    make_connector: Callable[..., SalesforceConnector],
) -> None:
    connector = make_connector(client_secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        connector.get("500000000000001AAA")
    assert caught.value.code == "invalid_client"
    assert caught.value.status == 400
    assert "invalid client credentials" in str(caught.value)


# -- quota and rate limits -----------------------------------------------------------------


@pytest.mark.parametrize("sandbox_options", [{"daily_quota": 4}])
def test_quota_exhaustion_is_rate_limited_and_the_usage_is_tracked(
    make_connector: Callable[..., SalesforceConnector], sandbox: SalesforceSandbox
) -> None:
    gate = RecordingGate()
    connector = make_connector(gate=gate)
    case_id = sandbox.agent.create_case(Subject="x")
    for used in (2, 4):  # a get is the case plus its comments' versions: two requests
        connector.get(case_id)
        assert connector.last_quota == (used, 4)
    with pytest.raises(RateLimitedError) as caught:
        connector.get(case_id)
    assert caught.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert caught.value.status == 403
    assert caught.value.retry_after == 300
    assert connector.last_quota == (4, 4)
    endpoint, response = gate.after[-1]
    assert (endpoint, response.status_code) == ("GET sobjects/Case/{id}", 403)
    assert response.headers["Sforce-Limit-Info"] == "api-usage=4/4"
    case_and_comments = ["GET sobjects/Case/{id}", "GET queryAll"]
    assert gate.before == ["POST oauth2/token", *case_and_comments * 2, "GET sobjects/Case/{id}"]


@pytest.mark.parametrize("sandbox_options", [{"daily_quota": 1}])
def test_a_read_back_refused_after_the_upsert_landed_is_transient_not_rate_limited(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    """RateLimitedError tells the sync nothing was written (the attempt is not counted and the
    next one sends again, blind); here the Case was written, so a retry must look for it."""
    with pytest.raises(TransientError, match="upserted; reading it back was refused") as caught:
        connector.create({"Subject": "landed"}, idempotency_key=KEY)
    assert caught.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert [case["Subject"] for case in sandbox.cases()] == ["landed"]


def test_the_gate_is_asked_before_every_request_and_its_refusal_propagates(
    make_connector: Callable[..., SalesforceConnector], server: SandboxServer
) -> None:
    gate = RecordingGate()
    connector = make_connector(gate=gate)
    gate.refuse_with = 12.0
    with pytest.raises(RateLimitedError) as caught:
        list(connector.iter_all())
    assert caught.value.retry_after == 12.0
    assert server.counters.total == 0


def test_a_429_with_retry_after_is_rate_limited(
    connector: SalesforceConnector, server: SandboxServer
) -> None:
    server.faults.rate_limit = RateLimit(requests=3, window_seconds=60)
    list(connector.iter_all())  # token + comment listing + case listing
    with pytest.raises(RateLimitedError) as caught:
        list(connector.iter_all())
    assert caught.value.status == 429
    assert 1 <= caught.value.retry_after <= 60


# -- transport faults ----------------------------------------------------------------------


def test_server_errors_and_timeouts_are_transient(
    make_connector: Callable[..., SalesforceConnector], server: SandboxServer
) -> None:
    connector = make_connector(timeout=0.3)
    list(connector.iter_all())
    server.faults.error_rate = 1.0
    with pytest.raises(TransientError) as error:
        list(connector.iter_all())
    assert error.value.status == 500
    assert error.value.code == "UNKNOWN_EXCEPTION"
    server.faults.error_rate = 0.0
    server.faults.timeout_rate = 1.0
    server.faults.hang_seconds = 0.6
    with pytest.raises(TransientError, match="timed out"):
        list(connector.iter_all())


def test_a_lost_upsert_response_on_a_pooled_connection_is_retried_without_a_duplicate(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    list(connector.iter_all())  # the pooled connection the upsert will reuse
    sandbox.drop_next_response_after_handling(UPSERT)
    record = connector.create({"Subject": "only once"}, idempotency_key=KEY)
    assert [c["Id"] for c in sandbox.cases()] == [record.id]
    assert sandbox.hooks_fired[f"drop_after {UPSERT}"] == 1
    assert server.counters.by_endpoint[UPSERT] == 2
    assert connector.requests.by_endpoint[f"PATCH sobjects/Case/{EXT}/{{key}}"] == 2


def test_a_lost_upsert_response_on_a_fresh_connection_is_transient_and_a_retry_finds_it(
    sandbox: SalesforceSandbox, server: SandboxServer
) -> None:
    client = httpx.Client(timeout=5.0, limits=httpx.Limits(max_keepalive_connections=0))
    connector = SalesforceConnector(
        client, login_url=server.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    try:
        sandbox.drop_next_response_after_handling(UPSERT)
        with pytest.raises(TransientError, match="connection failed"):
            connector.create({"Subject": "only once"}, idempotency_key=KEY)
        assert len(sandbox.cases()) == 1  # applied, though the client never heard
        found = connector.find_created(KEY, around=START)
        retried = connector.create({"Subject": "only once"}, idempotency_key=KEY)
        assert found is not None
        assert retried.id == found.id
        assert len(sandbox.cases()) == 1
    finally:
        connector.close()


def test_a_lost_comment_response_is_transient_and_its_text_finds_it(
    connector: SalesforceConnector, sandbox: SalesforceSandbox
) -> None:
    case_id = sandbox.agent.create_case(Subject="x")
    sandbox.drop_next_response_after_handling(POST_COMMENT)
    with pytest.raises(TransientError):
        connector.add_comment(case_id, "hello", public=True)
    assert [c.body for c in connector.list_comments(case_id)] == ["hello"]


def test_an_expired_query_cursor_is_transient(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    for n in range(250):
        sandbox.agent.create_case(Subject=str(n))
    stream = connector.query("SELECT Id FROM Case", batch_size=200)
    for _ in range(200):
        next(stream)
    clock.advance(minutes=16)
    with pytest.raises(TransientError) as caught:
        next(stream)
    assert caught.value.code == "INVALID_QUERY_LOCATOR"


# -- answers of the wrong shape ------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "body"),
    [
        (GET_CASE, ["not", "an", "object"]),
        (GET_CASE, {"Id": 42, "SystemModstamp": "2026-03-10T15:00:00.000+0000"}),
        (GET_CASE, {"Id": "500000000000001AAA", "SystemModstamp": "yesterday"}),
        (GET_CASE, {"Id": "500000000000001AAA", "SystemModstamp": None}),
        (
            GET_CASE,
            {
                "Id": "500000000000001AAA",
                "SystemModstamp": "2026-03-10T15:00:00.000+0000",
                "IsDeleted": "no",
            },
        ),
    ],
    ids=["array", "numeric-id", "bad-datetime", "null-datetime", "string-boolean"],
)
def test_records_of_the_wrong_shape_are_malformed(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, label: str, body: Any
) -> None:
    sandbox.answer_next(label, 200, body)
    with pytest.raises(MalformedResponseError):
        connector.get("500000000000001AAA")


@pytest.mark.parametrize(
    "body",
    [
        {"totalSize": 1, "done": "yes", "records": []},
        {"totalSize": 1, "done": True, "records": {"Id": "x"}},
        {"totalSize": 3, "done": False, "records": []},
        {"totalSize": 3, "done": False, "records": [], "nextRecordsUrl": "https://evil/x"},
    ],
    ids=["string-done", "records-object", "no-next-url", "foreign-next-url"],
)
def test_query_pages_of_the_wrong_shape_are_malformed(
    connector: SalesforceConnector, sandbox: SalesforceSandbox, body: Any
) -> None:
    sandbox.answer_next(QUERY, 200, body)
    with pytest.raises(MalformedResponseError):
        list(connector.query("SELECT Id FROM Case"))


def test_a_non_json_answer_is_malformed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(
                200, json={"access_token": "t0k3n", "instance_url": "https://na1.example"}
            )
        return httpx.Response(200, text="<html>maintenance</html>")

    connector = SalesforceConnector(
        httpx.Client(transport=httpx.MockTransport(handler)),
        login_url="https://login.example",
        client_id="id",
        client_secret="secret",
    )
    with pytest.raises(MalformedResponseError):
        connector.get("500000000000001AAA")


def test_bad_soql_is_permanent_with_salesforces_message(connector: SalesforceConnector) -> None:
    with pytest.raises(PermanentError) as caught:
        list(connector.query("SELECT Id FROM Case WHERE Status = 'New' AND"))
    assert caught.value.code == "MALFORMED_QUERY"
    assert caught.value.status == 400
    assert "unexpected end of query" in caught.value.message
    assert "ERROR at Row:1:Column:" in str(caught.value)


# -- secrets -------------------------------------------------------------------------------


def test_tokens_and_secrets_never_reach_logs_reprs_or_errors(
    server: SandboxServer, sandbox: SalesforceSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = RecordingTransport()
    connector = SalesforceConnector(
        httpx.Client(transport=transport, timeout=5.0),
        login_url=server.base_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    static = SalesforceConnector(
        httpx.Client(transport=transport, timeout=5.0),
        login_url=server.base_url,
        instance_url=server.base_url,
        access_token=STATIC_TOKEN,
    )
    errors: list[RemoteError] = []
    case_id = sandbox.agent.create_case(Subject="secret-free")
    connector.get(case_id)
    sandbox.expire_tokens()
    connector.get(case_id)
    sandbox.fail_next(GET_CASE, 401, "INVALID_SESSION_ID", "Session expired or invalid", times=3)
    for attempt in (lambda: connector.get(case_id), lambda: static.get(case_id)):
        try:
            attempt()
        except RemoteError as exc:
            errors.append(exc)
    try:
        connector.update(case_id, {"Subject": "x" * 256})
    except RemoteError as exc:
        errors.append(exc)
    assert len(errors) == 3
    tokens = {header.removeprefix("Bearer ") for header in transport.authorizations}
    assert len(tokens) == 4  # three OAuth tokens and the static one
    secrets = {*tokens, CLIENT_SECRET, STATIC_TOKEN}
    texts = [caplog.text, repr(connector), repr(static), repr(vars(connector)), repr(vars(static))]
    for error in errors:
        texts += [str(error), repr(error), error.message, *error.details]
        texts.append("".join(traceback.format_exception(error)))
    for text in texts:
        for secret in secrets:
            assert secret not in text
    connector.close()
    static.close()
