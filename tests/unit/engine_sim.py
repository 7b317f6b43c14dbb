"""A tiny in-memory world for engine tests: two remotes holding one pair, people editing
them, and a service that applies plans the way the real one does.

- a create is idempotent by its key: the write-ahead intent finds what a lost attempt made,
  and that record is brought to the planned fields (the plan's baseline assumes them);
  the created id is stored on the link as soon as the create succeeded;
- a comment link is stored as soon as its comment was written;
- baselines, link state and found comment pairs are stored only after every write succeeded;
- `sync(crash_after=k)` stops after k writes, and `lose_ack=True` also performs write k
  remotely while its bookkeeping is lost (the response never arrived).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncworker import engine
from syncworker.engine import (
    AddComment,
    CommentPair,
    CreateRecord,
    LinkSnapshot,
    Operation,
    Plan,
    UpdateFields,
)
from syncworker.mapping import Mapping
from syncworker.model import SIDES, LinkState, NativeFields, RemoteComment, RemoteRecord, Side

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class FakeRemote:
    """One side's records and comments, as its API would hold them."""

    side: Side
    fields: dict[str, NativeFields] = field(default_factory=dict)
    versions: dict[str, datetime] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    comments: dict[str, list[RemoteComment]] = field(default_factory=dict)
    created_by_key: dict[str, str] = field(default_factory=dict)
    writes: int = 0

    def new_id(self) -> str:
        return f"{self.side}-{len(self.fields) + 1}"

    def record(self, record_id: str | None) -> RemoteRecord | None:
        if record_id is None or record_id not in self.fields:
            return None
        return RemoteRecord(
            record_id,
            self.versions[record_id],
            dict(self.fields[record_id]),
            deleted=record_id in self.deleted,
        )


