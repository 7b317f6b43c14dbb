"""The Salesforce sandbox speaks Salesforce's wire format: checked with a bare httpx client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest

from syncworker.sandbox.salesforce import (
    API_USER_ID,
    DEFAULT_QUEUE_ID,
    OWNER_IDS,
    SalesforceSandbox,
    normalize_id,
    to_id18,
)
from syncworker.sandbox.server import HttpError, SandboxServer

from .conftest import API, CLIENT_ID, CLIENT_SECRET, EXT, START, STATIC_TOKEN, MovableClock

pytestmark = pytest.mark.contract

SF_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")


def _create(raw: httpx.Client, **fields: Any) -> str:
    response = raw.post("/sobjects/Case", json=fields)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 1
    item: dict[str, Any] = body[0]
    return item


# -- OAuth ---------------------------------------------------------------------------------


def test_token_endpoint_answers_a_bearer_token_for_its_own_instance(
    server: SandboxServer,
) -> None:
    response = httpx.post(
        f"{server.base_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["token_type"] == "Bearer"
    assert answer["instance_url"] == server.base_url
    assert answer["id"].endswith(f"/{API_USER_ID}")
    expected = hmac.new(
        CLIENT_SECRET.encode(), (answer["id"] + answer["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(answer["signature"]) == expected
    me = httpx.get(
        f"{answer['instance_url']}{API}/sobjects/Case/500000000000001AAA",
        headers={"Authorization": f"Bearer {answer['access_token']}"},
    )
    assert me.status_code == 404  # authenticated; the case just does not exist


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_id": CLIENT_ID, "client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else", "client_secret": CLIENT_SECRET}, "invalid_client"),
        ({"grant_type": "password", "client_id": CLIENT_ID}, "unsupported_grant_type"),
    ],
    ids=["bad-secret", "bad-client", "bad-grant"],
)
def test_token_endpoint_refuses_bad_clients_oauth_style(
    server: SandboxServer, form: dict[str, str], error: str
) -> None:
    body = {"grant_type": "client_credentials", **form}
    response = httpx.post(f"{server.base_url}/services/oauth2/token", data=body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_expired_tokens_get_invalid_session_id_but_the_static_token_stays_valid(
    server: SandboxServer, sandbox: SalesforceSandbox
) -> None:
    token = httpx.post(
        f"{server.base_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ).json()["access_token"]
    url = f"{server.base_url}{API}/query"
    params = {"q": "SELECT Id FROM Case"}
    assert httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}).is_success
    sandbox.expire_tokens()
    refused = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert refused.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    static = httpx.get(url, params=params, headers={"Authorization": f"Bearer {STATIC_TOKEN}"})
    assert static.is_success
    assert httpx.get(url, params=params).status_code == 401


# -- versions, ids, headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "status"),
    [("v45.0", 404), ("v46.0", 200), ("v62.0", 200), ("v62.1", 404), ("62.0", 404)],
)
def test_api_versions_from_46_are_served(server: SandboxServer, version: str, status: int) -> None:
    response = httpx.get(
        f"{server.base_url}/services/data/{version}/query",
        params={"q": "SELECT Id FROM Case"},
        headers={"Authorization": f"Bearer {STATIC_TOKEN}"},
    )
    assert response.status_code == status
    if status == 404:
        assert _error(response)["errorCode"] == "NOT_FOUND"


def test_ids_are_18_char_case_safe_with_key_prefixes_and_stable_for_a_seed(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    case_id = _create(raw, Subject="one")
    comment = raw.post("/sobjects/CaseComment", json={"ParentId": case_id, "CommentBody": "x"})
    comment_id = comment.json()["id"]
    assert len(case_id) == 18
    assert case_id.startswith("500")
    assert comment_id.startswith("00a")
    assert to_id18(case_id[:15]) == case_id
    assert normalize_id(case_id[:15]) == case_id
    assert normalize_id(case_id.lower()) == case_id  # an 18-character id in any case
    assert normalize_id(case_id[:15] + "999") is None
    assert normalize_id(case_id[:16]) is None
    twin = SalesforceSandbox(client_id="a", client_secret="b", seed=11)
    other = SalesforceSandbox(client_id="a", client_secret="b", seed=12)
    assert twin.agent.create_case(Subject="one") == case_id
    assert other.agent.create_case(Subject="one") != case_id
    by_15 = raw.get(f"/sobjects/Case/{case_id[:15]}")
    assert by_15.json()["Id"] == case_id


def test_every_response_carries_api_usage_and_each_api_call_counts_once(
    server: SandboxServer, raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    first = raw.get("/query", params={"q": "SELECT Id FROM Case"})
    second = raw.get("/sobjects/Case/500000000000001AAA")
    token = httpx.post(f"{server.base_url}/services/oauth2/token", data={})
    unauthenticated = httpx.get(f"{server.base_url}{API}/query")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert token.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert unauthenticated.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert sandbox.api_usage == 2


@pytest.mark.parametrize("sandbox_options", [{"daily_quota": 3}])
def test_quota_exhaustion_answers_403_request_limit_exceeded(raw: httpx.Client) -> None:
    for _ in range(3):
        assert raw.get("/query", params={"q": "SELECT Id FROM Case"}).is_success
    refused = raw.get("/query", params={"q": "SELECT Id FROM Case"})
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"


# -- records -------------------------------------------------------------------------------


def test_create_get_patch_delete_a_case(raw: httpx.Client, clock: MovableClock) -> None:
    created = raw.post("/sobjects/Case", json={"Subject": "Printer on fire", "Origin": "Web"})
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "success": True, "errors": []}
    case_id = created.json()["id"]

    case = raw.get(f"/sobjects/Case/{case_id}").json()
    assert case["attributes"] == {"type": "Case", "url": f"{API}/sobjects/Case/{case_id}"}
    assert case["Status"] == "New"
    assert case["Priority"] == "Medium"
    assert case["IsClosed"] is False
    assert case["OwnerId"] == DEFAULT_QUEUE_ID  # the active assignment rule ran
    assert case["CreatedById"] == API_USER_ID
    assert case["CaseNumber"] == "00001001"
    assert SF_DATETIME.fullmatch(case["SystemModstamp"])
    assert case["SystemModstamp"] == "2026-03-10T15:00:00.000+0000"

    patched = raw.patch(f"/sobjects/Case/{case_id}", json={"Status": "Closed"})
    assert patched.status_code == 204
    assert patched.content == b""
    closed = raw.get(f"/sobjects/Case/{case_id}", params={"fields": "Status,IsClosed,ClosedDate"})
    assert set(closed.json()) == {"attributes", "Status", "IsClosed", "ClosedDate"}
    assert closed.json()["IsClosed"] is True
    assert closed.json()["ClosedDate"] == "2026-03-10T15:00:00.000+0000"

    raw.patch(f"/sobjects/Case/{case_id}", json={"Status": "Working"})
    reopened = raw.get(f"/sobjects/Case/{case_id}").json()
    assert reopened["IsClosed"] is False
    assert reopened["ClosedDate"] is None

    deleted = raw.delete(f"/sobjects/Case/{case_id}")
    assert deleted.status_code == 204
    assert raw.get(f"/sobjects/Case/{case_id}").status_code == 404
    again = raw.patch(f"/sobjects/Case/{case_id}", json={"Subject": "x"})
    assert _error(again)["errorCode"] == "ENTITY_IS_DELETED"
    live = raw.get("/query", params={"q": "SELECT Id FROM Case"}).json()
    everything = raw.get("/queryAll", params={"q": "SELECT Id, IsDeleted FROM Case"}).json()
    assert live["totalSize"] == 0
    assert everything["records"][0]["IsDeleted"] is True

    clock.advance(minutes=2)
    window = {"start": START.isoformat(), "end": clock().isoformat()}
    feed = raw.get("/sobjects/Case/deleted/", params=window).json()
    assert [r["id"] for r in feed["deletedRecords"]] == [case_id]
    assert SF_DATETIME.fullmatch(feed["deletedRecords"][0]["deletedDate"])
    assert feed["earliestDateAvailable"] == "2026-03-10T15:00:00.000+0000"
    assert feed["latestDateCovered"] == "2026-03-10T15:02:00.000+0000"


def test_stamps_have_whole_second_precision_and_changes_in_one_second_share_one(
    raw: httpx.Client, clock: MovableClock
) -> None:
    clock.advance(milliseconds=250)
    case_id = _create(raw, Subject="a")
    comment = raw.post("/sobjects/CaseComment", json={"ParentId": case_id, "CommentBody": "x"})
    stamps = [raw.get(f"/sobjects/Case/{case_id}").json()["SystemModstamp"]]
    for subject, step in (("b", 300), ("b", 300), ("c", 300)):  # 15:00:00.55 … 15:00:01.15
        clock.advance(milliseconds=step)
        raw.patch(f"/sobjects/Case/{case_id}", json={"Subject": subject})
        case = raw.get(f"/sobjects/Case/{case_id}").json()
        stamps.append(case["SystemModstamp"])
        assert case["LastModifiedDate"] == case["SystemModstamp"]
    assert stamps == ["2026-03-10T15:00:00.000+0000"] * 3 + ["2026-03-10T15:00:01.000+0000"]
    assert case["CreatedDate"] == "2026-03-10T15:00:00.000+0000"
    soql = (
        f"SELECT CreatedDate, SystemModstamp FROM CaseComment WHERE Id = '{comment.json()['id']}'"
    )
    [row] = raw.get("/query", params={"q": soql}).json()["records"]
    assert row["CreatedDate"] == row["SystemModstamp"] == "2026-03-10T15:00:00.000+0000"


@pytest.mark.parametrize(
    ("sobject", "body", "code", "fields"),
    [
        ("Case", {"Subject": "x" * 256}, "STRING_TOO_LONG", ["Subject"]),
        ("Case", {"Description": "x" * 32_001}, "STRING_TOO_LONG", ["Description"]),
        ("Case", {"Foo__c": "1"}, "INVALID_FIELD", None),
        ("Case", {"CaseNumber": "1"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CaseNumber"]),
        ("Case", {"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
        ("Case", {"SystemModstamp": "x"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["SystemModstamp"]),
        ("Case", {"OwnerId": "005000000000009AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["OwnerId"]),
        ("Case", {"OwnerId": "nonsense"}, "MALFORMED_ID", ["OwnerId"]),
        ("Case", {"IsEscalated": "yes"}, "JSON_PARSER_ERROR", None),
        ("CaseComment", {"CommentBody": "x"}, "REQUIRED_FIELD_MISSING", ["ParentId"]),
    ],
    ids=[
        "subject-too-long",
        "description-too-long",
        "unknown-field",
        "read-only-casenumber",
        "read-only-isclosed",
        "read-only-modstamp",
        "unknown-owner",
        "malformed-owner",
        "wrong-type",
        "comment-without-parent",
    ],
)
def test_writes_are_validated_with_salesforce_error_codes(
    raw: httpx.Client,
    sobject: str,
    body: dict[str, Any],
    code: str,
    fields: list[str] | None,
) -> None:
    response = raw.post(f"/sobjects/{sobject}", json=body)
    assert response.status_code == 400
    error = _error(response)
    assert error["errorCode"] == code
    assert error["message"]
    if fields is not None:
        assert error["fields"] == fields
    assert raw.get("/queryAll", params={"q": f"SELECT Id FROM {sobject}"}).json()["totalSize"] == 0


def test_comment_body_is_limited_to_4000_bytes_not_characters(raw: httpx.Client) -> None:
    case_id = _create(raw, Subject="accents")
    fits = raw.post("/sobjects/CaseComment", json={"ParentId": case_id, "CommentBody": "é" * 2000})
    too_long = raw.post(
        "/sobjects/CaseComment", json={"ParentId": case_id, "CommentBody": "é" * 2001}
    )
    assert fits.status_code == 201
    assert _error(too_long)["errorCode"] == "STRING_TOO_LONG"


@pytest.mark.parametrize(
    "sandbox_options",
    [
        {
            "picklists": {"Status": ("Open", "Done")},
            "closed_statuses": ("Done",),
            "restricted_picklists": ("Status",),
        }
    ],
)
def test_picklists_and_closed_statuses_are_configurable(raw: httpx.Client) -> None:
    assert _error(raw.post("/sobjects/Case", json={"Status": "New"}))["fields"] == ["Status"]
    case_id = _create(raw, Status="Done")
    case = raw.get(f"/sobjects/Case/{case_id}").json()
    assert case["IsClosed"] is True


# -- upsert by external id -----------------------------------------------------------------


def test_upsert_creates_then_updates_and_update_only_never_creates(raw: httpx.Client) -> None:
    url = f"/sobjects/Case/{EXT}/key-1"
    first = raw.patch(url, json={"Subject": "one"})
    assert first.status_code == 201
    assert first.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": True,
    }
    second = raw.patch(url, json={"Subject": "two"})
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert second.json()["id"] == first.json()["id"]
    case = raw.get(f"/sobjects/Case/{EXT}/key-1").json()
    assert case["Subject"] == "two"
    assert case[EXT] == "key-1"
    absent = raw.patch(f"/sobjects/Case/{EXT}/key-2", params={"updateOnly": "true"}, json={})
    assert absent.status_code == 404
    present = raw.patch(url, params={"updateOnly": "true"}, json={"Subject": "three"})
    assert present.status_code == 200
    assert raw.get("/query", params={"q": "SELECT Id FROM Case"}).json()["totalSize"] == 1


def test_upsert_on_a_field_that_is_no_external_id_is_404(raw: httpx.Client) -> None:
    for field in ("Nope__c", "Subject"):
        response = raw.patch(f"/sobjects/Case/{field}/v", json={})
        assert response.status_code == 404
        assert _error(response)["errorCode"] == "NOT_FOUND"


def test_the_unique_external_id_refuses_a_second_case_with_the_same_value(
    raw: httpx.Client,
) -> None:
    _create(raw, **{EXT: "dup"})
    assert _error(raw.post("/sobjects/Case", json={EXT: "dup"}))["errorCode"] == "DUPLICATE_VALUE"


@pytest.mark.parametrize("sandbox_options", [{"external_id_unique": False}])
def test_upsert_answers_300_with_the_candidates_when_several_match(raw: httpx.Client) -> None:
    ids = {_create(raw, **{EXT: "dup"}), _create(raw, **{EXT: "dup"})}
    response = raw.patch(f"/sobjects/Case/{EXT}/dup", json={"Subject": "which?"})
    assert response.status_code == 300
    assert sorted(response.json()) == sorted(f"{API}/sobjects/Case/{i}" for i in ids)


# -- SOQL ----------------------------------------------------------------------------------


def test_query_batches_follow_next_records_url_with_the_requested_batch_size(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    for n in range(450):
        sandbox.agent.create_case(Subject=f"case {n:03d}")
    headers = {"Sforce-Query-Options": "batchSize=200"}
    page = raw.get(
        "/query", params={"q": "SELECT Id, Subject FROM Case ORDER BY Subject"}, headers=headers
    ).json()
    assert page["totalSize"] == 450
    assert page["done"] is False
    assert len(page["records"]) == 200
    assert re.fullmatch(rf"{API}/query/01g\w{{15}}-200", page["nextRecordsUrl"])
    assert page["records"][0]["attributes"]["type"] == "Case"
    subjects = [r["Subject"] for r in page["records"]]
    while not page["done"]:
        page = raw.get(page["nextRecordsUrl"].removeprefix(API)).json()
        subjects += [r["Subject"] for r in page["records"]]
    assert subjects == [f"case {n:03d}" for n in range(450)]
    assert "nextRecordsUrl" not in page
    small = raw.get(
        "/query",
        params={"q": "SELECT Id FROM Case"},
        headers={"Sforce-Query-Options": "batchSize=5"},
    ).json()
    assert len(small["records"]) == 200  # 200 is the minimum batch


def test_later_batches_show_rows_as_they_stood_when_the_query_ran(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    """Batches are rendered as they are fetched, yet still from the query's own result."""
    ids = [sandbox.agent.create_case(Subject=f"case {n:03d}") for n in range(250)]
    first = raw.get(
        "/query",
        params={"q": "SELECT Id, Subject FROM Case ORDER BY Id"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    sandbox.agent.edit(ids[240], Subject="edited after the query ran")
    sandbox.agent.delete(ids[245])
    sandbox.agent.create_case(Subject="created after the query ran")

    rest = raw.get(first["nextRecordsUrl"].removeprefix(API)).json()

    in_order = sorted(ids, key=str.casefold)  # SOQL orders ids case-insensitively
    subjects = {case_id: f"case {n:03d}" for n, case_id in enumerate(ids)}
    assert rest["done"] is True
    assert [r["Id"] for r in rest["records"]] == in_order[200:]
    assert [r["Subject"] for r in rest["records"]] == [subjects[i] for i in in_order[200:]]


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Id FORM Case", "MALFORMED_QUERY", "unexpected token: FORM"),
        ("SELECT Id FROM Case WHERE", "MALFORMED_QUERY", "unexpected end of query"),
        ("SELECT Foo FROM Case", "INVALID_FIELD", "No such column 'Foo' on entity 'Case'"),
        ("SELECT Id FROM Widget", "INVALID_TYPE", "sObject type 'Widget' is not supported"),
        (
            "SELECT Id FROM Case WHERE Description = 'x'",
            "INVALID_FIELD",
            "can not be filtered",
        ),
    ],
    ids=["typo", "truncated", "unknown-field", "unknown-object", "textarea-filter"],
)
def test_bad_soql_is_refused_with_salesforce_codes_and_positions(
    raw: httpx.Client, soql: str, code: str, text: str
) -> None:
    response = raw.get("/query", params={"q": soql})
    assert response.status_code == 400
    error = _error(response)
    assert error["errorCode"] == code
    assert text in error["message"]
    if code == "MALFORMED_QUERY":
        assert "ERROR at Row:1:Column:" in error["message"]


