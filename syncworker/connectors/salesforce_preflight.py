"""Judgements on the Salesforce org's settings: the Case fields and picklists the mapping
names, the external id creates upsert on, owner ids, the daily API quota."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncworker.connectors.salesforce_ids import to_id18
from syncworker.mapping import Mapping as FieldMap
from syncworker.mapping import Scalar
from syncworker.preflight.checklist import Item, fail, ok, warn
from syncworker.preflight.named import crm_values_named


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
