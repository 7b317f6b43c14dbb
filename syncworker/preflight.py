"""`syncworker check`: the pre-flight checklist and the pure judgements behind its lines.

Probes (`preflight_probes.py`) fetch what the remotes, Postgres and Redis say; the functions
here turn those answers and the mapping into checklist items: ok, warn (could not be
verified, or works with a caveat) or fail (a blocker: `syncworker check` exits 1). Each item
that is not ok carries its fix in one line. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from syncworker.connectors.salesforce_ids import to_id18
from syncworker.mapping import Mapping as FieldMap
from syncworker.mapping import Scalar
from syncworker.model import Side, other_side

__all__ = [
    "Checklist",
    "Item",
    "OwnerId",
    "crm_values_named",
    "fail",
    "judge_client_lookup",
    "judge_eviction_policy",
    "judge_external_id",
    "judge_migration",
    "judge_owner_ids",
    "judge_picklists",
    "judge_quota",
    "judge_zenvia_ids",
    "lines",
    "normalised_note",
    "ok",
    "owner_ids_named",
    "warn",
    "zenvia_cost_line",
    "zenvia_ids_named",
    "zenvia_ids_seen",
]

Status = Literal["ok", "warn", "fail"]
SYMBOLS: dict[Status, str] = {"ok": "✓", "warn": "!", "fail": "✗"}
# Zenvia native attributes holding ids the mapping may name, and what the checklist calls them.
ZENVIA_ID_KINDS = {
    "status": "status",
    "justification": "justification",
    "category": "category",
    "urgency": "urgency",
    "ownerId": "agent",
    "ownerTeam": "team",
}
CANNOT_VERIFY_ZENVIA = "Zenvia v2 has no catalogue endpoint, and these are on no listed ticket"


@dataclass(frozen=True)
class Item:
    """One checklist line: `fix` says in one line what to do when it is not ok."""

    area: str
    name: str
    status: Status
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status != "ok" and not self.fix:
            raise ValueError(f"{self.area}/{self.name}: a {self.status} item needs its fix")

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]


def ok(area: str, name: str, message: str) -> Item:
    return Item(area, name, "ok", message)


def warn(area: str, name: str, message: str, fix: str) -> Item:
    return Item(area, name, "warn", message, fix)


def fail(area: str, name: str, message: str, fix: str) -> Item:
    return Item(area, name, "fail", message, fix)


@dataclass
class Checklist:
    items: list[Item] = field(default_factory=list)
    zenvia_requests: int = 0

    def add(self, items: Item | Iterable[Item]) -> None:
        self.items.extend([items] if isinstance(items, Item) else items)

    @property
    def blocked(self) -> bool:
        return any(item.status == "fail" for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.blocked,
            "zenvia_requests": self.zenvia_requests,
            "items": [asdict(item) for item in self.items],
        }


# -- database and Redis -----------------------------------------------------------------------


def judge_migration(current: str | None, head: str | None) -> Item:
    if current == head:
        return ok("database", "migrated", f"at the code's head revision {head}")
    return fail(
        "database",
        "migrated",
        f"at revision {current or '(empty database)'}, the code needs {head}",
        "run `syncworker db upgrade`",
    )


def judge_eviction_policy(url: str, policy: str | None) -> Item:
    """`policy` None: the server refused CONFIG GET (managed Redis often does)."""
    if policy is None:
        return warn(
            "redis",
            "eviction",
            f"{url}: cannot verify maxmemory-policy (CONFIG GET refused)",
            "make sure the service's maxmemory-policy is noeviction (its console or settings)",
        )
    if policy == "noeviction":
        return ok("redis", "eviction", f"{url}: maxmemory-policy noeviction")
    return fail(
        "redis",
        "eviction",
        f"{url}: maxmemory-policy {policy} may evict queued tasks, locks and rate budgets",
        "set `maxmemory-policy noeviction` (redis.conf, or CONFIG SET maxmemory-policy noeviction)",
    )


# -- Salesforce ---------------------------------------------------------------------------------


def _describe_fields(describe: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A describe answer's fields by name."""
    listed = describe.get("fields")
    return {
        f["name"]: f
        for f in (listed if isinstance(listed, list) else [])
        if isinstance(f, dict) and isinstance(f.get("name"), str)
    }


def judge_external_id(describe: Mapping[str, Any], name: str) -> Item:
    """The Case field creates upsert on must be External ID + Unique (no duplicate creates)."""
    fields = _describe_fields(describe)
    found = fields.get(name)
    fix = (
        f"in Setup → Object Manager → Case, create {name} (Text) with External ID and Unique "
        f"ticked, or set SYNCWORKER_SALESFORCE_EXTERNAL_ID_FIELD"
    )
    if found is None:
        return fail("salesforce", "external id", f"Case has no field {name}", fix)
    missing = [
        flag
        for flag, key in (("External ID", "externalId"), ("Unique", "unique"))
        if not found.get(key)
    ]
    if missing:
        return fail(
            "salesforce",
            "external id",
            f"Case.{name} is not {' + '.join(missing)}",
            f"edit Case.{name} in Setup → Object Manager and tick {' and '.join(missing)}",
        )
    return ok("salesforce", "external id", f"Case.{name} is External ID + Unique")


