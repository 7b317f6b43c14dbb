"""SQLModel tables. The schema exists only through Alembic migrations built from these."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from syncworker.model import LinkState
from syncworker.store.types import JSONDocument, UTCDateTime, utcnow


class IntentStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_type=UTCDateTime,
        nullable=nullable,
        index=index,
    )


def _link_fk(*, nullable: bool) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=nullable, index=True
        ),
    )


class Link(SQLModel, table=True):
    """One CRM case ↔ one Zenvia ticket, with what each side looked like after the last sync."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("crm_system", "crm_id", name="uq_links_crm_record"),
        UniqueConstraint("zenvia_id", name="uq_links_zenvia_ticket"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm_system: str = Field(max_length=32)
    crm_id: str | None = Field(default=None, max_length=64)
    zenvia_id: str | None = Field(default=None, max_length=64)
    crm_baseline: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    zenvia_baseline: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    crm_version: datetime | None = _ts(nullable=True)
    zenvia_version: datetime | None = _ts(nullable=True)
    state: str = Field(default=LinkState.ACTIVE, max_length=16, index=True)
    state_reason: str | None = Field(default=None)
    conflict_fields: list[str] = Field(default_factory=list, sa_type=JSONDocument)
    revision: int = Field(default=0, description="bumped on every commit; fences stale writers")
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    last_synced_at: datetime | None = _ts(nullable=True)
    # the update being sent, recorded before it goes (`bookkeeping.write_in_flight`); cleared
    # by the commit, or once a read after a lost reply tells what landed
    write_in_flight: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    # when the comment sweep lists the ticket's actions again; None: not swept (no ticket, or
    # closed, or the account's actions move updatedAt)
    comments_due_at: datetime | None = _ts(nullable=True, index=True)


class Cursor(SQLModel, table=True):
    """How far polling of one side has durably got: watermark plus the last id at it, and,
    while a pass over an unordered listing is under way, where it goes on (`listing`: the
    pass's `since` and start, and the connector's position after its last page read)."""

    __tablename__ = "cursors"

    side: str = Field(primary_key=True, max_length=16)
    watermark: datetime = _ts()
    last_id: str = Field(default="", max_length=64)
    listing: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    updated_at: datetime = _ts()


class Intent(SQLModel, table=True):
    """Write-ahead log of remote creates: committed before the create, resolved after."""

    __tablename__ = "intents"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=64, unique=True)
    link_id: int | None = _link_fk(nullable=True)
    side: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    source_id: str = Field(max_length=64)
    status: str = Field(default=IntentStatus.PENDING, max_length=16, index=True)
    attempts: int = Field(default=0)
    remote_id: str | None = Field(default=None, max_length=64)
    # A create's planned baselines as of its last send ({"crm": …, "zenvia": …}): a record found
    # after a lost reply is linked with them, so its first merge is three-way, not a guess.
    baselines: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)
    # When each send that may have reached the remote began (ISO 8601, oldest first): a lost
    # create is looked for around every one of them, not only around the first.
    attempt_times: list[str] | None = Field(default=None, sa_type=JSONDocument)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Observation(SQLModel, table=True):
    """The newest version of a remote record we have seen, and whether a sync is queued for it."""

    __tablename__ = "observations"

    side: str = Field(primary_key=True, max_length=16)
    remote_id: str = Field(primary_key=True, max_length=64)
    version: datetime = _ts()
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDocument)
    deleted: bool = Field(default=False)
    observed_at: datetime = _ts()
    synced_version: datetime | None = _ts(nullable=True)
    sync_queued_at: datetime | None = _ts(nullable=True, index=True)


class CommentLink(SQLModel, table=True):
    """One comment copied across: the CRM comment and the Zenvia action that are the same."""

    __tablename__ = "comment_links"
    __table_args__ = (
        UniqueConstraint("crm_comment_id", name="uq_comment_links_crm"),
        UniqueConstraint("zenvia_comment_id", name="uq_comment_links_zenvia"),
    )

    id: int | None = Field(default=None, primary_key=True)
    link_id: int | None = _link_fk(nullable=False)
    crm_comment_id: str = Field(max_length=64)
    zenvia_comment_id: str = Field(max_length=64)
    origin: str = Field(max_length=16)
    created_at: datetime = _ts()


class DeadLetter(SQLModel, table=True):
    """An operation that failed permanently (or ran out of retries), kept for an operator."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("side", "record_id", "operation", name="uq_dead_letters_operation"),
    )

    id: int | None = Field(default=None, primary_key=True)
    link_id: int | None = _link_fk(nullable=True)
    side: str = Field(max_length=16)
    record_id: str = Field(max_length=64)
    operation: str = Field(max_length=64)
    error_class: str = Field(max_length=64)
    remote_status: int | None = Field(default=None)
    remote_code: str | None = Field(default=None, max_length=64)
    message: str
    details: list[str] = Field(default_factory=list, sa_type=JSONDocument)
    attempts: int = Field(default=1)
    status: str = Field(default=DeadLetterStatus.OPEN, max_length=16, index=True)
    first_seen: datetime = _ts()
    last_seen: datetime = _ts()
    replayed_at: datetime | None = _ts(nullable=True)


class SyncRun(SQLModel, table=True):
    """One poll, reconcile or resync pass: when it ran, how far it got, what it counted."""

    __tablename__ = "sync_runs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    side: str | None = Field(default=None, max_length=16)
    started_at: datetime = _ts(index=True)
    finished_at: datetime | None = _ts(nullable=True)
    complete: bool = Field(default=False)
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSONDocument)
    error: str | None = Field(default=None)


class HistoryEntry(SQLModel, table=True):
    """One thing a sync or a failure did to a pair, kept for `links history` until retention
    prunes it. Appended in the transaction that commits (or dead-letters) the pair."""

    __tablename__ = "link_history"
    __table_args__ = (Index("ix_link_history_link_id_id", "link_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    )
    at: datetime = _ts(index=True)
    kind: str = Field(max_length=16)
    side: str | None = Field(default=None, max_length=16)
    record_id: str | None = Field(default=None, max_length=64)
    field: str | None = Field(default=None, max_length=128)
    old: Any = Field(default=None, sa_type=JSONDocument, nullable=True)
    new: Any = Field(default=None, sa_type=JSONDocument, nullable=True)
    detail: str = Field(default="")
