"""`syncworker check`'s probe of a Salesforce org (`CrmWiring.probe`): login, API version,
the Case describe judged against the mapping (`salesforce_preflight`), the daily quota.

Costs 5 requests (versions, Case describe, User and Group lookups, limits) plus the token
request; it writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncworker.connectors.base import Connector
from syncworker.connectors.errors import AuthError, RateLimitedError, RemoteError
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.connectors.salesforce_login import MY_DOMAIN_HINT
from syncworker.connectors.salesforce_preflight import (
    judge_client_lookup,
    judge_external_id,
    judge_owner_ids,
    judge_picklists,
    judge_quota,
    owner_ids_named,
)
from syncworker.mapping import Mapping
from syncworker.preflight import Item, crm_values_named, fail, ok, one_line
from syncworker.settings import Settings

__all__ = ["probe_salesforce"]

CREDENTIALS_FIX = (
    "check SYNCWORKER_SALESFORCE_CLIENT_ID/_CLIENT_SECRET (the connected app's consumer key "
    "and secret) and SYNCWORKER_SALESFORCE_LOGIN_URL"
)


def _sf_get(connector: SalesforceConnector, path: str) -> Any:
    """GET a metadata resource (versions, describe, limits) with the connector's login and
    error classes: it offers no public method for them yet."""
    return connector._call("GET", path, f"GET {path}").json()


def probe_salesforce(
    connector: Connector, settings: Settings, mapping: Mapping | None
) -> list[Item]:
    """Login, API version, the Case describe judged against the mapping, the daily quota."""
    assert isinstance(connector, SalesforceConnector)
    try:
        versions = _sf_get(connector, "/services/data")
    except RateLimitedError as error:
        fix = f"run `syncworker check` again in {error.retry_after:.0f} s"
        return [fail("salesforce", "login", f"refused for now: {one_line(error)}", fix)]
    except RemoteError as error:
        fix = CREDENTIALS_FIX if isinstance(error, AuthError) else MY_DOMAIN_HINT
        return [fail("salesforce", "login", one_line(error), fix)]
    where = settings.salesforce_login_url or settings.salesforce_instance_url
    items = [ok("salesforce", "login", f"logged in via {where}")]
    offered = [str(v.get("version")) for v in versions if isinstance(v, dict)]
    wanted = settings.salesforce_api_version
    if wanted not in offered:
        newest = max(offered, key=float, default="?")
        return [
            *items,
            fail(
                "salesforce",
                "api version",
                f"the org does not offer API v{wanted} (newest: v{newest})",
                f"set SYNCWORKER_SALESFORCE_API_VERSION={newest}",
            ),
        ]
    items.append(ok("salesforce", "api version", f"v{wanted} offered"))
    items += _attempt("describe", lambda: _case_items(connector, settings, mapping))
    items += _attempt(
        "daily quota",
        lambda: [
            judge_quota(_sf_get(connector, "limits"), settings.salesforce_daily_quota_reserve)
        ],
    )
    return items


def _attempt(name: str, probe: Callable[[], list[Item]]) -> list[Item]:
    try:
        return probe()
    except RemoteError as error:
        return [fail("salesforce", name, one_line(error), "see the remote's message")]


def _case_items(
    connector: SalesforceConnector, settings: Settings, mapping: Mapping | None
) -> list[Item]:
    describe = _sf_get(connector, "sobjects/Case/describe")
    items = [judge_external_id(describe, settings.salesforce_external_id_field)]
    if mapping is None:
        return items
    items += judge_picklists(describe, crm_values_named(mapping))
    if mapping.client_lookup is not None:
        items.append(judge_client_lookup(describe, mapping.client_lookup.crm))
    owners = owner_ids_named(mapping)
    ids = sorted({o.id18 for o in owners if o.id18 is not None})
    users: dict[str, bool] = {}
    queues: list[str] = []
    if ids:
        listed = ", ".join(f"'{i}'" for i in ids)
        for row in connector.query(f"SELECT Id, IsActive FROM User WHERE Id IN ({listed})"):
            users[row["Id"]] = bool(row.get("IsActive"))
        queues = [
            row["Id"] for row in connector.query(f"SELECT Id FROM Group WHERE Id IN ({listed})")
        ]
    return items + judge_owner_ids(owners, users, queues)
