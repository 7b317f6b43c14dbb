"""The three-way merge: both remote states + the link's baselines → a plan of writes (pure).

Each field is compared with its own side's baseline (the native value after the last sync):
changed on one side only → pushed to the other; changed on both → settled by the field's
policy. Our writes go into the new baselines, so they never come back as changes, and
agreement is judged through the mapping in either direction, so a lossy map (Escalated → 2,
2 → Working) never flips a value back. The service applies the plan, folding each write into
the stored baselines as soon as it lands, and stores the rest of the plan once every write
succeeded (see `Plan`).
"""

from __future__ import annotations

import collections.abc as abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from syncworker.mapping import Mapping, Policy
from syncworker.markers import find_marker, idempotency_key
from syncworker.model import (
    SIDES,
    BaseStatus,
    LinkState,
    NativeFields,
    RemoteComment,
    RemoteRecord,
    Side,
    other_side,
)

_NOUNS = {"crm": "case", "zenvia": "ticket"}
_ABSENT = object()


@dataclass(frozen=True)
class LinkSnapshot:
    """What the mapping table holds for one pair at the start of a sync."""

    crm_id: str | None
    zenvia_id: str | None
    crm_baseline: NativeFields | None = None
    zenvia_baseline: NativeFields | None = None
    state: LinkState = LinkState.ACTIVE

    def record_id(self, side: Side) -> str | None:
        return self.crm_id if side == "crm" else self.zenvia_id

    def baseline(self, side: Side) -> NativeFields | None:
        return self.crm_baseline if side == "crm" else self.zenvia_baseline


@dataclass(frozen=True)
class CommentPair:
    """A comment and its copy; `origin` is the side the comment was first written on."""

    crm_comment_id: str
    zenvia_comment_id: str
    origin: Side


@dataclass(frozen=True)
class CreateRecord:
    """Create the record on `side`; `idempotency_key` guards the write-ahead intent.
    `client_email`: the ticket's client is the Zenvia contact with this e-mail, when one
    exists (looked up at the create); `fields` hold the default clients."""

    side: Side
    fields: NativeFields
    description: str
    idempotency_key: str
    source_id: str
    client_email: str | None = None


@dataclass(frozen=True)
class UpdateFields:
    """Write `changes` only: each differs from the record's current value (Zenvia: one PATCH
    per attribute; a status carries its `justification` in the same dict)."""

    side: Side
    record_id: str
    changes: NativeFields


@dataclass(frozen=True)
class AddComment:
    """Add a comment with exactly this body (it carries no marker: customers read it).

    `record_id` None means the record the CreateRecord earlier in the same plan creates.
    `source_comment_id` None marks our own notice (a delete or cancel), which pairs with nothing.
    `idempotency_key` names the write-ahead intent; a retry after a lost reply finds the
    comment by its text (`is_copy_of`).
    """

    side: Side
    record_id: str | None
    body: str
    public: bool
    source_comment_id: str | None
    idempotency_key: str

    def pair(self, written_comment_id: str) -> CommentPair | None:
        """The comment link to store once the comment was written."""
        if self.source_comment_id is None:
            return None
        return _comment_pair(other_side(self.side), self.source_comment_id, written_comment_id)


def _comment_pair(source: Side, source_comment_id: str, copy_id: str) -> CommentPair:
    if source == "crm":
        return CommentPair(source_comment_id, copy_id, source)
    return CommentPair(copy_id, source_comment_id, source)


Operation = CreateRecord | UpdateFields | AddComment


@dataclass(frozen=True)
class Conflict:
    """A two-way field changed on both sides to values that do not agree."""

    field: str
    crm_value: Any
    zenvia_value: Any
    policy: Policy
    winner: Side | None  # None: parked until an operator resolves it


