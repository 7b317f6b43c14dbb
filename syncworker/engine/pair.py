"""The inputs of one plan (`Pair`), with the questions every kind of plan asks of them and
of the mapping. Pure."""

from __future__ import annotations

import collections.abc as abc
from dataclasses import dataclass

from syncworker.engine.operations import CommentPair, LinkSnapshot, Plan
from syncworker.engine.texts import is_copy_of
from syncworker.mapping import Mapping
from syncworker.model import BaseStatus, LinkState, NativeFields, RemoteComment, RemoteRecord, Side

_NOUNS = {"crm": "case", "zenvia": "ticket"}


@dataclass(frozen=True)
class Pair:
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


def required(record: RemoteRecord | None) -> RemoteRecord:
    assert record is not None
    return record


def with_justification(mapping: Mapping, side: Side, changes: NativeFields) -> NativeFields:
    return mapping.with_justification(changes) if side == "zenvia" else changes


def is_canceled(mapping: Mapping, zenvia_fields: NativeFields) -> bool:
    status = zenvia_fields.get(mapping.status_native("zenvia") or "")
    return mapping.status_base("zenvia", status) is BaseStatus.CANCELED
