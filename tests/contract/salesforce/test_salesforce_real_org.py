"""The sandbox plays a real org's known facts by default, and each uncertain one behind a
switch (docs/real-apis.md, Salesforce): checked on the wire with a bare httpx client."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from syncworker.sandbox.salesforce import (
    DEFAULT_QUEUE_ID,
    OWNER_IDS,
    SalesforceSandbox,
    VisibilityDelay,
)
from syncworker.sandbox.server import SandboxServer

from .conftest import CLIENT_ID, CLIENT_SECRET, EXT, STATIC_TOKEN, MovableClock

pytestmark = pytest.mark.contract

OWNER = OWNER_IDS[3]
NO_RULES = {"Sforce-Auto-Assign": "FALSE"}


def _owner(raw: httpx.Client, case_id: str) -> str:
    return str(raw.get(f"/sobjects/Case/{case_id}").json()["OwnerId"])


def _ids(raw: httpx.Client, soql: str) -> list[str]:
    response = raw.get("/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return [row["Id"] for row in response.json()["records"]]


# -- the active Case assignment rule -------------------------------------------------------


def test_every_rest_write_without_the_header_gives_the_case_to_the_rule_s_queue(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    created = raw.post("/sobjects/Case", json={"Subject": "a", "OwnerId": OWNER}).json()["id"]
    assert _owner(raw, created) == DEFAULT_QUEUE_ID

    kept = raw.post("/sobjects/Case", json={"Subject": "b", "OwnerId": OWNER}, headers=NO_RULES)
    case_id = kept.json()["id"]
    assert _owner(raw, case_id) == OWNER
    raw.patch(f"/sobjects/Case/{case_id}", json={"Subject": "b2"}, headers=NO_RULES)
    assert _owner(raw, case_id) == OWNER
    raw.patch(f"/sobjects/Case/{case_id}", json={"Subject": "b3"})
    assert _owner(raw, case_id) == DEFAULT_QUEUE_ID

    human = sandbox.as_user(OWNER).create_case(Subject="from the UI")
    raw.patch(f"/sobjects/Case/{EXT}/k-1", json={"Subject": "c"})
    raw.patch(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": "Case"}, "Id": human, "Priority": "High"}]},
    )
    owners = {case["Subject"]: case["OwnerId"] for case in sandbox.cases()}
    assert owners["c"] == DEFAULT_QUEUE_ID
    assert owners["from the UI"] == DEFAULT_QUEUE_ID


@pytest.mark.parametrize("sandbox_options", [{"assignment_rule_owner": None}])
def test_an_org_without_an_active_assignment_rule_keeps_owners(raw: httpx.Client) -> None:
    case_id = raw.post("/sobjects/Case", json={"Subject": "a", "OwnerId": OWNER}).json()["id"]
    raw.patch(f"/sobjects/Case/{case_id}", json={"Subject": "b"})
    assert _owner(raw, case_id) == OWNER


# -- OAuth on My Domain only ---------------------------------------------------------------

FORM = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com", "example.com"])
def test_client_credentials_are_refused_on_the_shared_login_hosts(
    server: SandboxServer, host: str
) -> None:
    response = httpx.post(
        f"{server.base_url}/services/oauth2/token", data=FORM, headers={"Host": host}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "request not supported on this domain",
    }


def test_client_credentials_work_on_a_my_domain_host_in_the_form_or_as_basic_auth(
    server: SandboxServer,
) -> None:
    host = {"Host": "acme.my.salesforce.com"}
    in_form = httpx.post(f"{server.base_url}/services/oauth2/token", data=FORM, headers=host)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    as_basic = httpx.post(
        f"{server.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={**host, "Authorization": f"Basic {basic}"},
    )
    assert in_form.status_code == as_basic.status_code == 200
    assert in_form.json()["instance_url"] == "https://acme.my.salesforce.com"
    wrong = base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
    refused = httpx.post(
        f"{server.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={**host, "Authorization": f"Basic {wrong}"},
    )
    assert refused.json()["error"] == "invalid_client"


# -- QUERY_TIMEOUT -------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox_options", [{"query_scan_limit": 30}])
def test_a_query_scanning_more_rows_than_the_limit_times_out_the_salesforce_way(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    for n in range(40):
        sandbox.agent.create_case(Subject=f"case {n}")
    refused = raw.get("/queryAll", params={"q": "SELECT Id FROM Case"})
    assert refused.status_code == 400
    assert refused.json() == [
        {"message": "Your query request was running for too long.", "errorCode": "QUERY_TIMEOUT"}
    ]
    assert len(_ids(raw, "SELECT Id FROM Case ORDER BY Id LIMIT 30")) == 30  # the index stops it
    assert raw.get("/query", params={"q": "SELECT Id FROM Case LIMIT 30"}).status_code == 400


def test_the_default_scan_limit_is_twenty_thousand_rows() -> None:
    assert SalesforceSandbox(client_id="a", client_secret="b").query_scan_limit == 20_000


@pytest.mark.parametrize("sandbox_options", [{"query_scan_limit": None}])
def test_without_a_scan_limit_no_query_times_out(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    for n in range(40):
        sandbox.agent.create_case(Subject=f"case {n}")
    assert len(_ids(raw, "SELECT Id FROM Case")) == 40


# -- picklists -----------------------------------------------------------------------------


def test_picklists_are_unrestricted_by_default_and_store_an_unknown_value_silently(
    raw: httpx.Client,
) -> None:
    created = raw.post("/sobjects/Case", json={"Status": "Bogus", "Priority": "Urgent"})
    assert created.status_code == 201
    case = raw.get(f"/sobjects/Case/{created.json()['id']}").json()
    assert (case["Status"], case["Priority"]) == ("Bogus", "Urgent")


@pytest.mark.parametrize("sandbox_options", [{"restricted_picklists": ("Status", "Origin")}])
@pytest.mark.parametrize(
    ("body", "field"),
    [({"Status": "Bogus"}, "Status"), ({"Origin": "Fax"}, "Origin")],
    ids=["status", "origin"],
)
def test_a_restricted_picklist_refuses_an_unknown_value(
    raw: httpx.Client, body: dict[str, str], field: str
) -> None:
    response = raw.post("/sobjects/Case", json=body)
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error["fields"] == [field]
    assert raw.post("/sobjects/Case", json={"Priority": "Urgent"}).status_code == 201


# -- ids -----------------------------------------------------------------------------------


def test_15_and_18_character_ids_name_one_record_in_paths_bodies_and_soql(
    raw: httpx.Client,
) -> None:
    case_id = raw.post("/sobjects/Case", json={"Subject": "one"}).json()["id"]
    short, shouted = case_id[:15], case_id.upper()
    assert raw.get(f"/sobjects/Case/{short}").json()["Id"] == case_id
    assert raw.get(f"/sobjects/Case/{shouted}").json()["Id"] == case_id
    assert raw.patch(f"/sobjects/Case/{short}", json={"Subject": "two"}).status_code == 204
    comment = raw.post("/sobjects/CaseComment", json={"ParentId": short, "CommentBody": "x"})
    assert comment.status_code == 201
    rows = raw.get(
        "/query", params={"q": f"SELECT Id, ParentId FROM CaseComment WHERE ParentId = '{short}'"}
    ).json()["records"]
    assert [row["ParentId"] for row in rows] == [case_id]
    assert _ids(raw, f"SELECT Id FROM Case WHERE Id IN ('{short}', '{shouted}')") == [case_id]


# -- versions, describe, limits, users and queues -----------------------------------------


@pytest.mark.parametrize(("version", "status"), [("v46.0", 200), ("v68.0", 200), ("v69.0", 404)])
def test_api_versions_46_to_68_answer(server: SandboxServer, version: str, status: int) -> None:
    response = httpx.get(
        f"{server.base_url}/services/data/{version}/limits",
        headers={"Authorization": f"Bearer {STATIC_TOKEN}"},
    )
    assert response.status_code == status


def test_the_versions_list_needs_no_session_and_names_each_release(server: SandboxServer) -> None:
    versions = httpx.get(f"{server.base_url}/services/data/").json()
    assert [v["version"] for v in versions] == [f"{n}.0" for n in range(46, 69)]
    assert versions[0] == {"label": "Summer '19", "url": "/services/data/v46.0", "version": "46.0"}
    assert versions[-1]["label"] == "Winter '27"


def test_describe_shows_picklists_restriction_external_id_uniqueness_and_lengths(
    raw: httpx.Client,
) -> None:
    described = raw.get("/sobjects/Case/describe").json()
    assert described["name"] == "Case"
    assert described["keyPrefix"] == "500"
    fields = {field["name"]: field for field in described["fields"]}
    status = fields["Status"]
    assert status["type"] == "picklist"
    assert status["restrictedPicklist"] is False
    assert [p["value"] for p in status["picklistValues"]][:2] == ["New", "Working"]
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["New"]
    assert (fields[EXT]["externalId"], fields[EXT]["unique"]) == (True, True)
    assert (fields["Id"]["externalId"], fields["Subject"]["length"]) == (False, 255)
    assert fields["Description"]["length"] == 32_000
    assert fields["OwnerId"]["referenceTo"] == ["User", "Group"]
    comment = raw.get("/sobjects/CaseComment/describe").json()
    assert {f["name"] for f in comment["fields"]} >= {"ParentId", "CommentBody", "IsPublished"}


def test_limits_show_the_daily_api_requests_left(raw: httpx.Client) -> None:
    raw.get("/query", params={"q": "SELECT Id FROM Case"})
    limits = raw.get("/limits").json()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 2}


def test_users_and_queues_can_be_queried(raw: httpx.Client) -> None:
    users = raw.get("/query", params={"q": "SELECT Id, Name, IsActive FROM User"}).json()
    assert {row["Id"] for row in users["records"]} >= set(OWNER_IDS)
    assert all(row["IsActive"] is True for row in users["records"])
    queues = raw.get("/query", params={"q": "SELECT Id, Name, Type FROM Group"}).json()
    assert [(row["Id"], row["Type"]) for row in queues["records"]] == [(DEFAULT_QUEUE_ID, "Queue")]


# -- Id order ------------------------------------------------------------------------------


def _mixed_case_ids(sandbox: SalesforceSandbox) -> list[str]:
    """Create cases until two ids differ in Python's order and in a case-insensitive one."""
    ids = [sandbox.agent.create_case(Subject=str(n)) for n in range(80)]
    assert sorted(ids) != sorted(ids, key=str.casefold)
    return ids


