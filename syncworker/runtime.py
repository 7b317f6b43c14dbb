"""Builds a `Runtime` from settings: mapping, connectors, shared gates, locks. Which process
holds one, and when it is rebuilt, is `tasks`' business."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from syncworker.connectors.base import Connector
from syncworker.connectors.salesforce import DEFAULT_CASE_FIELDS, SalesforceConnector
from syncworker.connectors.salesforce_login import MY_DOMAIN_HINT
from syncworker.connectors.salesforce_probe import probe_salesforce
from syncworker.connectors.salesforce_quota import api_usage, quota_refused
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.context import Enqueue, Runtime
from syncworker.locks import Locks
from syncworker.mapping import Mapping, load, load_default
from syncworker.model import BaseStatus, Side
from syncworker.preflight import Item
from syncworker.ratelimit import QuotaBudget, SharedGate, WindowBudget, redis_client
from syncworker.settings import ConfigError, Settings


@dataclass(frozen=True)
class CrmWiring:
    """How to wire one CRM: its connector, its budget's gate, and its `syncworker check` probe."""

    connector: Callable[[Settings, httpx.Client, SharedGate, Iterable[str]], Connector]
    gate: Callable[[Settings, str], SharedGate]
    probe: Callable[[Connector, Settings, Mapping | None], list[Item]]


def _salesforce(
    settings: Settings, client: httpx.Client, gate: SharedGate, fields: Iterable[str]
) -> Connector:
    if settings.salesforce_access_token is None:
        settings.require("salesforce_client_id", "salesforce_client_secret")
        if settings.salesforce_login_url is None:
            raise ConfigError(f"missing SYNCWORKER_SALESFORCE_LOGIN_URL: {MY_DOMAIN_HINT}")
    return SalesforceConnector(
        client,
        login_url=settings.salesforce_login_url,
        instance_url=settings.salesforce_instance_url,
        client_id=settings.salesforce_client_id,
        client_secret=settings.salesforce_client_secret,
        access_token=settings.salesforce_access_token,
        api_version=settings.salesforce_api_version,
        external_id_field=settings.salesforce_external_id_field,
        fields=(*DEFAULT_CASE_FIELDS, *fields),
        gate=gate,
        assignment_rules_on_create=settings.salesforce_assignment_rules_on_create,
    )


def _salesforce_gate(settings: Settings, redis_url: str) -> SharedGate:
    """A daily API quota, read from each answer's `Sforce-Limit-Info`."""
    return SharedGate(
        remote="salesforce",
        redis_url=redis_url,
        quota=QuotaBudget(
            usage=api_usage,
            spent=quota_refused,
            reserve_fraction=settings.salesforce_daily_quota_reserve,
        ),
    )


CRMS = {
    "salesforce": CrmWiring(connector=_salesforce, gate=_salesforce_gate, probe=probe_salesforce)
}
"""The CRMs syncworker can wire, by the name `SYNCWORKER_CRM` and a mapping's `crm_system` use."""


def crm_wiring(settings: Settings) -> CrmWiring:
    wiring = CRMS.get(settings.crm)
    if wiring is None:
        raise ConfigError(
            f"SYNCWORKER_CRM={settings.crm!r} is not a CRM syncworker can wire "
            f"(known: {', '.join(CRMS)})"
        )
    return wiring


def build_gates(settings: Settings) -> dict[Side, SharedGate]:
    url = settings.effective_redis_url
    zenvia_window = WindowBudget(
        requests=settings.zenvia_rate_limit,
        window_seconds=settings.zenvia_rate_window_seconds,
        business_hours=settings.business_hours,
        timezone=settings.zenvia_timezone,
        poll_reserve=max(1, settings.zenvia_rate_limit // 5),
    )
    return {
        "zenvia": SharedGate(remote="zenvia", redis_url=url, window=zenvia_window),
        "crm": crm_wiring(settings).gate(settings, url),
    }


def build_connectors(
    settings: Settings,
    gates: dict[Side, SharedGate],
    *,
    zenvia_closed: Iterable[int] = (),
    crm_fields: Iterable[str] = (),
) -> dict[Side, Connector]:
    """`zenvia_closed`: the Zenvia status ids of base type CLOSED (a closing PATCH goes last);
    `crm_fields`: CRM fields to read besides the connector's own (the mapping's lookups)."""
    settings.require("zenvia_token")
    wiring = crm_wiring(settings)
    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=5.0)
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)

    def client() -> httpx.Client:
        return httpx.Client(timeout=timeout, limits=limits, verify=settings.verify_tls)

    assert settings.zenvia_token is not None
    return {
        "zenvia": ZenviaConnector(
            client(),
            base_url=settings.zenvia_base_url,
            token=settings.zenvia_token,
            gate=gates["zenvia"],
            # The DATE filter's time zone is undocumented: query in UTC and the account's zone.
            filter_timezones=(UTC, ZoneInfo(settings.zenvia_timezone)),
            clients_required=settings.zenvia_clients_required,
            signature_secret=settings.zenvia_signature_secret,
            closed_statuses=zenvia_closed,
            listing_lag_seconds=settings.zenvia_listing_lag_seconds,
            # a create lands within its request's timeout, give or take the clocks' difference
            send_window_seconds=settings.http_timeout_seconds + 2 * settings.clock_skew_seconds,
        ),
        "crm": wiring.connector(settings, client(), gates["crm"], crm_fields),
    }


def build_runtime(
    settings: Settings, *, enqueue_sync: Enqueue, syncs_waiting: Callable[[], int]
) -> Runtime:
    crm_wiring(settings)  # an unknown CRM is named as such, not as a mapping nobody shipped
    mapping = load(settings.mapping_file) if settings.mapping_file else load_default(settings.crm)
    if mapping.crm_system != settings.crm:
        raise ConfigError(
            f"{settings.mapping_file or 'the shipped mapping'}: crm_system {mapping.crm_system!r} "
            f"is not the CRM SYNCWORKER_CRM names ({settings.crm!r})"
        )
    gates = build_gates(settings)
    client = redis_client(settings.effective_redis_url)
    return Runtime(
        settings=settings,
        mapping=mapping,
        connectors=build_connectors(
            settings,
            gates,
            zenvia_closed=_closed_zenvia(mapping),
            crm_fields=mapping.lookup_fields("crm"),
        ),
        gates=gates,
        locks=Locks(client, ttl_seconds=settings.lock_ttl_seconds),
        redis=client,
        enqueue_sync=enqueue_sync,
        syncs_waiting=syncs_waiting,
        clock=lambda: datetime.now(UTC),
    )


def _closed_zenvia(mapping: Mapping) -> list[int]:
    if mapping.statuses is None:
        return []
    zenvia = mapping.statuses.for_side("zenvia")
    return [v for v, base in zenvia.items() if base is BaseStatus.CLOSED and isinstance(v, int)]
