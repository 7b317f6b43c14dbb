"""The sandbox answers the real `simple-salesforce` client the way an org does, used the way
integrations use it: client credentials on a My Domain host, describe, limits, query_all,
upsert. simple-salesforce builds `https://{domain}.salesforce.com` URLs; a transport adapter
sends those requests to the sandbox's loopback port (real HTTP, Host header kept)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce  # type: ignore[import-untyped,unused-ignore]

from syncworker.sandbox.salesforce import DEFAULT_QUEUE_ID, SalesforceSandbox
from syncworker.sandbox.server import SandboxServer

from .conftest import CLIENT_ID, CLIENT_SECRET, EXT

pytestmark = pytest.mark.contract


class ToSandbox(HTTPAdapter):
    """Sends every https request to the sandbox's loopback address, keeping the Host it named."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(("http", self.address, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


@pytest.fixture
def session(server: SandboxServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.mount("https://", ToSandbox(urlsplit(server.base_url).netloc))
        yield session


def _login(session: requests.Session, domain: str = "acme.my") -> Any:
    return Salesforce(
        consumer_key=CLIENT_ID,
        consumer_secret=CLIENT_SECRET,
        domain=domain,
        session=session,
        version="62.0",
    )


def test_simple_salesforce_logs_in_with_client_credentials_on_my_domain(
    session: requests.Session,
) -> None:
    sf = _login(session)
    assert sf.sf_instance == "acme.my.salesforce.com"
    assert sf.session_id


def test_simple_salesforce_describes_cases_and_reads_the_limits(
    session: requests.Session,
) -> None:
    sf = _login(session)
    fields = {field["name"]: field for field in sf.Case.describe()["fields"]}
    assert fields[EXT]["externalId"] is True
    assert fields["Status"]["picklistValues"]
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert 0 < limits["DailyApiRequests"]["Remaining"] < 100_000


def test_simple_salesforce_upserts_and_reads_everything_back_with_query_all(
    session: requests.Session, sandbox: SalesforceSandbox
) -> None:
    for n in range(2_100):
        sandbox.agent.create_case(Subject=f"case {n}")
    sandbox.agent.delete(sandbox.cases()[0]["Id"])
    sf = _login(session)

    created = sf.Case.upsert(f"{EXT}/key-1", {"Subject": "via simple-salesforce"})
    kept = sf.Case.upsert(
        f"{EXT}/key-2", {"Subject": "owner kept"}, headers={"Sforce-Auto-Assign": "FALSE"}
    )
    again = sf.Case.upsert(f"{EXT}/key-1", {"Subject": "updated"})
    everything = sf.query_all("SELECT Id, Subject, OwnerId FROM Case", include_deleted=True)

    assert (created, kept, again) == (201, 201, 200)
    assert everything["totalSize"] == 2_102
    assert len(everything["records"]) == 2_102  # followed nextRecordsUrl past 2,000
    owners = {row["Subject"]: row["OwnerId"] for row in everything["records"]}
    assert owners["updated"] == DEFAULT_QUEUE_ID  # the assignment rule ran without the header
    assert owners["owner kept"] != DEFAULT_QUEUE_ID