def test_order_by_id_is_case_insensitive_by_default(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    ids = _mixed_case_ids(sandbox)
    assert _ids(raw, "SELECT Id FROM Case ORDER BY Id") == sorted(ids, key=str.casefold)
    middle = sorted(ids, key=str.casefold)[40]
    after = _ids(raw, f"SELECT Id FROM Case WHERE Id > '{middle}' ORDER BY Id")
    assert after == sorted(ids, key=str.casefold)[41:]  # comparisons agree with the order


@pytest.mark.parametrize("sandbox_options", [{"fold_ids": False}])
def test_binary_id_order_is_a_switch(raw: httpx.Client, sandbox: SalesforceSandbox) -> None:
    ids = _mixed_case_ids(sandbox)
    assert _ids(raw, "SELECT Id FROM Case ORDER BY Id") == sorted(ids)


# -- uncommitted work ----------------------------------------------------------------------


@pytest.mark.parametrize("sandbox_options", [{"visibility_delay": VisibilityDelay(1.0, 30)}])
def test_a_late_committing_write_appears_later_with_its_earlier_stamp(
    raw: httpx.Client, sandbox: SalesforceSandbox, clock: MovableClock
) -> None:
    raw_id = raw.post("/sobjects/Case", json={"Subject": "by the API"}, headers=NO_RULES)
    mine = raw_id.json()["id"]
    clock.advance(seconds=5)
    theirs = sandbox.agent.create_case(Subject="long transaction")
    stamp = sandbox.agent.case(theirs)["SystemModstamp"]
    clock.advance(seconds=1)
    sandbox.agent.edit(mine, Subject="edited in a long transaction")
    sandbox.agent.edit(theirs, Priority="High")  # the same transaction goes on

    assert _ids(raw, "SELECT Id FROM Case") == [mine]
    assert raw.get(f"/sobjects/Case/{theirs}").status_code == 404
    assert raw.get(f"/sobjects/Case/{mine}").json()["Subject"] == "by the API"
    locked = raw.patch(f"/sobjects/Case/{mine}", json={"Subject": "x"}, headers=NO_RULES)
    assert locked.status_code == 400
    assert locked.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"

    clock.advance(seconds=30)
    rows: list[dict[str, Any]] = raw.get(
        "/query", params={"q": "SELECT Id, Subject, SystemModstamp FROM Case ORDER BY Id"}
    ).json()["records"]
    by_id = {row["Id"]: row for row in rows}
    assert by_id[theirs]["SystemModstamp"] > stamp  # its last write's stamp, not the commit's
    assert by_id[theirs]["SystemModstamp"] == "2026-03-10T15:00:06.000+0000"
    assert by_id[mine]["Subject"] == "edited in a long transaction"


@pytest.mark.parametrize("sandbox_options", [{"visibility_delay": VisibilityDelay(0.5, 10)}])
def test_the_visibility_delay_touches_only_its_share_of_writes(
    raw: httpx.Client, sandbox: SalesforceSandbox
) -> None:
    for n in range(200):
        sandbox.agent.create_case(Subject=str(n))
    visible = len(_ids(raw, "SELECT Id FROM Case"))
    assert 60 < visible < 140


def test_writes_commit_at_once_by_default(raw: httpx.Client, sandbox: SalesforceSandbox) -> None:
    case_id = sandbox.agent.create_case(Subject="now")
    assert _ids(raw, "SELECT Id FROM Case") == [case_id]
    assert sandbox.visibility_delay is None


def test_visibility_delay_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"share is 0\.\.1"):
        VisibilityDelay(share=2, seconds=1)


def test_an_unknown_assignment_owner_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="is no owner"):
        SalesforceSandbox(client_id="a", client_secret="b", assignment_rule_owner="00G9")
