"""Bad input never escapes unclassified: whatever a remote answers, the connectors either read
it or raise one of the error classes the task layer acts on (connectors/errors.py).

Fuzzed with hypothesis over `httpx.MockTransport` (no sockets): malformed, truncated,
wrong-typed, deeply nested and non-UTF-8 bodies, odd headers, every error status; plus text we
are asked to write that cannot be encoded, and unknown status/picklist values against the
sandboxes (over loopback) as the remotes would refuse them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncworker.connectors.errors import (
    AuthError,
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.connectors.salesforce import COMMENT_MAX_BYTES, SalesforceConnector
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.engine import is_copy_of
from syncworker.mapping import load_default
from syncworker.model import RemoteComment, RemoteRecord
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

ZENVIA_TOKEN = "zen-fuzz-token-0b7c1d"
SF_TOKEN = "sf-fuzz-token-99e3aa"
SF_SECRET = "sf-fuzz-secret-5d2f10"
KEY = "0123456789abcdef0123"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TICKET: dict[str, Any] = {
    "id": "7",
    "subject": "Boleto não chegou",
    "type": "PUBLIC",
    "origin": "AGENT_IN_SYSTEM",
    "clients": ["client-1"],
    "ownerId": "agent-2",
    "category": {"id": 1, "name": "Dúvida"},
    "urgency": {"id": 3, "name": "Alta"},
    "service": None,
    "justification": None,
    "status": {"id": 2, "name": "Em atendimento", "type": "IN_ATTENDANCE"},
    "createdAt": "2026-03-10T12:00:00.000Z",
    "updatedAt": "2026-03-10T12:30:00.000Z",
}
ACTION: dict[str, Any] = {
    "id": 1,
    "type": "PUBLIC",
    "origin": "AGENT_IN_SYSTEM",
    "description": "Cliente ligou",
    "createdAt": "2026-03-10T12:05:00.000Z",
    "createdById": "agent-2",
}
CASE: dict[str, Any] = {
    "attributes": {"type": "Case", "url": "/services/data/v62.0/sobjects/Case/500x"},
    "Id": "500000000000001AAA",
    "Subject": "Printer on fire",
    "Status": "Working",
    "Priority": "High",
    "OwnerId": "005000000000002AAA",
    "IsDeleted": False,
    "SystemModstamp": "2026-03-10T12:30:00.000+0000",
}
COMMENT: dict[str, Any] = {
    "Id": "00a000000000001AAA",
    "ParentId": "500000000000001AAA",
    "CommentBody": "Customer called",
    "IsPublished": True,
    "CreatedDate": "2026-03-10T12:05:00.000+0000",
    "CreatedById": "005000000000002AAA",
    "SystemModstamp": "2026-03-10T12:05:00.000+0000",
}

# -- strategies ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


# What a header can carry on the wire: latin-1 text without line breaks.
HEADER_TEXT = st.text(
    st.characters(max_codepoint=255, blacklist_characters="\r\n\x00"), max_size=12
)


def mutated(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with some keys removed and some values replaced by anything JSON can hold."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        result = dict(valid)
        for key in draw(st.lists(st.sampled_from(sorted(valid)), max_size=4, unique=True)):
            if draw(st.booleans()):
                del result[key]
            else:
                result[key] = draw(json_values)
        return result

    return build()


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(lambda value: json.dumps(value, allow_nan=True).encode())


def truncated(valid: object) -> st.SearchStrategy[bytes]:
    whole = json.dumps(valid).encode()
    return st.integers(0, len(whole) - 1).map(lambda cut: whole[:cut])


def bodies(valid: object, mutations: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes a misbehaving remote might send where `valid` was expected."""
    return st.one_of(
        st.binary(max_size=64),  # not JSON, not UTF-8
        encoded(json_values),
        encoded(mutations),
        truncated(valid),
        st.just(b'{"id": "7", "subject": "\\ud83d"}'),  # a lone surrogate, legal JSON
    )


def answering(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Client:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in (headers or {}).items()]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=raw)

    return httpx.Client(transport=httpx.MockTransport(handler))


def by_query(answers: dict[str, bytes]) -> httpx.Client:
    """Answer each SOQL query with the body of the first `FROM …` it contains."""

    def handler(request: httpx.Request) -> httpx.Response:
        soql = request.url.params.get("q", "")
        for marker, body in answers.items():
            if marker + " " in soql + " ":
                return httpx.Response(200, content=body)
        return httpx.Response(200, json=query_page([]))

    return httpx.Client(transport=httpx.MockTransport(handler))


def zenvia(client: httpx.Client) -> ZenviaConnector:
    return ZenviaConnector(client, base_url="https://api.zenvia.test/v2", token=ZENVIA_TOKEN)