@dataclass(frozen=True)
class Plan:
    """The writes to make, in order, and the baselines and link state they lead to.

    Applying it: run `operations` in order. Store a created record's id on the link as soon
    as its create succeeds (a later AddComment with `record_id` None targets that record); a
    create whose intent resolves to a record a lost attempt made adopts that record with the
    attempt's planned baselines instead, and the pair is planned again. Fold each field write
    into both stored baselines as soon as it lands (its planned values only: the other fields
    keep their old ones), and store each comment link as soon as its comment is written
    (`AddComment.pair`). Once every write succeeded, store both baselines, `link_state`, the
    conflicts still open (those in `resolved_fields` leave the link) and `comment_pairs`. On
    a failure what already landed stays folded, so our own write never reads as a person's
    change: the next plan picks up from the remotes' state, and a copy found by its text is
    paired instead of written twice.
    """

    operations: tuple[Operation, ...]
    crm_baseline: NativeFields | None
    zenvia_baseline: NativeFields | None
    link_state: LinkState
    conflicts: tuple[Conflict, ...] = ()
    comment_pairs: tuple[CommentPair, ...] = ()
    reason: str = ""  # why the plan writes nothing or orphans the link, for people
    notes: tuple[str, ...] = ()  # values adapted to what a side can hold, for the sync log

    @property
    def is_empty(self) -> bool:
        return not self.operations and not self.comment_pairs

    @property
    def resolved_fields(self) -> tuple[str, ...]:
        """Manual conflicts an operator's resolution settled: clear them once applied."""
        return tuple(c.field for c in self.conflicts if c.policy == "manual" and c.winner)

    def describe(self) -> list[str]:
        """One line per decision, for `resync --dry-run`."""
        lines = [_describe_operation(op) for op in self.operations]
        lines += [
            f"pair comments crm {p.crm_comment_id} = zenvia {p.zenvia_comment_id} (already copied)"
            for p in self.comment_pairs
        ]
        lines += [_describe_conflict(c) for c in self.conflicts]
        lines += [f"note: {note}" for note in self.notes]
        if self.link_state is not LinkState.ACTIVE:
            lines.append(f"link becomes {self.link_state}")
        if self.reason:
            lines.append(self.reason)
        return lines or ["nothing to do"]


_NO_RESOLUTIONS: abc.Mapping[str, Side] = MappingProxyType({})


def plan(
    mapping: Mapping,
    *,
    link: LinkSnapshot | None,
    crm: RemoteRecord | None,
    zenvia: RemoteRecord | None,
    crm_comments: abc.Sequence[RemoteComment] = (),
    zenvia_comments: abc.Sequence[RemoteComment] = (),
    comment_links: abc.Sequence[CommentPair] = (),
    resolutions: abc.Mapping[str, Side] = _NO_RESOLUTIONS,
) -> Plan:
    """Decide what one sync of one pair must write. `None` records are absent (never created,
    or deleted); `resolutions` names the winner of fields parked in a manual conflict."""
    pair = _Pair(
        mapping=mapping,
        link=link,
        records={"crm": crm, "zenvia": zenvia},
        comments={"crm": tuple(crm_comments), "zenvia": tuple(zenvia_comments)},
        comment_links=tuple(comment_links),
        resolutions=resolutions,
    )
    if link is not None and link.state is LinkState.ORPHANED:
        return pair.unchanged(LinkState.ORPHANED, "the link is orphaned; nothing is synced")
    gone = [side for side in SIDES if pair.is_gone(side)]
    if gone:
        return _plan_removal(pair, gone[0])
    live = [side for side in SIDES if pair.live(side) is not None]
    if len(live) == 2:
        return _plan_merge(pair)
    if live:
        return _plan_create(pair, live[0])
    return pair.unchanged(LinkState.ACTIVE, "neither record exists")


@dataclass(frozen=True)
class _Pair:
    """The inputs of one plan, with the questions every branch asks of them."""

    mapping: Mapping
    link: LinkSnapshot | None
    records: dict[Side, RemoteRecord | None]
    comments: dict[Side, tuple[RemoteComment, ...]]
    comment_links: tuple[CommentPair, ...]
    resolutions: abc.Mapping[str, Side]

    def live(self, side: Side) -> RemoteRecord | None:
        record = self.records[side]
        return record if record is not None and not record.deleted else None

    def known_id(self, side: Side) -> str | None:
        record = self.records[side]
        linked = self.link.record_id(side) if self.link else None
        return linked or (record.id if record is not None else None)

    def is_gone(self, side: Side) -> bool:
        """Known to have existed (linked or flagged deleted) but no longer there."""
        return self.live(side) is None and self.known_id(side) is not None

    def baseline(self, side: Side) -> NativeFields | None:
        return self.link.baseline(side) if self.link else None

    def label(self, side: Side) -> str:
        return f"{self.mapping.system_label(side)} {_NOUNS[side]} {self.known_id(side)}"

    def unchanged(self, state: LinkState, reason: str) -> Plan:
        return Plan((), self.baseline("crm"), self.baseline("zenvia"), state, reason=reason)

    def has_written(self, side: Side, body: str) -> bool:
        return any(is_copy_of(comment.body, body) for comment in self.comments[side])


