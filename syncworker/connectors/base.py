"""What every connector speaks: remote records, comments, the request gate, the protocol.

Connectors return *native* field values (flattened to JSON-safe scalars/lists) so that the
mapping layer, not the connector, decides what they mean. Every connector takes an injected
`httpx.Client` (the one I/O seam) and a `RequestGate` consulted before every request.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import httpx

from syncworker.connectors.errors import MalformedResponseError
from syncworker.model import NativeFields, RemoteComment, RemoteRecord, Side

__all__ = [
    "Connector",
    "CrmConnector",
    "Listed",
    "ListingPage",
    "NativeFields",
    "OpenGate",
    "RemoteComment",
    "RemoteRecord",
    "RequestCounter",
    "RequestGate",
    "Side",
    "Unreadable",
]


@dataclass(frozen=True)
class Unreadable:
    """A listed record whose payload could not be read. A listing names it and goes on, so the
    one bad record is parked (a dead letter) instead of stopping every other record's sync."""

    id: str
    error: MalformedResponseError


Listed = RemoteRecord | Unreadable


@dataclass(frozen=True)
class ListingPage:
    """One page of a poll's listing, and where a poll that stops after it resumes (a JSON-able
    position; None once the listing has ended or when its order lets the cursor resume it)."""

    records: list[Listed]
    resume: dict[str, Any] | None = None


class RequestGate(Protocol):
    """Consulted around every remote request: the shared rate budget lives behind it.

    `before_request` must never sleep: when no budget is left it raises `RateLimitedError`
    with the wait, so the task can be retried with a countdown instead of holding a worker.
    """

    def before_request(self, endpoint: str) -> None: ...

    def after_response(self, endpoint: str, response: httpx.Response) -> None: ...


class OpenGate:
    """A gate that never limits: for tests of a connector alone and for the sandbox CLI."""

    def before_request(self, endpoint: str) -> None:
        return None

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        return None


@dataclass
class RequestCounter:
    """Requests sent per endpoint label (e.g. `PATCH /tickets/{id}/attributes/status`)."""

    by_endpoint: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, endpoint: str) -> None:
        self.by_endpoint[endpoint] += 1

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())


class Connector(Protocol):
    """The operations the sync service needs from either side."""

    side: Side
    system: str
    requests: RequestCounter
    # The remote's stamps are cut to this: changes within it may share one stamp.
    stamp_precision: timedelta
    # How long a change may take to show in listings (a poll trusts only what is older).
    listing_lag: timedelta

    # Whether `changed_pages` lists in ascending (version, id) order: then a poll's cursor
    # follows the records, else it moves only when a whole listing has been read.
    listing_ordered: bool

    def changed_since(self, since: datetime) -> Iterator[Listed]:
        """Records whose own version (or whose comments) changed at or after `since`,
        in ascending (version, id) order; unreadable ones may come in any position."""
        ...

    def changed_pages(
        self, since: datetime, resume: Mapping[str, Any] | None = None
    ) -> Iterator[ListingPage]:
        """What `changed_since` finds, a page at a time as the remote serves it (what a poll
        observes before the next request); `resume` is a page's position, to go on from it."""
        ...

    def iter_all(self) -> Iterator[Listed]:
        """Every record, streamed page by page (for the full reconcile)."""
        ...

    def get(self, record_id: str) -> RemoteRecord:
        """Raises NotFoundError when the record cannot be read (not proof that it is gone)."""
        ...

    def confirm_deleted(self, record_id: str) -> bool:
        """True only when the remote itself says the record was deleted. A 404 alone proves
        nothing (permissions, a merge, a transient fault): False means "cannot tell"."""
        ...

    def changed_at(self, fields: NativeFields) -> datetime | None:
        """When a record holding these native fields last had its own fields changed (comments
        excluded), as the remote stamps it; None when the payload does not say."""
        ...

    def create(
        self, fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord:
        """Create a record carrying `idempotency_key` so `find_created` can recognise it.

        A RateLimitedError means nothing was created (the caller counts the attempt unsent);
        a refusal after the write landed is a TransientError.
        """
        ...

    def find_created(
        self, idempotency_key: str, *, around: datetime, attempts: Sequence[datetime] = ()
    ) -> RemoteRecord | None:
        """Look up a record an earlier `create` with this key may have made; `around` is when
        the intent began, `attempts` when each send that may have reached the remote began."""
        ...

    def update(
        self,
        record_id: str,
        changes: NativeFields,
        *,
        landed: Callable[[NativeFields], None] | None = None,
    ) -> None:
        """Write only `changes` (Zenvia: one PATCH per attribute). `landed` hears the fields of
        each request the remote accepted, so a failure halfway still tells which values it
        now holds."""
        ...

    def requests_to_update(self, changes: NativeFields) -> int:
        """The write requests `update` sends for `changes` (what a plan's budget holds)."""
        ...

    def list_comments(self, record_id: str) -> list[RemoteComment]: ...

    def add_comment(self, record_id: str, body: str, *, public: bool) -> str:
        """Add a comment with exactly `body` (no marker: people read it); its new id.

        One request, the write itself: a RateLimitedError therefore means nothing was added,
        which is what lets the caller count that attempt as unsent.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class CrmConnector(Connector, Protocol):
    """The CRM side's connector: a `Connector` whose records also name the ticket each one is
    paired with. The sync notes a ticket on its case as soon as it links one it created or
    adopted, and reads the note to recognise a case its own create made whose link was never
    committed. (The ticket side's connector has no such note: a ticket we created carries
    the create's marker in its first action instead.)"""

    def note_ticket(self, record_id: str, ticket_id: str) -> None:
        """Write `ticket_id` on the record as the ticket it is paired with (one update)."""
        ...

    def noted_ticket(self, record: RemoteRecord) -> str | None:
        """The ticket id noted on `record` as it was read (no request); None when it has none."""
        ...