def salesforce(client: httpx.Client, *, static: bool = True) -> SalesforceConnector:
    if static:
        return SalesforceConnector(
            client,
            login_url="https://login.sf.test",
            instance_url="https://org.sf.test",
            access_token=SF_TOKEN,
        )
    return SalesforceConnector(
        client, login_url="https://login.sf.test", client_id="cid", client_secret=SF_SECRET
    )


def read_or_refuse(read: Callable[[], object]) -> object:
    """The property: a result, or MalformedResponseError (a PermanentError: dead letter)."""
    try:
        return read()
    except MalformedResponseError as error:
        refused = error
    assert refused.remote in ("zenvia", "salesforce")
    assert ZENVIA_TOKEN not in str(refused)
    assert SF_TOKEN not in str(refused)
    return refused


def drain(records: Iterator[RemoteRecord]) -> list[RemoteRecord]:
    return list(records)


DEEP = b"[" * 50_000 + b"]" * 50_000  # nested deeper than Python's JSON parser recurses


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda c: zenvia(c).get("7"), id="zenvia-ticket"),
        pytest.param(lambda c: drain(zenvia(c).iter_all()), id="zenvia-listing"),
        pytest.param(lambda c: zenvia(c).list_comments("7"), id="zenvia-actions"),
        pytest.param(lambda c: salesforce(c).get("500000000000001AAA"), id="salesforce-case"),
        pytest.param(lambda c: drain(salesforce(c).iter_all()), id="salesforce-query"),
    ],
)
def test_json_nested_too_deep_to_parse_is_malformed(read: Callable[[httpx.Client], object]) -> None:
    with pytest.raises(MalformedResponseError):
        read(answering(200, DEEP))


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda c: zenvia(c).get("7"), id="zenvia"),
        pytest.param(lambda c: salesforce(c).get("500000000000001AAA"), id="salesforce"),
    ],
)
def test_an_error_answer_nested_too_deep_to_parse_is_still_classified_by_status(
    read: Callable[[httpx.Client], object],
) -> None:
    with pytest.raises(TransientError):
        read(answering(503, DEEP))


# -- Zenvia: successful statuses with unreadable bodies -------------------------------------------


@FUZZ
@given(body=bodies(TICKET, mutated(TICKET)))
def test_a_zenvia_ticket_of_any_shape_is_read_or_refused_as_malformed(body: bytes) -> None:
    outcome = read_or_refuse(lambda: zenvia(answering(200, body)).get("7"))
    if isinstance(outcome, RemoteRecord):
        assert isinstance(outcome.fields["status"], int)


@FUZZ
@given(
    body=bodies([TICKET], st.lists(mutated(TICKET), max_size=3)),
    total=st.one_of(st.none(), HEADER_TEXT, st.integers(-5, 500).map(str)),
)
def test_a_zenvia_listing_of_any_shape_is_read_or_refused_as_malformed(
    body: bytes, total: str | None
) -> None:
    headers = {"x-total": total} if total is not None else {}
    read_or_refuse(lambda: drain(zenvia(answering(200, body, headers)).iter_all()))


@FUZZ
@given(body=bodies([ACTION], st.lists(mutated(ACTION), max_size=3)))
def test_zenvia_actions_of_any_shape_are_read_or_refused_as_malformed(body: bytes) -> None:
    outcome = read_or_refuse(lambda: zenvia(answering(200, body)).list_comments("7"))
    if isinstance(outcome, list):
        assert all(isinstance(c, RemoteComment) and isinstance(c.body, str) for c in outcome)


@FUZZ
@given(body=bodies(TICKET, mutated(TICKET)))
def test_a_zenvia_create_answer_of_any_shape_is_read_or_refused_as_malformed(body: bytes) -> None:
    connector = zenvia(answering(201, body))
    read_or_refuse(
        lambda: connector.create({"subject": "x", "clients": ["c"]}, idempotency_key=KEY)
    )


# -- error statuses with any body: classified by status --------------------------------------------

ERROR_STATUSES = st.sampled_from(
    [400, 401, 403, 404, 405, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504]
)
ERROR_BODIES = st.one_of(
    st.binary(max_size=64),
    encoded(json_values),
    encoded(
        st.fixed_dictionaries(
            {}, optional={"code": json_values, "message": json_values, "details": json_values}
        )
    ),
    encoded(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={"errorCode": json_values, "message": json_values, "fields": json_values},
            ),
            max_size=3,
        )
    ),
)
RETRY_AFTER = st.one_of(st.none(), HEADER_TEXT, st.integers(-10, 10**12).map(str))


