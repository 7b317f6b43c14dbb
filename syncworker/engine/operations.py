"""What a plan is: the operations it writes, in order, the conflicts it settled or parked, the
baselines and link state they lead to, and how the service applies it (`Plan`); each reads
as one line for a dry run (`Plan.describe`). Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncworker.mapping import Policy
from syncworker.model import LinkState, NativeFields, Side, other_side


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
        return comment_pair(other_side(self.side), self.source_comment_id, written_comment_id)


def comment_pair(source: Side, source_comment_id: str, copy_id: str) -> CommentPair:
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
