"""The three-way merge of a pair whose records both exist: each mapped field against its own
side's baseline, a two-sided change settled by the field's policy, what a CLOSED Zenvia ticket
refuses held back until it reopens. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from syncworker.engine.comments import cancel_notices, copy_comments
from syncworker.engine.operations import Conflict, Operation, Plan, UpdateFields
from syncworker.engine.pair import Pair, is_canceled, required, with_justification
from syncworker.mapping import Mapping, Policy
from syncworker.model import (
    SIDES,
    BaseStatus,
    LinkState,
    NativeFields,
    RemoteRecord,
    Side,
    other_side,
)

_ABSENT = object()


def plan_merge(pair: Pair) -> Plan:
    """Both records exist: merge every mapped field, then copy new comments."""
    mapping = pair.mapping
    records = {side: required(pair.live(side)) for side in SIDES}
    canceled_now = is_canceled(mapping, records["zenvia"].fields) and not is_canceled(
        mapping, pair.baseline("zenvia") or {}
    )
    if canceled_now and mapping.on_cancel == "unlink":
        return pair.unchanged(LinkState.ORPHANED, f"{pair.label('zenvia')} was canceled")
    writes: dict[Side, NativeFields] = {"crm": {}, "zenvia": {}}
    baselines = {side: mapping.project(side, records[side].fields) for side in SIDES}
    conflicts: list[Conflict] = []
    notes: list[str | None] = []
    parked = False
    for name, field in mapping.fields.items():
        values = {side: records[side].fields.get(field.native(side), _ABSENT) for side in SIDES}
        if _ABSENT in values.values():
            continue
        changed = {
            side: _changed(pair.baseline(side), field.native(side), values[side]) for side in SIDES
        }
        winner: Side | None
        if canceled_now and name == "status":
            winner = "zenvia"  # on_cancel close: the cancel closes the case whatever changed there
        elif not any(changed.values()) or mapping.agree(name, values["crm"], values["zenvia"]):
            continue
        elif field.owner is not None:
            winner = field.owner
        elif mapping.cleared_by_zenvia(name, values["crm"], values["zenvia"]):
            winner = "crm"
        elif changed["crm"] != changed["zenvia"]:
            winner = "crm" if changed["crm"] else "zenvia"
        else:
            conflict = _settle(pair, name, field.policy, values, records)
            conflicts.append(conflict)
            winner = conflict.winner
        if winner is None:
            parked = True
            for side in SIDES:
                _keep_baseline(baselines[side], field.native(side), pair.baseline(side))
            continue
        loser = other_side(winner)
        if field.keeps(loser, values[winner]):
            continue  # no counterpart: the other side keeps its value
        value = mapping.translate(name, winner, values[winner])
        if value != values[loser]:
            writes[loser][field.native(loser)] = value
            baselines[loser][field.native(loser)] = value
            notes.append(mapping.adaptation(name, winner, values[winner]))
    if canceled_now:
        cancel_notice = cancel_notices(pair, records["crm"].id)
    copies, pairs = copy_comments(pair, {side: records[side].id for side in SIDES})
    closed = _closed_ticket(mapping, records["zenvia"], writes["zenvia"])
    if closed:
        notes.append(closed)
        for field in mapping.fields.values():
            if field.zenvia in writes["zenvia"]:  # both keep their baselines: still a change
                for side in SIDES:
                    _keep_baseline(baselines[side], field.native(side), pair.baseline(side))
        writes["zenvia"] = {}
        copies = [op for op in copies if op.side != "zenvia"]
    updates: list[Operation] = [
        UpdateFields(side, records[side].id, with_justification(mapping, side, writes[side]))
        for side in SIDES
        if writes[side]
    ]
    if canceled_now:
        updates += cancel_notice
    return Plan(
        operations=_closing_last(mapping, updates, copies),
        crm_baseline=baselines["crm"],
        zenvia_baseline=baselines["zenvia"],
        link_state=LinkState.CONFLICT if parked else LinkState.ACTIVE,
        conflicts=tuple(conflicts),
        comment_pairs=pairs,
        notes=tuple(note for note in notes if note),
    )


def _closed_ticket(mapping: Mapping, ticket: RemoteRecord, writes: NativeFields) -> str | None:
    """Why nothing is written to the ticket: a CLOSED Zenvia ticket refuses every edit and
    comment but the status change that reopens it. What waits is written once it reopens."""
    native = mapping.status_native("zenvia") or ""
    if mapping.status_base("zenvia", ticket.fields.get(native)) is not BaseStatus.CLOSED:
        return None
    reopening = native in writes and mapping.status_base("zenvia", writes[native]) not in (
        BaseStatus.CLOSED,
        None,
    )
    if reopening:
        return None
    return f"Zenvia ticket {ticket.id} is closed: its edits and comments wait until it reopens"


def _closing_last(
    mapping: Mapping, updates: Sequence[Operation], copies: Sequence[Operation]
) -> tuple[Operation, ...]:
    """Updates, then comments; but an update that closes the ticket goes last, after the
    comments it would otherwise refuse."""
    native = mapping.status_native("zenvia") or ""
    closing = [
        op
        for op in updates
        if isinstance(op, UpdateFields)
        and op.side == "zenvia"
        and mapping.status_base("zenvia", op.changes.get(native)) is BaseStatus.CLOSED
    ]
    return (*[op for op in updates if op not in closing], *copies, *closing)


def _changed(baseline: NativeFields | None, native: str, value: Any) -> bool:
    return baseline is None or native not in baseline or baseline[native] != value


def _keep_baseline(new: NativeFields, native: str, old: NativeFields | None) -> None:
    """A parked field keeps its old baseline, so it still reads as changed next time."""
    if old is not None and native in old:
        new[native] = old[native]
    else:
        new.pop(native, None)


def _settle(
    pair: Pair,
    name: str,
    policy: Policy,
    values: dict[Side, Any],
    records: dict[Side, RemoteRecord],
) -> Conflict:
    winner: Side | None
    if policy == "crm_wins":
        winner = "crm"
    elif policy == "zenvia_wins":
        winner = "zenvia"
    elif policy == "newest_wins":
        winner = "zenvia" if _edited(records["zenvia"]) > _edited(records["crm"]) else "crm"
    else:
        winner = pair.resolutions.get(name)
    return Conflict(name, values["crm"], values["zenvia"], policy, winner)


def _edited(record: RemoteRecord) -> datetime:
    """When the record's own fields last changed, as well as the remote can tell: never a
    comment's stamp (our own comment copies would make a stale value look newest)."""
    return _utc(record.changed_at or record.version)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