def _plan_removal(pair: _Pair, side: Side) -> Plan:
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
    notice = _delete_notice(pair, side, closing=bool(closing))
    if not any(
        pair.has_written(target, _delete_notice(pair, side, closing=c)) for c in (True, False)
    ):
        # the notice first: a closed Zenvia ticket takes no comment
        operations.append(AddComment(target, survivor.id, notice, False, None, key))
    if closing:
        changes = _with_justification(mapping, target, closing)
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


def _plan_create(pair: _Pair, source: Side) -> Plan:
    """One side exists and the other never did: create it there, comments included."""
    mapping, record, target = pair.mapping, _required(pair.live(source)), other_side(source)
    if not mapping.in_scope(source, record.fields):
        return pair.unchanged(LinkState.ACTIVE, f"{pair.label(source)} is out of scope")
    if (
        source == "zenvia"
        and mapping.on_cancel == "unlink"
        and _is_canceled(mapping, record.fields)
    ):
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
    copies, _ = _copy_comments(pair, {source: record.id, target: None}, only_from=source)
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


def _plan_merge(pair: _Pair) -> Plan:
    """Both records exist: merge every mapped field, then copy new comments."""
    mapping = pair.mapping
    records = {side: _required(pair.live(side)) for side in SIDES}
    canceled_now = _is_canceled(mapping, records["zenvia"].fields) and not _is_canceled(
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
        cancel_notice = _cancel_notice(pair, records["crm"].id)
    copies, pairs = _copy_comments(pair, {side: records[side].id for side in SIDES})
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
        UpdateFields(side, records[side].id, _with_justification(mapping, side, writes[side]))
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


def _required(record: RemoteRecord | None) -> RemoteRecord:
    assert record is not None
    return record


def _changed(baseline: NativeFields | None, native: str, value: Any) -> bool:
    return baseline is None or native not in baseline or baseline[native] != value


def _keep_baseline(new: NativeFields, native: str, old: NativeFields | None) -> None:
    """A parked field keeps its old baseline, so it still reads as changed next time."""
    if old is not None and native in old:
        new[native] = old[native]
    else:
        new.pop(native, None)


def _settle(
    pair: _Pair,
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


def _with_justification(mapping: Mapping, side: Side, changes: NativeFields) -> NativeFields:
    return mapping.with_justification(changes) if side == "zenvia" else changes


def _is_canceled(mapping: Mapping, zenvia_fields: NativeFields) -> bool:
    status = zenvia_fields.get(mapping.status_native("zenvia") or "")
    return mapping.status_base("zenvia", status) is BaseStatus.CANCELED


_NOTICE_ENDINGS = (
    "so syncworker closed this case.",
    "so syncworker closed this one.",
    "so syncworker stopped syncing this one.",
)


def is_notice(text: str) -> bool:
    """Whether a comment is one of the notices syncworker writes when a record ends."""
    return text.strip().endswith(_NOTICE_ENDINGS)


def _cancel_notice(pair: _Pair, crm_id: str) -> list[Operation]:
    key = idempotency_key("cancel", "zenvia", pair.known_id("zenvia") or "")
    notice = _cancel_text(pair)
    if pair.has_written("crm", notice):
        return []
    return [AddComment("crm", crm_id, notice, False, None, key)]


def _cancel_text(pair: _Pair) -> str:
    return f"{pair.label('zenvia')} was canceled, {_NOTICE_ENDINGS[0]}"


def _delete_notice(pair: _Pair, side: Side, *, closing: bool) -> str:
    done = _NOTICE_ENDINGS[1] if closing else _NOTICE_ENDINGS[2]
    return f"{pair.label(side)} was deleted, {done}"


def _copy_comments(
    pair: _Pair, record_ids: dict[Side, str | None], only_from: Side | None = None
) -> tuple[list[Operation], tuple[CommentPair, ...]]:
    """Copy each comment not yet linked and not written by us, in the order its remote lists
    it (connectors list comments in the remote's own order).

    Our copies carry no marker, so they are known by their text: first every unlinked comment
    is paired with an unlinked copy of it on the other side (one an interrupted run wrote),
    then what is left is copied. A human reply that quotes a copy is not the copy's text, so
    it is copied like any other comment. Never copied: our notices, and the INTERNAL first
    action of a ticket we created (the only text that still carries a marker).
    """
    if not pair.mapping.comments.sync:
        return [], ()
    taken = {
        "crm": {p.crm_comment_id for p in pair.comment_links},
        "zenvia": {p.zenvia_comment_id for p in pair.comment_links},
    }
    pairs: list[CommentPair] = []
    for source in SIDES:
        target = other_side(source)
        for comment in pair.comments[source]:
            if comment.id in taken[source]:
                continue
            body = copy_text(pair.mapping, source, comment)
            copy = next(
                (
                    c
                    for c in pair.comments[target]
                    if c.id not in taken[target] and is_copy_of(c.body, body)
                ),
                None,
            )
            if copy is not None:
                pairs.append(_comment_pair(source, comment.id, copy.id))
                taken[source].add(comment.id)
                taken[target].add(copy.id)
    notices = {side: _notices(pair, side) for side in SIDES}
    copies: list[Operation] = []
    for source in SIDES if only_from is None else (only_from,):
        target = other_side(source)
        for comment in pair.comments[source]:
            ours = find_marker(comment.body) or any(
                is_copy_of(comment.body, n) for n in notices[source]
            )
            if comment.id in taken[source] or ours:  # a create's first action, or a notice
                continue
            key = idempotency_key("comment", source, comment.id)
            body = copy_text(pair.mapping, source, comment)
            copies.append(
                AddComment(target, record_ids[target], body, comment.public, comment.id, key)
            )
    return copies, tuple(pairs)


def _notices(pair: _Pair, side: Side) -> tuple[str, ...]:
    """Every notice syncworker may have written on `side` of this pair: never copied."""
    other = other_side(side)
    written = [_delete_notice(pair, other, closing=closing) for closing in (True, False)]
    if side == "crm":
        written.append(_cancel_text(pair))
    return tuple(written)


def copy_text(mapping: Mapping, source: Side, comment: RemoteComment) -> str:
    """The text of our copy of `comment` on the other side: its body and where it came from."""
    author = f", written by {comment.author_id}" if comment.author_id else ""
    return f"{comment.body}\n\n— copied from {mapping.system_label(source)}{author}"


def is_copy_of(text: str, written: str) -> bool:
    """Whether a remote comment's `text` is what we wrote as `written`. Remotes may trim
    whitespace and cut a long text (ending it with "…"), never add to it."""
    text, written = text.strip(), written.strip()
    if text == written:
        return True
    return text.endswith("…") and len(text) > 1 and written.startswith(text[:-1].rstrip())


def _describe_operation(op: Operation) -> str:
    if isinstance(op, CreateRecord):
        values = ", ".join(f"{k}={v!r}" for k, v in op.fields.items())
        line = f"create {op.side} record from {other_side(op.side)} {op.source_id}: {values}"
        return line + (f" ({client_lookup_note(op.client_email)})" if op.client_email else "")
    if isinstance(op, UpdateFields):
        values = ", ".join(f"{k}={v!r}" for k, v in op.changes.items())
        return f"update {op.side} {op.record_id}: {values}"
    visibility = "public" if op.public else "internal"
    where = op.record_id or "(the new record)"
    origin = (
        f" copied from {other_side(op.side)} comment {op.source_comment_id}"
        if op.source_comment_id
        else ""
    )
    first_line = op.body.splitlines()[0] if op.body else ""
    return f"add {visibility} comment to {op.side} {where}{origin}: {first_line[:60]!r}"


def client_lookup_note(email: str) -> str:
    """What a create that looks its client up does, for the dry run and the history."""
    return f"clients: the Zenvia contact with e-mail {email}, if one exists"


def _describe_conflict(conflict: Conflict) -> str:
    outcome = (
        f"{conflict.winner} wins" if conflict.winner else "parked until an operator resolves it"
    )
    return (
        f"conflict on {conflict.field}: crm={conflict.crm_value!r} "
        f"zenvia={conflict.zenvia_value!r} ({conflict.policy}): {outcome}"
    )