def judge_client_lookup(describe: Mapping[str, Any], name: str) -> Item:
    """The Case field `client_lookup` reads must exist: every Case query selects it."""
    if name in _describe_fields(describe):
        return ok("salesforce", "client lookup", f"Case.{name} gives a new ticket's contact")
    return fail(
        "salesforce",
        "client lookup",
        f"Case has no field {name} (the mapping's client_lookup.crm)",
        "name the Case's e-mail field in client_lookup.crm (ContactEmail), or remove "
        "client_lookup from the mapping",
    )


def crm_values_named(mapping: FieldMap) -> dict[str, set[Scalar]]:
    """Every CRM value the mapping names, per Case field: maps, defaults, statuses, scope."""
    named: dict[str, set[Scalar]] = {}
    for name, field_map in mapping.fields.items():
        named.setdefault(field_map.crm, set()).update(_values_named(mapping, name, "crm"))
    for native, value in mapping.create_defaults.crm.items():
        named.setdefault(native, set()).add(value)
    for native, allowed in mapping.scope.crm.items():
        named.setdefault(native, set()).update(allowed)
    return {native: {v for v in values if v is not None} for native, values in named.items()}


def _values_named(mapping: FieldMap, name: str, side: Side) -> set[Scalar]:
    """One side's values a field's maps, default and catalogue (or the statuses) name."""
    field_map = mapping.fields[name]
    values: set[Scalar] = {
        *field_map.value_map(other_side(side)),
        *field_map.value_map(side).values(),
        *(mapping.catalogue(name, side) or ()),
    }
    if field_map.has_default(side):
        values.add(field_map.default(side))
    return values


def judge_picklists(describe: Mapping[str, Any], named: Mapping[str, set[Scalar]]) -> list[Item]:
    """A value the org's picklist lacks is refused (restricted) or stored silently: ✗ both."""
    fields = _describe_fields(describe)
    items: list[Item] = []
    for native in sorted(named):
        found = fields.get(native)
        if found is None:
            items.append(
                fail(
                    "salesforce",
                    f"field {native}",
                    f"Case has no field {native}, which the mapping names",
                    f"fix the mapping's Case field name {native!r}, or create the field",
                )
            )
            continue
        if found.get("type") not in ("picklist", "multipicklist"):
            continue
        active = {p.get("value") for p in found.get("picklistValues", []) if p.get("active")}
        unknown = sorted(str(v) for v in named[native] if v not in active)
        if not unknown:
            items.append(ok("salesforce", f"picklist {native}", f"Case.{native}: all values exist"))
            continue
        effect = (
            "a restricted picklist: Salesforce refuses these writes"
            if found.get("restrictedPicklist")
            else "an unrestricted picklist: Salesforce would store them silently, off the list"
        )
        items.append(
            fail(
                "salesforce",
                f"picklist {native}",
                f"Case.{native} has no active value {', '.join(map(repr, unknown))} ({effect})",
                f"add the value(s) to Case.{native} in Setup, or change them in the mapping",
            )
        )
    return items


@dataclass(frozen=True)
class OwnerId:
    """A user or queue id the mapping names, as written and as Salesforce returns it."""

    written: str
    id18: str | None  # None: not a Salesforce id at all
    problem: str = ""

    @property
    def normalised(self) -> bool:
        return self.id18 is not None and self.id18 != self.written


def owner_ids_named(mapping: FieldMap) -> list[OwnerId]:
    """The ids the mapping names for Case fields holding ids (`…Id`: OwnerId and the like)."""
    named = crm_values_named(mapping)
    read = sorted(
        {str(v) for native, values in named.items() if native.endswith("Id") for v in values}
    )
    as_written = {id18: written for written, id18 in mapping.normalised_ids.items()}
    found: list[OwnerId] = []
    for value in read:
        try:
            found.append(OwnerId(as_written.get(value, value), to_id18(value)))
        except ValueError as refused:
            found.append(OwnerId(value, None, str(refused)))
    return found


def normalised_note(owner: OwnerId) -> str:
    """What `mapping check` and `check` say about an id written in 15 characters."""
    return f"{owner.written} normalised to {owner.id18} (Salesforce returns 18 characters)"


