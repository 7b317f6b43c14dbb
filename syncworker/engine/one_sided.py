"""A plan for a pair with one live record: the other is gone (close the survivor or just
unlink, `on_delete`) or never existed (create it, comments included). Pure."""

from __future__ import annotations

from syncworker.engine.comments import copy_comments, delete_notice
from syncworker.engine.operations import AddComment, CreateRecord, Operation, Plan, UpdateFields
from syncworker.engine.pair import Pair, is_canceled, required, with_justification
from syncworker.mapping import Mapping
from syncworker.markers import idempotency_key
from syncworker.model import BaseStatus, LinkState, NativeFields, Side, other_side


def plan_removal(pair: Pair, side: Side) -> Plan:
    """A linked record disappeared: close the survivor (on_delete close) or just unlink."""
    survivor = pair.live(other_side(side))
    reason = f"{pair.label(side)} was deleted; the link is orphaned"
    if survivor is None or pair.mapping.on_delete == "unlink":
        return pair.unchanged(LinkState.ORPHANED, reason)
    mapping, target = pair.mapping, other_side(side)
    operations: list[Operation] = []
    baselines = {side: pair.baseline(side), target: mapping.project(target, survivor.fields)}
    closing = _closing_changes(mapping, target, survivor.fields)
    key = idempotency_key("delete", side, pair.known_id(side) or "")
    notice = delete_notice(pair, side, closing=bool(closing))
    if not any(
        pair.has_written(target, delete_notice(pair, side, closing=c)) for c in (True, False)
    ):
        # the notice first: a closed Zenvia ticket takes no comment
        operations.append(AddComment(target, survivor.id, notice, False, None, key))
    if closing:
        changes = with_justification(mapping, target, closing)
        operations.append(UpdateFields(target, survivor.id, changes))
        baselines[target] = {**(baselines[target] or {}), **closing}
    return Plan(
        tuple(operations), baselines["crm"], baselines["zenvia"], LinkState.ORPHANED, reason=reason
    )


def _closing_changes(mapping: Mapping, side: Side, fields: NativeFields) -> NativeFields:
    """The status write that closes a record, unless it is already closed or canceled."""
    native = mapping.status_native(side)
    if native is None:
        return {}
    current = mapping.status_base(side, fields.get(native))
    if current in (BaseStatus.CLOSED, BaseStatus.CANCELED):
        return {}
    return {native: mapping.closed_status(side)}


def plan_create(pair: Pair, source: Side) -> Plan:
    """One side exists and the other never did: create it there, comments included."""
    mapping, record, target = pair.mapping, required(pair.live(source)), other_side(source)
    if not mapping.in_scope(source, record.fields):
        return pair.unchanged(LinkState.ACTIVE, f"{pair.label(source)} is out of scope")
    if source == "zenvia" and mapping.on_cancel == "unlink" and is_canceled(mapping, record.fields):
        return pair.unchanged(LinkState.ACTIVE, f"{pair.label(source)} is canceled; not copied")
    fields = mapping.create_fields(target, record.fields)
    create = CreateRecord(
        side=target,
        fields=fields,
        description=mapping.create_description(target, record.fields),
        idempotency_key=idempotency_key("create", source, record.id),
        source_id=record.id,
        client_email=mapping.client_email(target, record.fields),
    )
    copies, _ = copy_comments(pair, {source: record.id, target: None}, only_from=source)
    baselines = {
        source: mapping.project(source, record.fields),
        target: mapping.project(target, fields),
    }
    notes = (
        mapping.adaptation(name, source, record.fields.get(field.native(source)))
        for name, field in mapping.fields.items()
        if field.native(target) in fields
    )
    return Plan(
        (create, *copies),
        baselines["crm"],
        baselines["zenvia"],
        LinkState.ACTIVE,
        notes=tuple(note for note in notes if note),
    )
