"""A tiny in-memory world for engine tests: two remotes holding one pair, people editing
them, and a service that applies plans with the service's own bookkeeping rules
(`syncworker.bookkeeping`):

- a create is idempotent by its key: a create whose reply was lost is found again and its
  record adopted with the baselines that create planned, and the pair is planned again as a
  merge (the service's `_Adopted` retry); the created id is stored on the link as soon as
  the create succeeded;
- each update is recorded before it is sent (`bookkeeping.write_in_flight`) and, once it
  landed, folded into both baselines at once, unless it is the plan's last write (the commit
  follows); a plan folds what its records hold of the write in flight
  (`bookkeeping.fold_in_flight`);
- a comment link is stored as soon as its comment was written;
- the plan's baselines, link state and found comment pairs are stored once every write
  succeeded;
- `sync(crash_after=k)` stops after k writes, and `lose_ack=True` also performs write k
  remotely while its bookkeeping is lost (the worker died before the response arrived);
  `sync(database_lost=True)` records and sends the plan's first write, if an update, and
  then the database is gone: nothing folded, nothing else sent, nothing committed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncworker import bookkeeping, engine
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
    edited_since_run: set[tuple[Side, str]] = field(default_factory=set)
    written_by_run: set[tuple[Side, str]] = field(default_factory=set)  # before its last write
    # the baselines each create planned, by its key: the service's write-ahead intents
    create_intents: dict[str, dict[Side, NativeFields | None]] = field(default_factory=dict)
    in_flight: dict[str, Any] | None = None  # the link's record of the update being sent
    value_read: dict[Side, NativeFields] = field(default_factory=dict)  # as the last run read
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
        self.edited_since_run.add((side, native))

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
        link = self.link
        if link is not None:
            baselines = bookkeeping.fold_in_flight(
                self.mapping,
                {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
                self.in_flight,
                {side: record.fields if (record := self.record(side)) else None for side in SIDES},
            )
            link = dataclasses.replace(
                link, crm_baseline=baselines["crm"], zenvia_baseline=baselines["zenvia"]
            )
        return engine.plan(
            self.mapping,
            link=link,
            crm=self.record("crm"),
            zenvia=self.record("zenvia"),
            crm_comments=self.comments_on("crm"),
            zenvia_comments=self.comments_on("zenvia"),
            comment_links=tuple(self.comment_links),
            resolutions=dict(self.resolutions),
        )

    def sync(
        self, *, crash_after: int | None = None, lose_ack: bool = False, database_lost: bool = False
    ) -> Plan:
        """Plan and apply; a crash leaves whatever was written and what was folded on the way.
        A create found made by an earlier attempt is adopted and the pair planned again."""
        plan = self.plan()
        self.value_read = {
            side: dict(record.fields) if (record := self.record(side)) else {} for side in SIDES
        }
        self.edited_since_run.clear()
        self.written_by_run.clear()
        if database_lost:
            self._send_first_update_unrecorded(plan)
            return plan
        last = len(plan.operations) - 1
        for index, operation in enumerate(plan.operations):
            if crash_after is not None and index >= crash_after:
                if lose_ack:
                    self._apply(plan, operation, bookkeeping=False, final=index == last)
                return plan
            if not self._apply(plan, operation, bookkeeping=True, final=index == last):
                return self.sync()
        self._commit(plan)
        return plan

    def _apply(self, plan: Plan, operation: Operation, *, bookkeeping: bool, final: bool) -> bool:
        """Write one operation; False when it adopted a record instead (plan again)."""
        if isinstance(operation, CreateRecord):
            found = self.remotes[operation.side].created_by_key.get(operation.idempotency_key)
            if found is not None:
                self._link_created(operation.side, found, operation.idempotency_key)
                return False
            record_id = self._create(plan, operation)
            if bookkeeping:
                self._link_created(operation.side, record_id, operation.idempotency_key)
        elif isinstance(operation, UpdateFields):
            self._record_in_flight(plan, operation)
            self._send_update(operation)
            if bookkeeping and not final:
                self.written_by_run.update((operation.side, native) for native in operation.changes)
                self._fold(plan, operation.side, operation.changes)
        else:
            self._add_comment(operation, bookkeeping=bookkeeping)
        return True

    def _send_first_update_unrecorded(self, plan: Plan) -> None:
        """The plan's first write, if an update, is recorded and sent; then the database is
        gone: its fold is lost and the next write's record (or intent) cannot be stored, so
        nothing else is sent."""
        operation = plan.operations[0] if plan.operations else None
        if isinstance(operation, UpdateFields):
            self._record_in_flight(plan, operation)
            self._send_update(operation)
            self.written_by_run.update((operation.side, native) for native in operation.changes)

    def _record_in_flight(self, plan: Plan, operation: UpdateFields) -> None:
        if self.link is None or None in (self.link.crm_baseline, self.link.zenvia_baseline):
            return
        read = self.value_read[operation.side]
        self.in_flight = bookkeeping.write_in_flight(
            {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
            operation.side,
            operation.changes,
            read,
        )

    def _send_update(self, operation: UpdateFields) -> None:
        remote = self.remotes[operation.side]
        remote.fields[operation.record_id].update(operation.changes)
        remote.versions[operation.record_id] = self.tick()
        remote.writes += len(operation.changes)

    def _fold(self, plan: Plan, target: Side, written: NativeFields) -> None:
        if self.link is None:
            return
        new = bookkeeping.fold_written(
            self.mapping,
            {"crm": self.link.crm_baseline, "zenvia": self.link.zenvia_baseline},
            {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
            target,
            written,
        )
        if new is not None:
            self.link = dataclasses.replace(
                self.link, crm_baseline=new["crm"], zenvia_baseline=new["zenvia"]
            )

    def _link_created(self, side: Side, record_id: str, key: str) -> None:
        """Link a record our create made, with the baselines that create planned when the
        link has none, whether its reply came back (`sync.intents.create`) or was lost and
        the record found (`sync.link.adopt`)."""
        self.ids[side] = record_id
        link = self._link_with(side, record_id)
        baselines = bookkeeping.adopted_baselines(
            {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
            self.create_intents.get(key),
        )
        if baselines is not None:
            link = dataclasses.replace(
                link, crm_baseline=baselines["crm"], zenvia_baseline=baselines["zenvia"]
            )
        self.link = link

    def _create(self, plan: Plan, operation: CreateRecord) -> str:
        remote = self.remotes[operation.side]
        self.create_intents[operation.idempotency_key] = {
            "crm": plan.crm_baseline,
            "zenvia": plan.zenvia_baseline,
        }
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
        self.in_flight = None
        self.comment_links.extend(plan.comment_pairs)
        for name in plan.resolved_fields:
            self.resolutions.pop(name, None)
        self.edited_since_sync.clear()

    @property
    def state(self) -> LinkState | None:
        return self.link.state if self.link else None
