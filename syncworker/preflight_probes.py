"""The I/O of `syncworker check`: one probe per area, each turning what it reads into
checklist items (`preflight` judges). Nothing here writes to a remote or Postgres; in Redis
only the shared Zenvia budget and the request counters count the check's own requests.

Costs: Zenvia 1 request (one listing page); Salesforce 5 (versions, Case describe, User and
Group lookups, limits) plus the token request.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis
from sqlalchemy.engine import make_url

from syncworker import preflight
from syncworker.connectors.base import Unreadable
from syncworker.connectors.errors import AuthError, RateLimitedError, RemoteError
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.connectors.salesforce_login import MY_DOMAIN_HINT
from syncworker.connectors.zenvia import MAX_PAGE_SIZE, ZenviaConnector
from syncworker.mapping import Mapping, MappingError, load, load_default
from syncworker.preflight import Checklist, Item, fail, ok, warn
from syncworker.ratelimit import SharedGate
from syncworker.runtime import build_connectors, build_gates
from syncworker.settings import ConfigError, Settings, load_settings
from syncworker.store import migrate
from syncworker.store.db import DatabaseUnavailable, check_database, redact_url

__all__ = ["run_checks"]

SF_CREDENTIALS_FIX = (
    "check SYNCWORKER_SALESFORCE_CLIENT_ID/_CLIENT_SECRET (the connected app's consumer key "
    "and secret) and SYNCWORKER_SALESFORCE_LOGIN_URL"
)


def run_checks(environ: dict[str, str] | None = None) -> Checklist:
    """Every check, in the order a new deployment fails them; remotes only when configured."""
    checklist = Checklist()
    try:
        settings = load_settings(environ)
    except ConfigError as error:
        checklist.add(fail("settings", "valid", _one_line(error), "fix the variable(s) named"))
        return checklist
    checklist.add(ok("settings", "valid", "every SYNCWORKER_* variable is valid"))
    mapping = _mapping(settings, checklist)
    checklist.add(probe_database(settings.database_url))
    redis_items = probe_redis(settings)
    checklist.add(redis_items)
    redis_ok = not any(i.name == "reachable" and i.status == "fail" for i in redis_items)
    # Zenvia requests count in the shared budget, unless Redis is down. Salesforce's gate
    # refuses every request once the daily quota nears its reserve: the check goes ungated
    # there (a handful of reads) and reports that quota itself.
    local = "memory://"
    zenvia_gate = build_gates(
        settings if redis_ok else settings.model_copy(update={"redis_url": local})
    )["zenvia"]
    ungated = SharedGate(remote="salesforce", redis_url=local)
    try:
        connectors = build_connectors(settings, {"zenvia": zenvia_gate, "crm": ungated})
    except (ConfigError, ValueError) as error:
        checklist.add(fail("settings", "credentials", _one_line(error), "set the variable(s)"))
        return checklist
    salesforce, zenvia = connectors["crm"], connectors["zenvia"]
    assert isinstance(salesforce, SalesforceConnector)
    assert isinstance(zenvia, ZenviaConnector)
    try:
        checklist.add(probe_salesforce(salesforce, settings, mapping))
        checklist.add(probe_zenvia(zenvia, settings, mapping))
        checklist.zenvia_requests = zenvia.requests.total
    finally:
        salesforce.close()
        zenvia.close()
    return checklist


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _mapping(settings: Settings, checklist: Checklist) -> Mapping | None:
    where = str(settings.mapping_file) if settings.mapping_file else "the shipped mapping"
    try:
        mapping = load(settings.mapping_file) if settings.mapping_file else load_default()
    except MappingError as error:
        checklist.add(
            fail("mapping", "valid", _one_line(error), "`syncworker mapping check FILE` shows all")
        )
        return None
    checklist.add(ok("mapping", "valid", f"{where}: {len(mapping.fields)} fields"))
    return mapping


def probe_database(url: str) -> list[Item]:
    missing = _missing_sqlite_file(url)
    if missing is not None:
        fix = "run `syncworker db upgrade` (it creates the file), or correct the URL"
        return [fail("database", "reachable", f"{missing} does not exist", fix)]
    try:
        check_database(url)
        found = migrate.current_revision(url), migrate.head_revision(url)
    except DatabaseUnavailable as error:
        fix = "start Postgres or correct SYNCWORKER_DATABASE_URL"
        return [fail("database", "reachable", _one_line(error), fix)]
    return [ok("database", "reachable", "answers"), preflight.judge_migration(*found)]


def _missing_sqlite_file(url: str) -> Path | None:
    """A SQLite file that is not there: connecting would create it, and a check writes nothing."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def probe_redis(settings: Settings) -> list[Item]:
    items: list[Item] = []
    for url in dict.fromkeys((settings.broker_url, settings.effective_redis_url)):
        if url.startswith("memory://"):
            continue
        shown = redact_url(url)
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        try:
            client.ping()
            items.append(ok("redis", "reachable", f"{shown} answers"))
            items.append(preflight.judge_eviction_policy(shown, _eviction_policy(client)))
        except redis.exceptions.ConnectionError as error:
            fix = "start Redis or correct SYNCWORKER_BROKER_URL / SYNCWORKER_REDIS_URL"
            items.append(fail("redis", "reachable", f"{shown}: {_one_line(error)}", fix))
        finally:
            client.close()
    return items