def judge_owner_ids(
    owners: Iterable[OwnerId], users: Mapping[str, bool], queues: Iterable[str]
) -> list[Item]:
    """`users`: id18 → IsActive for the users found; `queues`: the queue ids found."""
    queue_ids = set(queues)
    items: list[Item] = []
    for owner in owners:
        name = f"owner {owner.written}"
        if owner.id18 is None:
            fix = "write the user's or queue's 18-character id"
            items.append(fail("salesforce", name, owner.problem, fix))
        elif owner.id18 not in users and owner.id18 not in queue_ids:
            items.append(
                fail(
                    "salesforce",
                    name,
                    f"{owner.id18} is no user or queue of this org",
                    "copy the id from the user's or queue's page in Setup into the mapping",
                )
            )
        elif owner.id18 in users and not users[owner.id18]:
            items.append(
                fail(
                    "salesforce",
                    name,
                    f"user {owner.id18} is inactive: Salesforce refuses it as an owner",
                    "activate the user, or map another one",
                )
            )
        elif owner.normalised:
            items.append(ok("salesforce", name, f"exists; {normalised_note(owner)}"))
        else:
            kind = "user" if owner.id18 in users else "queue"
            items.append(ok("salesforce", name, f"{kind} {owner.id18} exists"))
    return items


def judge_quota(limits: Mapping[str, Any], reserve_fraction: float) -> Item:
    daily = limits.get("DailyApiRequests")
    if not isinstance(daily, dict) or not all(
        isinstance(daily.get(key), int) for key in ("Max", "Remaining")
    ):
        return warn(
            "salesforce",
            "daily quota",
            "cannot verify: /limits has no DailyApiRequests",
            "check Setup → Company Information → API Requests, Last 24 Hours",
        )
    limit, remaining = daily["Max"], daily["Remaining"]
    message = f"{remaining} of {limit} API requests left in the last 24 hours"
    if remaining <= limit * reserve_fraction:
        return fail(
            "salesforce",
            "daily quota",
            f"{message}: syncs stop at the {reserve_fraction:.0%} reserve",
            "wait for the 24-hour window to free requests, or find what else spends them",
        )
    return ok("salesforce", "daily quota", message)


# -- Zenvia ---------------------------------------------------------------------------------


def zenvia_ids_named(mapping: FieldMap) -> dict[str, set[Scalar]]:
    """Every Zenvia id the mapping names, per kind (status, justification, category, …)."""
    named: dict[str, set[Scalar]] = {}
    for name, field_map in mapping.fields.items():
        kind = ZENVIA_ID_KINDS.get(field_map.zenvia)
        if kind is None:
            continue
        named.setdefault(kind, set()).update(_values_named(mapping, name, "zenvia"))
    named.setdefault("justification", set()).update(mapping.zenvia_justifications.values())
    return {kind: {v for v in ids if v is not None} for kind, ids in named.items() if ids - {None}}


def zenvia_ids_seen(tickets: Iterable[Mapping[str, Any]]) -> dict[str, set[Scalar]]:
    """The ids listed tickets hold (native fields as the Zenvia connector reads them)."""
    seen: dict[str, set[Scalar]] = {kind: set() for kind in ZENVIA_ID_KINDS.values()}
    for fields in tickets:
        for native, kind in ZENVIA_ID_KINDS.items():
            if fields.get(native) is not None:
                seen[kind].add(fields[native])
    return seen


def judge_zenvia_ids(
    named: Mapping[str, set[Scalar]], seen: Mapping[str, set[Scalar]], listed: int
) -> list[Item]:
    """An id on a listed ticket exists; any other cannot be verified without writing."""
    items: list[Item] = []
    for kind in sorted(named):
        known = seen.get(kind, set())
        found = sorted(map(str, named[kind] & known))
        unverified = sorted(map(str, named[kind] - known))
        if not unverified:
            items.append(ok("zenvia", f"{kind} ids", f"{', '.join(found)}: on listed tickets"))
            continue
        shown = f"{', '.join(found)} on listed tickets; " if found else ""
        items.append(
            warn(
                "zenvia",
                f"{kind} ids",
                f"{shown}cannot verify {', '.join(unverified)} ({CANNOT_VERIFY_ZENVIA}: "
                f"{listed} read)",
                f"compare them with the account's {kind} settings in Zenvia's admin pages",
            )
        )
    return items


def zenvia_cost_line(
    rate_limit: int, window_seconds: float, business_hours: str, timezone: str
) -> str:
    share = 100 / rate_limit
    when = (
        "at all hours"
        if business_hours == "always"
        else f"in business hours {business_hours} {timezone} (unlimited otherwise)"
    )
    return (
        f"one request costs 1 of {rate_limit} per {window_seconds:g} s ({share:.3g} % of the "
        f"budget) {when}"
    )


def lines(checklist: Checklist) -> Iterator[tuple[Item, str]]:
    """Each item with its plain-text line (`✓ area name: message`)."""
    for item in checklist.items:
        yield item, f"{item.symbol} {item.area} {item.name}: {item.message}"