def expected_class(status: int) -> type[RemoteError]:
    if status == 429:
        return RateLimitedError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 408 or status >= 500:
        return TransientError
    return PermanentError


@FUZZ
@given(status=ERROR_STATUSES, body=ERROR_BODIES, retry_after=RETRY_AFTER)
def test_a_zenvia_error_answer_of_any_shape_is_classified_by_its_status(
    status: int, body: bytes, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    with pytest.raises(RemoteError) as raised:
        zenvia(answering(status, body, headers)).get("7")
    assert isinstance(raised.value, expected_class(status))
    assert raised.value.status == status
    if isinstance(raised.value, RateLimitedError):
        assert 0 <= raised.value.retry_after < float("inf")


@FUZZ
@given(status=ERROR_STATUSES, body=ERROR_BODIES, retry_after=RETRY_AFTER)
def test_a_salesforce_error_answer_of_any_shape_is_classified(
    status: int, body: bytes, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    with pytest.raises(RemoteError) as raised:
        salesforce(answering(status, body, headers)).get("500000000000001AAA")
    error = raised.value
    # Salesforce says "try later" with some 4xx error codes and "quota" with a 403.
    if status in (400, 409, 422) and isinstance(error, TransientError):
        return
    if status == 403 and isinstance(error, RateLimitedError):
        return
    if status in (400, 409, 410, 422) and isinstance(error, NotFoundError):
        return
    assert isinstance(error, expected_class(status))


# -- Salesforce: successful statuses with unreadable bodies ----------------------------------------


@FUZZ
@given(body=bodies(CASE, mutated(CASE)))
def test_a_salesforce_case_of_any_shape_is_read_or_refused_as_malformed(body: bytes) -> None:
    read_or_refuse(lambda: salesforce(answering(200, body)).get("500000000000001AAA"))


def query_page(records: list[Any]) -> dict[str, Any]:
    return {"totalSize": len(records), "done": True, "records": records}


@FUZZ
@given(
    body=bodies(
        query_page([CASE]),
        st.one_of(
            mutated(query_page([CASE])),
            st.lists(mutated(CASE), max_size=3).map(query_page),
        ),
    )
)
def test_a_salesforce_query_page_of_any_shape_is_read_or_refused_as_malformed(body: bytes) -> None:
    client = by_query({"FROM Case": body, "FROM CaseComment": json.dumps(query_page([])).encode()})
    read_or_refuse(lambda: drain(salesforce(client).iter_all()))


@FUZZ
@given(body=bodies(query_page([COMMENT]), st.lists(mutated(COMMENT), max_size=3).map(query_page)))
def test_comment_rows_of_any_shape_while_listing_cases_are_read_or_refused_as_malformed(
    body: bytes,
) -> None:
    """Reading cases may also read their comments (for a version that sees new comments)."""
    client = by_query(
        {"FROM Case": json.dumps(query_page([CASE])).encode(), "FROM CaseComment": body}
    )
    read_or_refuse(lambda: drain(salesforce(client).iter_all()))
    read_or_refuse(
        lambda: drain(salesforce(client).changed_since(datetime(2026, 1, 1, tzinfo=UTC)))
    )


@FUZZ
@given(body=bodies(query_page([COMMENT]), st.lists(mutated(COMMENT), max_size=3).map(query_page)))
def test_salesforce_comments_of_any_shape_are_read_or_refused_as_malformed(body: bytes) -> None:
    read_or_refuse(lambda: salesforce(answering(200, body)).list_comments("500000000000001AAA"))


@FUZZ
@given(body=bodies({"access_token": "t", "instance_url": "https://org.sf.test"}, json_values))
def test_a_token_answer_of_any_shape_is_refused_as_malformed_or_auth(body: bytes) -> None:
    connector = salesforce(answering(200, body), static=False)
    # A usable token makes the same body fail as a Case: also classified.
    with pytest.raises(RemoteError) as raised:
        connector.get("500000000000001AAA")
    assert SF_SECRET not in str(raised.value)


# -- writing text that cannot travel, and oversized comments ---------------------------------------

UNENCODABLE = "Cliente enviou \ud83d"  # half of an emoji: legal in JSON, not in UTF-8


def accepting(status: int, body: object) -> tuple[httpx.Client, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler)), sent


def test_a_zenvia_comment_that_cannot_be_encoded_is_a_permanent_error() -> None:
    """A lone surrogate reaches us inside another remote's JSON ("\\ud83d"); writing it must
    be refused as PermanentError (a dead letter), not crash the task with UnicodeEncodeError."""
    client, sent = accepting(201, ACTION)
    with pytest.raises(PermanentError):
        zenvia(client).add_comment("7", UNENCODABLE, public=True)
    assert not sent


def test_a_salesforce_comment_that_cannot_be_encoded_is_a_permanent_error() -> None:
    client, sent = accepting(201, {"id": "00a000000000001AAA", "success": True})
    with pytest.raises(PermanentError):
        salesforce(client).add_comment("500000000000001AAA", UNENCODABLE, public=True)
    assert not sent


def test_a_subject_that_cannot_be_encoded_is_a_permanent_error() -> None:
    client, _ = accepting(204, None)
    with pytest.raises(PermanentError):
        salesforce(client).update("500000000000001AAA", {"Subject": UNENCODABLE})
    with pytest.raises(PermanentError):
        zenvia(client).update("7", {"subject": UNENCODABLE})


def test_a_huge_comment_is_cut_to_what_salesforce_accepts_and_still_known_as_ours() -> None:
    client, sent = accepting(201, {"id": "00a000000000001AAA", "success": True, "errors": []})
    connector = salesforce(client)
    huge = "ação " * 400_000  # 2.4 MB of multi-byte text
    connector.add_comment("500000000000001AAA", huge, public=False)
    posted = json.loads(sent[0].content)["CommentBody"]
    assert len(posted.encode()) <= COMMENT_MAX_BYTES
    assert is_copy_of(posted, huge)


def test_a_huge_zenvia_action_is_read_whole() -> None:
    huge = {**ACTION, "description": "x" * 5_000_000}
    [comment] = zenvia(answering(200, json.dumps([huge]).encode())).list_comments("7")
    assert len(comment.body) == 5_000_000


# -- unknown statuses and picklist values, refused by the remotes as they would ------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ZenviaConnector, SalesforceConnector, str, str]]:
    zen = ZenviaSandbox(token=ZENVIA_TOKEN, seed=3)
    # an org whose Status and Priority picklists are restricted (by default they are not)
    sf = SalesforceSandbox(
        client_id="cid",
        client_secret=SF_SECRET,
        seed=3,
        restricted_picklists=("Status", "Priority"),
    )
    with SandboxServer(zen) as zen_server, SandboxServer(sf) as sf_server:
        ticket = str(zen.agent.create_ticket("Unknown values", urgency=1)["id"])
        case = sf.agent.create_case(Subject="Unknown values", Status="New", Origin="Web")
        yield (
            ZenviaConnector(
                httpx.Client(), base_url=f"{zen_server.base_url}/v2", token=ZENVIA_TOKEN
            ),
            SalesforceConnector(
                httpx.Client(),
                login_url=sf_server.base_url,
                client_id="cid",
                client_secret=SF_SECRET,
            ),
            ticket,
            case,
        )


@pytest.mark.contract
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        pytest.param({"Status": "Mystery"}, "restricted picklist", id="unknown-status"),
        pytest.param({"Priority": "Urgentíssimo"}, "restricted picklist", id="unknown-priority"),
        pytest.param({"Status": 7}, "Cannot deserialize", id="status-as-a-zenvia-id"),
        pytest.param({"OwnerId": "agent-9"}, "OwnerId", id="unmapped-owner"),
    ],
)
def test_salesforce_refuses_unknown_values_as_permanent_errors_naming_the_field(
    served: tuple[ZenviaConnector, SalesforceConnector, str, str],
    changes: dict[str, Any],
    says: str,
) -> None:
    _, connector, _, case = served
    with pytest.raises(PermanentError) as refused:
        connector.update(case, changes)
    assert says in str(refused.value)


@pytest.mark.contract
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        pytest.param({"status": 99}, "status", id="unknown-status-id"),
        pytest.param({"urgency": 9}, "urgency", id="unknown-urgency"),
        pytest.param({"status": "Working"}, "status", id="a-crm-status-unmapped"),
        pytest.param({"ownerId": "005000000000009AAA"}, "owner", id="a-crm-owner-unmapped"),
    ],
)
def test_zenvia_refuses_unknown_values_as_permanent_errors_naming_the_field(
    served: tuple[ZenviaConnector, SalesforceConnector, str, str],
    changes: dict[str, Any],
    says: str,
) -> None:
    connector, _, ticket, _ = served
    with pytest.raises(PermanentError) as refused:
        connector.update(ticket, changes)
    assert says in str(refused.value).lower()


def test_a_value_the_mapping_does_not_know_is_copied_as_is_for_the_remote_to_refuse() -> None:
    """The mapping passes unknown values through unchanged (no silent coercion), which is why
    the refusals above must be clean PermanentErrors."""
    mapping = load_default("salesforce")
    assert mapping.translate("status", "zenvia", 99) == 99
    assert mapping.translate("status", "crm", "Mystery") == "Mystery"