def _eviction_policy(client: redis.Redis) -> str | None:
    """None when the server refuses CONFIG (managed services often rename or disable it)."""
    try:
        answer = cast("dict[Any, Any]", client.config_get("maxmemory-policy"))
    except redis.exceptions.ResponseError:
        return None
    value = answer.get(b"maxmemory-policy", answer.get("maxmemory-policy"))
    return value.decode() if isinstance(value, bytes) else value


# -- Salesforce ---------------------------------------------------------------------------------


def _sf_get(connector: SalesforceConnector, path: str) -> Any:
    """GET a metadata resource (versions, describe, limits) with the connector's login and
    error classes: it offers no public method for them yet."""
    return connector._call("GET", path, f"GET {path}").json()


def probe_salesforce(
    connector: SalesforceConnector, settings: Settings, mapping: Mapping | None
) -> list[Item]:
    try:
        versions = _sf_get(connector, "/services/data")
    except RateLimitedError as error:
        fix = f"run `syncworker check` again in {error.retry_after:.0f} s"
        return [fail("salesforce", "login", f"refused for now: {_one_line(error)}", fix)]
    except RemoteError as error:
        fix = SF_CREDENTIALS_FIX if isinstance(error, AuthError) else MY_DOMAIN_HINT
        return [fail("salesforce", "login", _one_line(error), fix)]
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
            preflight.judge_quota(
                _sf_get(connector, "limits"), settings.salesforce_daily_quota_reserve
            )
        ],
    )
    return items


def _attempt(name: str, probe: Callable[[], list[Item]]) -> list[Item]:
    try:
        return probe()
    except RemoteError as error:
        return [fail("salesforce", name, _one_line(error), "see the remote's message")]


def _case_items(
    connector: SalesforceConnector, settings: Settings, mapping: Mapping | None
) -> list[Item]:
    describe = _sf_get(connector, "sobjects/Case/describe")
    items = [preflight.judge_external_id(describe, settings.salesforce_external_id_field)]
    if mapping is None:
        return items
    items += preflight.judge_picklists(describe, preflight.crm_values_named(mapping))
    if mapping.client_lookup is not None:
        items.append(preflight.judge_client_lookup(describe, mapping.client_lookup.crm))
    owners = preflight.owner_ids_named(mapping)
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
    return items + preflight.judge_owner_ids(owners, users, queues)


# -- Zenvia ---------------------------------------------------------------------------------


def probe_zenvia(
    connector: ZenviaConnector, settings: Settings, mapping: Mapping | None
) -> list[Item]:
    cost = preflight.zenvia_cost_line(
        settings.zenvia_rate_limit,
        settings.zenvia_rate_window_seconds,
        settings.zenvia_business_hours,
        settings.zenvia_timezone,
    )
    try:
        # The first listing page only (a page holds MAX_PAGE_SIZE): one request.
        listed = list(itertools.islice(connector.iter_all(), MAX_PAGE_SIZE))
    except RateLimitedError as error:
        return [
            warn(
                "zenvia",
                "token",
                f"cannot verify now: {_one_line(error)}",
                f"run `syncworker check` again in {error.retry_after:.0f} s",
            )
        ]
    except RemoteError as error:
        fix = (
            "set SYNCWORKER_ZENVIA_TOKEN to a valid API token (Zenvia: Settings → API tokens)"
            if isinstance(error, AuthError)
            else "check SYNCWORKER_ZENVIA_BASE_URL and Zenvia's status page"
        )
        return [fail("zenvia", "token", _one_line(error), fix)]
    items = [
        ok("zenvia", "token", f"accepted; {len(listed)} ticket(s) on the first listing page"),
        ok("zenvia", "cost", cost),
    ]
    if mapping is None:
        return items
    tickets = [item.fields for item in listed if not isinstance(item, Unreadable)]
    seen = preflight.zenvia_ids_seen(tickets)
    return items + preflight.judge_zenvia_ids(
        preflight.zenvia_ids_named(mapping), seen, len(tickets)
    )
