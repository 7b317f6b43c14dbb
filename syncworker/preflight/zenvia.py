"""Judgements on the Zenvia account: the ids the mapping names, as far as listed tickets
show them; whether adding an action moves a ticket's `updatedAt`, as far as sampled tickets
show it; and what one request costs of the budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncworker.mapping import Scalar
from syncworker.preflight.checklist import Item, fail, ok, warn
from syncworker.preflight.named import ZENVIA_ID_KINDS

CANNOT_VERIFY_ZENVIA = "Zenvia v2 has no catalogue endpoint, and these are on no listed ticket"
ACTIONS_SETTING = "SYNCWORKER_ZENVIA_ACTIONS_MOVE_UPDATED_AT"
# An action within this of its ticket's updatedAt may be the edit that stamped it (a status
# carried by an action, the first action of a new ticket, whole-second stamps).
SAME_MOMENT = timedelta(seconds=1)


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


@dataclass(frozen=True)
class ActionSample:
    """A listed ticket's `updatedAt` (its `createdAt` while never edited) and the newest
    `createdAt` among its actions (None: it has none)."""

    ticket_id: str
    changed_at: datetime
    newest_action: datetime | None


def judge_actions_move_updated_at(samples: Sequence[ActionSample], *, setting: bool) -> Item:
    """An action stamped after its ticket's `updatedAt` proves that adding one does not move
    it: comments added in Zenvia are then found only by the comment sweep, which the setting
    turns off. No such ticket proves nothing (an edit after the last action hides it)."""
    name = "comment discovery"
    late = next(
        (
            sample
            for sample in samples
            if sample.newest_action is not None
            and sample.newest_action > sample.changed_at + SAME_MOMENT
        ),
        None,
    )
    if late is not None:
        assert late.newest_action is not None
        proof = (
            f"ticket {late.ticket_id} has an action at {late.newest_action.isoformat()} after "
            f"its updatedAt {late.changed_at.isoformat()}"
        )
        if setting:
            return fail(
                "zenvia",
                name,
                f"{ACTIONS_SETTING}=true, but {proof}: comments added in Zenvia would not sync",
                f"unset {ACTIONS_SETTING} (the comment sweep then finds them)",
            )
        return ok(
            "zenvia",
            name,
            f"adding an action does not move updatedAt ({proof}): the comment sweep finds "
            "comments added in Zenvia",
        )
    sampled = f"none of {len(samples)} sampled ticket(s) has an action after its updatedAt"
    if setting:
        return ok("zenvia", name, f"{ACTIONS_SETTING}=true (no comment sweep): {sampled}")
    return ok(
        "zenvia",
        name,
        f"{sampled}; if adding a comment in Zenvia moves a ticket's updatedAt on this account, "
        f"{ACTIONS_SETTING}=true stops the comment sweep and frees its share of the budget",
    )
