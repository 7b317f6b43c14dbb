"""The I/O of `syncworker check`: one probe per area, each turning what it reads into
checklist items (`preflight` judges). Nothing here writes to a remote or Postgres; in Redis
only the shared Zenvia budget and the request counters count the check's own requests.

Costs: Zenvia 1 request (one listing page) plus one actions listing for each of up to
`ACTION_SAMPLE` tickets on it; the CRM's probe (its `CrmWiring.probe`) says its own.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, cast

import redis
from sqlalchemy.engine import make_url

from syncworker import preflight
from syncworker.connectors.base import Unreadable
from syncworker.connectors.errors import AuthError, RateLimitedError, RemoteError
from syncworker.connectors.zenvia import MAX_PAGE_SIZE, ZenviaConnector
from syncworker.mapping import Mapping, MappingError, load, load_default
from syncworker.model import RemoteRecord
from syncworker.preflight import Checklist, Item, fail, ok, one_line, warn
from syncworker.ratelimit import SharedGate
from syncworker.runtime import build_connectors, build_gates, crm_wiring
from syncworker.settings import ConfigError, Settings, load_settings
from syncworker.store import migrate
from syncworker.store.db import DatabaseUnavailable, check_database, redact_url

__all__ = ["run_checks"]

ACTION_SAMPLE = 3  # tickets whose actions `check` lists to judge the comment sweep's setting


def run_checks(environ: dict[str, str] | None = None) -> Checklist:
    """Every check, in the order a new deployment fails them; remotes only when configured."""
    checklist = Checklist()
    try:
        settings = load_settings(environ)
    except ConfigError as error:
        checklist.add(fail("settings", "valid", one_line(error), "fix the variable(s) named"))
        return checklist
    checklist.add(ok("settings", "valid", "every SYNCWORKER_* variable is valid"))
    mapping = _mapping(settings, checklist)
    checklist.add(probe_database(settings.database_url))
    redis_items = probe_redis(settings)
    checklist.add(redis_items)
    redis_ok = not any(i.name == "reachable" and i.status == "fail" for i in redis_items)
    # Zenvia requests count in the shared budget, unless Redis is down. A CRM's daily quota
    # gate refuses every request once the quota nears its reserve: the check goes ungated
    # there (a handful of reads), and the CRM's probe reports that quota itself.
    local = "memory://"
    zenvia_gate = build_gates(
        settings if redis_ok else settings.model_copy(update={"redis_url": local})
    )["zenvia"]
    ungated = SharedGate(remote=settings.crm, redis_url=local)
    try:
        connectors = build_connectors(settings, {"zenvia": zenvia_gate, "crm": ungated})
    except (ConfigError, ValueError) as error:
        checklist.add(fail("settings", "credentials", one_line(error), "set the variable(s)"))
        return checklist
    crm, zenvia = connectors["crm"], connectors["zenvia"]
    assert isinstance(zenvia, ZenviaConnector)
    try:
        checklist.add(crm_wiring(settings).probe(crm, settings, mapping))
        checklist.add(probe_zenvia(zenvia, settings, mapping))
        checklist.zenvia_requests = zenvia.requests.total
    finally:
        crm.close()
        zenvia.close()
    return checklist


def _mapping(settings: Settings, checklist: Checklist) -> Mapping | None:
    where = str(settings.mapping_file) if settings.mapping_file else "the shipped mapping"
    try:
        mapping = (
            load(settings.mapping_file) if settings.mapping_file else load_default(settings.crm)
        )
    except MappingError as error:
        checklist.add(
            fail("mapping", "valid", one_line(error), "`syncworker mapping check FILE` shows all")
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
        return [fail("database", "reachable", one_line(error), fix)]
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
            items.append(fail("redis", "reachable", f"{shown}: {one_line(error)}", fix))
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
                f"cannot verify now: {one_line(error)}",
                f"run `syncworker check` again in {error.retry_after:.0f} s",
            )
        ]
    except RemoteError as error:
        fix = (
            "set SYNCWORKER_ZENVIA_TOKEN to a valid API token (Zenvia: Settings → API tokens)"
            if isinstance(error, AuthError)
            else "check SYNCWORKER_ZENVIA_BASE_URL and Zenvia's status page"
        )
        return [fail("zenvia", "token", one_line(error), fix)]
    records = [item for item in listed if not isinstance(item, Unreadable)]
    items = [
        ok("zenvia", "token", f"accepted; {len(listed)} ticket(s) on the first listing page"),
        ok("zenvia", "cost", cost),
        probe_actions(connector, records[:ACTION_SAMPLE], settings),
    ]
    if mapping is None:
        return items
    tickets = [record.fields for record in records]
    seen = preflight.zenvia_ids_seen(tickets)
    return items + preflight.judge_zenvia_ids(
        preflight.zenvia_ids_named(mapping), seen, len(tickets)
    )


def probe_actions(
    connector: ZenviaConnector, tickets: list[RemoteRecord], settings: Settings
) -> Item:
    """Whether adding an action moves `updatedAt`, judged on these tickets' actions (one
    listing each): the comment sweep's setting is only right if it matches the account."""
    try:
        samples = [
            preflight.ActionSample(
                ticket.id,
                ticket.version,
                max((c.created_at for c in connector.list_comments(ticket.id)), default=None),
            )
            for ticket in tickets
        ]
    except RateLimitedError as error:
        return warn(
            "zenvia",
            "comment discovery",
            f"cannot sample tickets' actions now: {one_line(error)}",
            f"run `syncworker check` again in {error.retry_after:.0f} s",
        )
    except RemoteError as error:
        return warn(
            "zenvia",
            "comment discovery",
            f"cannot sample tickets' actions: {one_line(error)}",
            "run `syncworker check` again once Zenvia answers tickets' actions listings",
        )
    return preflight.judge_actions_move_updated_at(
        samples, setting=settings.zenvia_actions_move_updated_at
    )
