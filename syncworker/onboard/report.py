"""The survey for people (`lines`) and, with its budget, for machines (`as_json`)."""

from __future__ import annotations

from collections.abc import Iterable

from syncworker.model import SIDES
from syncworker.onboard.budget import BudgetTime
from syncworker.onboard.surveying import Survey


def lines(plan: Survey) -> Iterable[str]:
    """The survey for people; `as_json` is the same for machines."""
    made = plan.creates()
    yield f"pairs already synced: {plan.already_synced}"
    for rule, count in sorted(plan.links_by_rule().items()):
        yield f"pairs to link and merge ({rule}): {count}"
    yield f"records to create: {made['zenvia']} Zenvia tickets, {made['crm']} CRM cases"
    for side in SIDES:
        for why, count in sorted(plan.left_out[side].items()):
            if count:
                yield f"{side} records left out ({why}): {count}"
    for side, written in plan.overwrites().items():
        if written:
            fields = ", ".join(f"{name} ({count})" for name, count in sorted(written.items()))
            yield f"the merges overwrite on {side}: {fields}"
    for entry in plan.ambiguous:
        yield (
            f"ambiguous ({entry.rule}): {entry.side} {entry.record_id} matches "
            f"{', '.join(entry.candidates)}; pair it with `syncworker links import`"
        )
    for side, count in plan.unreadable.items():
        if count:
            yield f"{side} records unreadable (see the dead letters after a reconcile): {count}"
    costs = plan.zenvia_requests()
    yield (
        f"Zenvia requests: {costs['total']} ({costs['writes']} writes, "
        f"{costs['first_reads']} first reads); this survey used {plan.survey_zenvia_requests}"
    )


def as_json(plan: Survey, budget: BudgetTime) -> dict[str, object]:
    return {
        "already_synced": plan.already_synced,
        "links": dict(plan.links_by_rule()),
        "creates": plan.creates(),
        "left_out": {side: dict(plan.left_out[side]) for side in SIDES},
        "overwrites": {side: dict(written) for side, written in plan.overwrites().items()},
        "ambiguous": [
            {"side": a.side, "id": a.record_id, "candidates": list(a.candidates), "rule": a.rule}
            for a in plan.ambiguous
        ],
        "unreadable": plan.unreadable,
        "zenvia_requests": plan.zenvia_requests(),
        "survey_zenvia_requests": plan.survey_zenvia_requests,
        "budget": {
            "business_hours_seconds": round(budget.business_hours_seconds),
            "limited_now": budget.limited_now,
            "night_starts": budget.night_starts.isoformat() if budget.night_starts else None,
            "night_ends": budget.night_ends.isoformat() if budget.night_ends else None,
        },
    }
