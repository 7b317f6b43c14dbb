"""Judgements on the Zenvia account: the ids the mapping names, as far as listed tickets
show them, and what one request costs of the budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from syncworker.mapping import Scalar
from syncworker.preflight.checklist import Item, ok, warn
from syncworker.preflight.named import ZENVIA_ID_KINDS

CANNOT_VERIFY_ZENVIA = "Zenvia v2 has no catalogue endpoint, and these are on no listed ticket"


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