@dataclass
class World:
    """One pair of records, the link between them, and a clock."""

    mapping: Mapping
    remotes: dict[Side, FakeRemote] = field(
        default_factory=lambda: {side: FakeRemote(side) for side in SIDES}
    )
    ids: dict[Side, str | None] = field(default_factory=lambda: {"crm": None, "zenvia": None})
    link: LinkSnapshot | None = None
    comment_links: list[CommentPair] = field(default_factory=list)
    resolutions: dict[str, Side] = field(default_factory=dict)
    edited_since_sync: set[tuple[Side, str]] = field(default_factory=set)
    clock: int = 0

    def tick(self) -> datetime:
        """Versions have whole-second resolution, so two events may share one (a tie)."""
        self.clock += 1
        return EPOCH + timedelta(seconds=self.clock // 2)

    # -- people ---------------------------------------------------------------------------

    def open_record(self, side: Side, fields: NativeFields) -> str:
        remote = self.remotes[side]
        record_id = remote.new_id()
        remote.fields[record_id] = dict(fields)
        remote.versions[record_id] = self.tick()
        remote.comments[record_id] = []
        self.ids[side] = record_id
        self.edited_since_sync.update((side, name) for name in fields)
        return record_id

    def edit(self, side: Side, native: str, value: Any) -> None:
        record_id = self.ids[side]
        remote = self.remotes[side]
        if record_id is None or record_id in remote.deleted:
            return
        remote.fields[record_id][native] = value
        remote.versions[record_id] = self.tick()
        self.edited_since_sync.add((side, native))

    def comment(self, side: Side, body: str, *, public: bool = True) -> str | None:
        record_id = self.ids[side]
        if record_id is None or record_id in self.remotes[side].deleted:
            return None
        return self._write_comment(side, record_id, body, public=public, author=f"{side}-person")

    def delete(self, side: Side) -> None:
        record_id = self.ids[side]
        if record_id is not None:
            self.remotes[side].deleted.add(record_id)

    # -- reading --------------------------------------------------------------------------

    def record(self, side: Side) -> RemoteRecord | None:
        return self.remotes[side].record(self.ids[side])

    def value(self, side: Side, native: str) -> Any:
        record = self.record(side)
        return record.fields.get(native) if record else None

    def comments_on(self, side: Side) -> list[RemoteComment]:
        record_id = self.ids[side]
        return list(self.remotes[side].comments.get(record_id or "", []))

    def total_writes(self) -> int:
        return sum(remote.writes for remote in self.remotes.values())

    # -- the service ----------------------------------------------------------------------

    def plan(self) -> Plan:
        return engine.plan(
            self.mapping,
            link=self.link,
            crm=self.record("crm"),
            zenvia=self.record("zenvia"),
            crm_comments=self.comments_on("crm"),
            zenvia_comments=self.comments_on("zenvia"),
            comment_links=tuple(self.comment_links),
            resolutions=dict(self.resolutions),
        )

    def sync(self, *, crash_after: int | None = None, lose_ack: bool = False) -> Plan:
        """Plan and apply; a crash leaves whatever was written and stores nothing else."""
        plan = self.plan()
        for index, operation in enumerate(plan.operations):
            if crash_after is not None and index >= crash_after:
                if lose_ack:
                    self._apply(operation, bookkeeping=False)
                return plan
            self._apply(operation, bookkeeping=True)
        self._commit(plan)
        return plan

    def _apply(self, operation: Operation, *, bookkeeping: bool) -> None:
        if isinstance(operation, CreateRecord):
            record_id = self._create(operation)
            if bookkeeping:
                self.ids[operation.side] = record_id
                self.link = self._link_with(operation.side, record_id)
        elif isinstance(operation, UpdateFields):
            remote = self.remotes[operation.side]
            remote.fields[operation.record_id].update(operation.changes)
            remote.versions[operation.record_id] = self.tick()
            remote.writes += len(operation.changes)
        else:
            self._add_comment(operation, bookkeeping=bookkeeping)

    def _create(self, operation: CreateRecord) -> str:
        remote = self.remotes[operation.side]
        existing = remote.created_by_key.get(operation.idempotency_key)
        if existing is not None:
            current = remote.fields[existing]
            stale = {k: v for k, v in operation.fields.items() if current.get(k) != v}
            if stale:
                current.update(stale)
                remote.versions[existing] = self.tick()
                remote.writes += len(stale)
            return existing
        record_id = remote.new_id()
        remote.fields[record_id] = dict(operation.fields)
        remote.versions[record_id] = self.tick()
        remote.comments[record_id] = []
        remote.created_by_key[operation.idempotency_key] = record_id
        remote.writes += 1
        return record_id

    def _add_comment(self, operation: AddComment, *, bookkeeping: bool) -> None:
        record_id = operation.record_id or self.ids[operation.side]
        assert record_id is not None, "a comment on a record nobody created"
        written = self._write_comment(
            operation.side, record_id, operation.body, public=operation.public, author="sync"
        )
        self.remotes[operation.side].writes += 1
        pair = operation.pair(written)
        if bookkeeping and pair is not None:
            self.comment_links.append(pair)

    def _write_comment(
        self, side: Side, record_id: str, body: str, *, public: bool, author: str
    ) -> str:
        comments = self.remotes[side].comments[record_id]
        comment_id = f"{record_id}/c{len(comments) + 1}"
        comments.append(RemoteComment(comment_id, record_id, body, public, self.tick(), author))
        return comment_id

    def _link_with(self, side: Side, record_id: str) -> LinkSnapshot:
        link = self.link or LinkSnapshot(self.ids["crm"], self.ids["zenvia"])
        if side == "crm":
            return dataclasses.replace(link, crm_id=record_id)
        return dataclasses.replace(link, zenvia_id=record_id)

    def _commit(self, plan: Plan) -> None:
        if self.link is None and not all(self.ids.values()):
            return  # nothing was created (out of scope): the service makes no link
        self.link = dataclasses.replace(
            self.link or LinkSnapshot(self.ids["crm"], self.ids["zenvia"]),
            crm_baseline=plan.crm_baseline,
            zenvia_baseline=plan.zenvia_baseline,
            state=plan.link_state,
        )
        self.comment_links.extend(plan.comment_pairs)
        for name in plan.resolved_fields:
            self.resolutions.pop(name, None)
        self.edited_since_sync.clear()

    @property
    def state(self) -> LinkState | None:
        return self.link.state if self.link else None