def test_a_user_keeps_at_most_ten_cursors_and_idle_ones_expire(
    raw: httpx.Client, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    for n in range(201):
        sandbox.agent.create_case(Subject=str(n))
    headers = {"Sforce-Query-Options": "batchSize=200"}
    nexts = [
        raw.get("/query", params={"q": "SELECT Id FROM Case"}, headers=headers).json()[
            "nextRecordsUrl"
        ]
        for _ in range(11)
    ]
    oldest = raw.get(nexts[0].removeprefix(API))
    assert oldest.status_code == 400
    assert _error(oldest)["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert raw.get(nexts[1].removeprefix(API)).status_code == 200
    clock.advance(minutes=16)
    assert raw.get(nexts[2].removeprefix(API)).status_code == 400


def test_updated_feed_covers_whole_minutes(
    raw: httpx.Client, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    early = sandbox.agent.create_case(Subject="early")
    clock.advance(minutes=1, seconds=30)
    late = sandbox.agent.create_case(Subject="late")
    clock.advance(minutes=5)
    window = {"start": (START + timedelta(seconds=59)).isoformat(), "end": clock().isoformat()}
    feed = raw.get("/sobjects/Case/updated/", params=window).json()
    assert feed == {"ids": [early, late], "latestDateCovered": "2026-03-10T15:06:00.000+0000"}
    later = {"start": (START + timedelta(minutes=1)).isoformat(), "end": clock().isoformat()}
    assert raw.get("/sobjects/Case/updated/", params=later).json()["ids"] == [late]
    too_old = {"start": (START - timedelta(days=31)).isoformat(), "end": clock().isoformat()}
    refused = raw.get("/sobjects/Case/updated/", params=too_old)
    assert _error(refused)["errorCode"] == "INVALID_REPLICATION_DATE"


def test_emptying_the_recycle_bin_moves_earliest_date_available(
    raw: httpx.Client, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    sandbox.agent.delete(sandbox.agent.create_case(Subject="gone"))
    clock.advance(hours=2)
    sandbox.empty_recycle_bin()
    clock.advance(minutes=1)
    window = {"start": START.isoformat(), "end": clock().isoformat()}
    feed = raw.get("/sobjects/Case/deleted/", params=window).json()
    assert feed["deletedRecords"] == []
    assert feed["earliestDateAvailable"] == "2026-03-10T17:00:00.000+0000"


# -- sObject Collections -------------------------------------------------------------------


def test_collection_create_reports_each_record_and_all_or_none_rolls_back(
    raw: httpx.Client,
) -> None:
    records = [
        {"attributes": {"type": "Case"}, "Subject": "fine"},
        {"attributes": {"type": "Case"}, "Subject": "x" * 256},
        {"attributes": {"type": "CaseComment"}, "CommentBody": "orphan"},
    ]
    partial = raw.post("/composite/sobjects", json={"allOrNone": False, "records": records})
    assert partial.status_code == 200
    results = partial.json()
    assert results[0]["success"] is True
    assert results[0]["id"].startswith("500")
    assert results[1] == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "STRING_TOO_LONG",
                "message": "Subject: data value too large: " + "x" * 40 + "... (max length=255)",
                "fields": ["Subject"],
            }
        ],
    }
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"

    atomic = raw.post("/composite/sobjects", json={"allOrNone": True, "records": records})
    outcome = atomic.json()
    assert [r["success"] for r in outcome] == [False, False, False]
    assert outcome[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert raw.get("/query", params={"q": "SELECT Id FROM Case"}).json()["totalSize"] == 1


def test_collections_take_at_most_200_records(raw: httpx.Client) -> None:
    records = [{"attributes": {"type": "Case"}, "Subject": str(n)} for n in range(201)]
    response = raw.post("/composite/sobjects", json={"records": records})
    assert response.status_code == 400
    assert _error(response)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collection_update_and_upsert_report_per_item(raw: httpx.Client) -> None:
    case_id = _create(raw, Subject="a")
    update = raw.patch(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Case"}, "Id": case_id, "Priority": "High"},
                {"attributes": {"type": "Case"}, "Id": "500000000000009AAA", "Priority": "Low"},
                {"attributes": {"type": "Case"}, "Subject": "no id"},
            ]
        },
    ).json()
    assert [r["success"] for r in update] == [True, False, False]
    assert update[1]["errors"][0]["statusCode"] == "NOT_FOUND"
    assert update[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"

    raw.patch(f"/sobjects/Case/{case_id}", json={EXT: "k-1"})
    upsert = raw.patch(
        f"/composite/sobjects/Case/{EXT}",
        json={
            "records": [
                {"attributes": {"type": "Case"}, EXT: "k-1", "Subject": "updated"},
                {"attributes": {"type": "Case"}, EXT: "k-2", "Subject": "new"},
                {"attributes": {"type": "Case"}, EXT: "k-3", "Subject": "twice"},
                {"attributes": {"type": "Case"}, EXT: "k-3", "Subject": "twice"},
            ]
        },
    ).json()
    assert upsert[0] == {"id": case_id, "success": True, "errors": [], "created": False}
    assert upsert[1]["created"] is True
    assert [r["success"] for r in upsert[2:]] == [False, False]
    assert upsert[2]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"


# -- the agent desk and concurrency --------------------------------------------------------


def test_the_agent_desk_runs_the_same_validation_and_signs_its_changes(
    sandbox: SalesforceSandbox, raw: httpx.Client
) -> None:
    agent = sandbox.as_user(OWNER_IDS[2])
    case_id = agent.create_case(Subject="from the UI", Priority="High")
    agent.edit(case_id, Status="Escalated")
    comment_id = agent.add_comment(case_id, "called the customer", public=False)
    with pytest.raises(HttpError) as refused:
        agent.edit(case_id, Subject="x" * 256)
    assert refused.value.code == "STRING_TOO_LONG"
    case = raw.get(f"/sobjects/Case/{case_id}").json()
    assert case["CreatedById"] == OWNER_IDS[2]
    assert case["LastModifiedById"] == OWNER_IDS[2]
    assert case["OwnerId"] == OWNER_IDS[2]
    assert sandbox.comments(case_id)[0]["Id"] == comment_id
    assert sandbox.comments(case_id)[0]["IsPublished"] is False
    agent.delete(case_id)
    assert sandbox.cases()[0]["IsDeleted"] is True
    assert sandbox.comments(case_id)[0]["IsDeleted"] is True
    assert sandbox.cases(include_deleted=False) == []
    assert sandbox.api_usage == 1  # UI work does not spend API calls
    sandbox.reset()
    assert sandbox.cases() == []
    assert sandbox.agent.create_case(Subject="again") == case_id  # same seed, same ids


def test_concurrent_clients_never_share_an_id(
    server: SandboxServer, sandbox: SalesforceSandbox
) -> None:
    created: list[str] = []

    def work() -> None:
        with httpx.Client(
            base_url=f"{server.base_url}{API}",
            headers={"Authorization": f"Bearer {STATIC_TOKEN}"},
        ) as client:
            for n in range(20):
                created.append(_create(client, Subject=str(n)))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == len(set(created)) == 120
    numbers = sorted(case["CaseNumber"] for case in sandbox.cases())
    assert numbers == [f"{n:08d}" for n in range(1001, 1121)]


def test_populate_makes_the_same_plausible_org_for_the_same_seed(
    sandbox: SalesforceSandbox,
) -> None:
    ids = sandbox.agent.populate(30)
    twin = SalesforceSandbox(client_id="a", client_secret="b", seed=11, clock=sandbox.clock)
    assert twin.agent.populate(30) == ids
    assert [c["Subject"] for c in twin.cases()] == [c["Subject"] for c in sandbox.cases()]
    assert {c["Status"] for c in sandbox.cases()} <= set(sandbox.picklists["Status"])
    assert len({c["OwnerId"] for c in sandbox.cases()}) > 1
    assert sandbox.comments()
