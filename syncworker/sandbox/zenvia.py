"""A faithful local Zenvia Customer Cloud v2 tickets API (see reference/zenvia-tickets-api.md),
with the Contacts API's listing that finds a customer by e-mail.

Serve it with `SandboxServer(ZenviaSandbox(token=...)).start()`; tests act "as a human agent"
through `sandbox.agent`, which runs the very same route handlers as HTTP requests do.

Where the public documentation is silent the sandbox plays the harshest plausible answer by
default, behind a named constructor switch (the table in docs/real-apis.md lists each one):
- `action_moves_updated_at=False`: a new action (comment) or tag leaves `updatedAt` alone; a
  status carried by an action is an edit and does move it.
- `null_updated_at=True`: a never-edited ticket has `updatedAt: null`, so it matches no
  `updatedAt` date filter (False: `updatedAt` starts equal to `createdAt`).
- `lockout=True`: 3 failed requests (any answer >= 400 except 429, a refused token included)
  within `lockout_window` seconds from one token lock that token out: every request gets 429
  "Too many failed requests" with `Retry-After` for `lockout_seconds` (60, 120, then 300 s on
  each repeat; never forgiven while the sandbox lives). Time is the sandbox's `clock`.
- `dependent_lookups=True`: a category must belong to the ticket's service and type, an urgency
  to its category; setting a child that does not fit is refused, changing a parent clears a
  child that no longer fits (so PATCH order matters: type, service, category, urgency).
- `closed_is_final=True`: a CLOSED ticket refuses every edit (attributes, tags, actions) except
  a status change (PATCH or action) that reopens it.
- `listing_order="shuffle"`: listings (tickets and actions) come in a stable pseudo-random
  order; also `"id"` (ascending) and `"updated_desc"` (newest `updatedAt` first).
- `listing_lag_seconds=2.0`: date-filtered listings see a ticket as it was that many seconds
  ago (a new ticket is absent, a changed one still matches its old `updatedAt`).
- `clients_required=True`: a ticket is created only with at least one client.
- `contacts_are_clients=False`: `GET /v2/contacts` (the Contacts API, filtered by
  `channels.email`, exact and ignoring letter case; 0-based `page`, `size`, `x-total`) shows
  each catalogue contact under an id of its own, which a ticket does not take as a client
  (True: the contact's id is its client id).
- `signature_secret=None`: given, the token is a signature-mode token and every request must
  carry a valid `X-API-Signature` (HMAC-SHA256 as the spec's description defines it).
- `subject_max_length=350`: v1's documented limit; v2 states none (None: no limit).
- Date filters (`createdAt`, `updatedAt`) match the calendar DATE in `filter_timezone`:
  "on that date" (`date_filter="on"`) or "on or after" (`"since"`).
- `ownerId: null` is refused (the spec marks it not nullable); only the agent desk can make a
  team-owned ticket (`ownerTeam` set, `ownerId` null), as Zenvia's UI and assignment rules do.
- Action ids are numbered per ticket (1 = the `firstAction` given at creation); a PATCH that
  sets an attribute to the value it already has changes nothing.
- A justification is required (and must be one of the allowed ones) exactly when the target
  status has allowed justifications; a justification sent for any other status is refused.
- Read-only and unknown body fields are ignored; `type` defaults to PUBLIC.
"""

from __future__ import annotations

import bisect
import copy
import email.utils
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from syncworker.connectors.zenvia_signature import signature
from syncworker.sandbox.server import (
    Clock,
    Handler,
    HttpError,
    Request,
    Response,
    SandboxApp,
    utc_now,
)
from syncworker.sandbox.zenvia_catalogue import (
    DEFAULT_CATALOGUE,
    Agent,
    Category,
    Contact,
    Named,
    Status,
    Urgency,
    ZenviaCatalogue,
)

__all__ = ["ZenviaAgentDesk", "ZenviaSandbox", "iso_millis"]

API_ORIGIN = "TICKETS_API"
AGENT_ORIGIN = "AGENT_IN_SYSTEM"
TICKET_TYPES = ("INTERNAL", "PUBLIC")
V1_SUBJECT_MAX = 350
SIGNATURE_MAX_AGE = timedelta(minutes=3)
ListingOrder = Literal["id", "updated_desc", "shuffle"]
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
LOOKUP_ATTRIBUTES = ("category", "urgency", "service")
# Contacts API ids when they are not client ids: a stable uuid per client, as the spec's ids look
_CONTACT_IDS = uuid.UUID("6f1d3c2e-5a4b-4e8f-9c7d-2b1a0e9f8d7c")

_T = TypeVar("_T")


def iso_millis(moment: datetime) -> str:
    """`2022-05-23T19:37:59.000Z`, the way Zenvia renders timestamps."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Problems:
    """Collects validation failures so one 400 reports all of them."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, path: str, code: str, message: str) -> None:
        self.details.append({"code": code, "path": path, "message": message})

    def raise_if_any(self) -> None:
        if self.details:
            first = self.details[0]
            raise HttpError(
                400,
                "VALIDATION_ERROR",
                f"Invalid request: {first['message']}",
                self.details,
            )


@dataclass
class _Action:
    id: int
    type: str
    origin: str
    description: str
    created_at: datetime
    created_by: str | None
    status: Status | None = None
    justification: Named | None = None

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "origin": self.origin,
            "description": self.description,
            "createdAt": iso_millis(self.created_at),
            "createdById": self.created_by,
        }
        if self.status is not None:
            rendered["status"] = self.status.render()
            rendered["justification"] = self.justification.render() if self.justification else None
        return rendered


@dataclass
class _StatusChange:
    status: Status
    justification: Named | None
    updated_by: str | None
    updated_at: datetime


@dataclass
class _OwnerChange:
    owner: Agent | None
    team: Named | None
    updated_by: str | None
    updated_at: datetime


@dataclass
class _Ticket:
    id: str
    subject: str
    type: str
    origin: str
    status: Status
    justification: Named | None
    created_at: datetime
    updated_at: datetime | None
    created_by: str | None
    cc: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    owner: Agent | None = None
    owner_team: Named | None = None
    category: Category | None = None
    urgency: Urgency | None = None
    service: Named | None = None
    resolved_at: datetime | None = None
    reopened_at: datetime | None = None
    closed_at: datetime | None = None
    solution_at: datetime | None = None
    actions: list[_Action] = field(default_factory=list)
    status_changes: list[_StatusChange] = field(default_factory=list)
    owner_changes: list[_OwnerChange] = field(default_factory=list)
    tags: list[Named] = field(default_factory=list)
    # (when, updatedAt from then on): what a lagging date listing still sees
    history: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    shuffle_key: bytes = b""  # its place in the stable shuffle, computed once

    def render(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return iso_millis(moment) if moment else None

        def named(item: Named | None) -> dict[str, object] | None:
            return item.render() if item else None

        return {
            "id": self.id,
            "subject": self.subject,
            "type": self.type,
            "cc": list(self.cc),
            "origin": self.origin,
            "clients": list(self.clients),
            "ownerId": self.owner.id if self.owner else None,
            "ownerTeam": named(self.owner_team),
            "category": named(self.category),
            "urgency": named(self.urgency),
            "service": named(self.service),
            "justification": named(self.justification),
            "status": self.status.render(),
            "createdAt": when(self.created_at),
            "updatedAt": when(self.updated_at),
            "resolvedAt": when(self.resolved_at),
            "reopenedAt": when(self.reopened_at),
            "closedAt": when(self.closed_at),
            "createdById": self.created_by,
            "solutionTime": None,
            "responseTime": None,
            "solutionAt": when(self.solution_at),
            "responseAt": None,
            "realResponseAt": None,
            "agreement": None,
        }


_CLOSED_TYPES = frozenset({"RESOLVED", "CLOSED", "CANCELED"})


class _LockedOut(HttpError):
    """The failed-request lockout's answer: 429 with the seconds left in `Retry-After`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "TOO_MANY_REQUESTS", "Too many failed requests")
        self.retry_after = retry_after


@dataclass
class _Lockout:
    """One token's recent failures and its current lockout."""

    failures: list[datetime] = field(default_factory=list)
    until: datetime | None = None
    strikes: int = 0


class ZenviaSandbox(SandboxApp):
    """Zenvia v2 tickets (`/v2/tickets…`) and the Contacts API's listing (`/v2/contacts`), with
    `X-API-TOKEN` auth and Zenvia's error bodies."""

    name = "zenvia"

    def __init__(
        self,
        *,
        token: str,
        seed: int = 0,
        clock: Clock = utc_now,
        catalogue: ZenviaCatalogue | None = None,
        filter_timezone: tzinfo = UTC,
        date_filter: Literal["on", "since"] = "on",
        action_moves_updated_at: bool = False,
        null_updated_at: bool = True,
        lockout: bool = True,
        lockout_after: int = 3,
        lockout_window: float = 60.0,
        lockout_seconds: Sequence[int] = (60, 120, 300),
        dependent_lookups: bool = True,
        closed_is_final: bool = True,
        listing_order: ListingOrder = "shuffle",
        listing_lag_seconds: float = 2.0,
        clients_required: bool = True,
        contacts_are_clients: bool = False,
        signature_secret: str | None = None,
        subject_max_length: int | None = V1_SUBJECT_MAX,
    ) -> None:
        super().__init__(seed=seed, clock=clock)
        if not token:
            raise ValueError("the Zenvia sandbox needs a non-empty token")
        if lockout_after < 1 or not lockout_seconds or min(lockout_seconds) < 1:
            raise ValueError("lockout_after and every lockout_seconds must be at least 1")
        if listing_order not in ("id", "updated_desc", "shuffle"):
            raise ValueError(
                f"listing_order must be id, updated_desc or shuffle: {listing_order!r}"
            )
        if listing_lag_seconds < 0:
            raise ValueError("listing_lag_seconds cannot be negative")
        if signature_secret == "":
            raise ValueError("signature_secret is empty; pass None for a plain token")
        self._token = token.encode()
        self.catalogue = catalogue or DEFAULT_CATALOGUE
        self.filter_timezone = filter_timezone
        self.date_filter = date_filter
        self.action_moves_updated_at = action_moves_updated_at
        self.null_updated_at = null_updated_at
        self.lockout = lockout
        self.lockout_after = lockout_after
        self.lockout_window = timedelta(seconds=lockout_window)
        self.lockout_seconds = tuple(lockout_seconds)
        self.dependent_lookups = dependent_lookups
        self.closed_is_final = closed_is_final
        self.listing_order: ListingOrder = listing_order
        self.listing_lag = timedelta(seconds=listing_lag_seconds)
        self.clients_required = clients_required
        self.contacts_are_clients = contacts_are_clients
        self.signature_secret = signature_secret
        self.subject_max_length = subject_max_length
        self._lockouts: dict[str, _Lockout] = {}
        self.lockout_refusals = 0  # requests answered "Too many failed requests" (read-only)
        self._tickets: dict[str, _Ticket] = {}
        self._in_order: list[_Ticket] = []  # by id: ids are sequential and never reused
        self._shuffled: list[_Ticket] = []  # the same tickets in the stable shuffle's order
        self._next_id = 1
        self._random = random.Random(seed)
        self._actor: str | None = None
        self._register()

    def __repr__(self) -> str:
        return f"ZenviaSandbox(tickets={len(self._tickets)}, token='***')"

    # -- wiring -----------------------------------------------------------------------------

    def _register(self) -> None:
        t = "/v2/tickets/{ticket_id}"
        self.route("GET", "/v2/tickets", self._list_tickets)
        self.route("POST", "/v2/tickets", self._create_ticket)
        self.route("GET", t, self._get_ticket)
        self.route("GET", f"{t}/actions", self._list_actions)
        self.route("POST", f"{t}/actions", self._add_action)
        self.route("GET", f"{t}/status-changes", self._status_changes)
        self.route("GET", f"{t}/owner-changes", self._owner_changes)
        self.route("GET", f"{t}/tags", self._list_tags)
        self.route("POST", f"{t}/tags", self._add_tag)
        self.route("DELETE", f"{t}/tags/{{tag_id}}", self._remove_tag)
        for attr in _ATTRIBUTES:
            self.route("PATCH", f"{t}/attributes/{attr}", self._patcher(attr))
        self.route("GET", "/v2/contacts", self._list_contacts)

    # -- one-shot faults (tests) ------------------------------------------------------------

    def fail_next(
        self,
        label: str,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `label` with this Zenvia error, unhandled."""
        self.fail_next_with(label, HttpError(status, code, message, details), times=times)

    # -- SandboxApp hooks -------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        self._refuse_if_locked_out(request.headers.get("x-api-token", ""))
        given = request.headers.get("x-api-token", "").encode()
        if not given or not hmac.compare_digest(given, self._token):
            raise HttpError(401, "AUTHENTICATION_ERROR", "Missing or invalid X-API-TOKEN header")
        if self.signature_secret is not None:
            self._check_signature(request, self.signature_secret)

    def error_response(self, error: HttpError) -> Response:
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, _LockedOut) else {}
        return Response(
            error.status,
            {"code": error.code, "message": error.message, "details": list(error.details)},
            headers,
        )

    def decorate(self, request: Request, response: Response) -> None:
        """Count the failed requests the lockout is about (every answer sent goes through)."""
        if self.lockout and response.status >= 400 and response.status != 429:
            with self.lock:
                self._count_failure(request.headers.get("x-api-token", ""))

    def _refuse_if_locked_out(self, token: str) -> None:
        if not self.lockout:
            return
        with self.lock:
            state = self._lockouts.get(token)
            now = self._now()
            if state is not None and state.until is not None and now < state.until:
                left = (state.until - now).total_seconds()
                self.lockout_refusals += 1
                raise _LockedOut(max(1, int(left + 0.999)))

    def _count_failure(self, token: str) -> None:
        now = self._now()
        state = self._lockouts.setdefault(token, _Lockout())
        if state.until is not None and now < state.until:
            return
        state.failures = [t for t in state.failures if now - t < self.lockout_window] + [now]
        if len(state.failures) >= self.lockout_after:
            seconds = self.lockout_seconds[min(state.strikes, len(self.lockout_seconds) - 1)]
            state.until, state.failures = now + timedelta(seconds=seconds), []
            state.strikes += 1

    def _check_signature(self, request: Request, secret: str) -> None:
        """`X-API-Signature` as the spec's description defines it (six lines, base64 HMAC)."""
        given = request.headers.get("x-api-signature", "")
        stamp = request.headers.get("date", "")
        if not given or not stamp:
            raise HttpError(
                401,
                "AUTHENTICATION_ERROR",
                "This token requires a signature: send X-API-Signature and Date headers",
            )
        try:
            sent = email.utils.parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            sent = None
        now = self._now()
        if sent is None or sent.tzinfo is None or not now - SIGNATURE_MAX_AGE <= sent <= now:
            raise HttpError(
                401, "AUTHENTICATION_ERROR", "Date header missing, in the future or too old"
            )
        wanted = signature(
            secret,
            method=request.method,
            body=request.body,
            content_type=request.headers.get("content-type", "") if request.body else "",
            date=stamp,
            host=request.headers.get("host", ""),
            resource=_resource(request),
        )
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise HttpError(401, "AUTHENTICATION_ERROR", "Invalid X-API-Signature")

    def throttled_response(self, retry_after: int) -> Response:
        return Response(
            429,
            {"code": "TOO_MANY_REQUESTS", "message": "Too many requests", "details": []},
            {"Retry-After": str(retry_after)},
        )

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self._tickets.clear()
            self._in_order.clear()
            self._shuffled.clear()
            self._next_id = 1
            self._random = random.Random(self.seed)
            self._lockouts.clear()
            self.lockout_refusals = 0

    # -- inspection (tests) -----------------------------------------------------------------

    @property
    def lockouts(self) -> int:
        """How many times a token was locked out for failed requests (every token, ever)."""
        with self.lock:
            return sum(state.strikes for state in self._lockouts.values())

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket as GET /tickets would render it, by id."""
        with self.lock:
            return [ticket.render() for ticket in self._ordered()]

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        with self.lock:
            return self._ticket(ticket_id).render()

    def actions(self, ticket_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [action.render() for action in self._ticket(ticket_id).actions]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A deep, JSON-safe copy of the whole account: ticket id → ticket, actions, tags…"""
        with self.lock:
            return {
                ticket.id: {
                    "ticket": ticket.render(),
                    "actions": [a.render() for a in ticket.actions],
                    "tags": [t.render() for t in ticket.tags],
                    "statusChanges": self._render_status_changes(ticket),
                    "ownerChanges": self._render_owner_changes(ticket),
                }
                for ticket in self._ordered()
            }

    @property
    def agent(self) -> ZenviaAgentDesk:
        """Act as `agent-1` (the first configured agent)."""
        return ZenviaAgentDesk(self, self.catalogue.agents[0].id)

    def as_agent(self, agent_id: str) -> ZenviaAgentDesk:
        if self.catalogue.agent(agent_id) is None:
            raise ValueError(f"unknown agent {agent_id!r}")
        return ZenviaAgentDesk(self, agent_id)

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        actor: str | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """Run the route handler for `method path` in-process (no hooks, no auth, no faults)
        and return the response body; validation failures raise `HttpError`."""
        with self.lock:
            matched = self.match(method, path)
            if matched is None:
                raise HttpError(404, "NOT_FOUND", f"no route for {method} {path}")
            route, params = matched
            request = Request(
                method=method,
                path=path,
                query={k: [v] for k, v in (query or {}).items()},
                headers={},
                body=b"" if body is None else json.dumps(body).encode(),
                params=params,
            )
            self._actor = actor
            try:
                return self._raw[route.label](request).body
            finally:
                self._actor = None

    # -- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _ordered(self) -> list[_Ticket]:
        """Tickets by id, not copied: a listing page slices it in O(page)."""
        return self._in_order

    def _listing_order(self, tickets: list[_Ticket]) -> list[_Ticket]:
        """`tickets` (by id) in this sandbox's `listing_order`; the full list is not copied."""
        if self.listing_order == "id":
            return tickets
        if self.listing_order == "updated_desc":
            return sorted(tickets, key=lambda t: t.updated_at or t.created_at, reverse=True)
        if tickets is self._in_order:
            return self._shuffled
        return sorted(tickets, key=lambda t: t.shuffle_key)

    def _shuffle_key(self, *ids: object) -> bytes:
        """A stable pseudo-random position: the same order on every page and every call."""
        return hashlib.sha256(":".join(map(str, (self.seed, *ids))).encode()).digest()

    def _touch(self, ticket: _Ticket, now: datetime) -> None:
        """An edit: `updatedAt` moves, and lagging date listings see it only later."""
        ticket.updated_at = now
        ticket.history.append((now, now))

    def _as_listed(self, ticket: _Ticket, now: datetime) -> tuple[bool, datetime | None]:
        """(indexed yet?, the `updatedAt` a date listing matches) as of `listing_lag` ago."""
        seen_at = now - self.listing_lag
        if ticket.created_at > seen_at:
            return False, None
        seen = [updated for when, updated in ticket.history if when <= seen_at]
        return True, seen[-1] if seen else ticket.updated_at

    def _refuse_if_closed(self, ticket: _Ticket, what: str) -> None:
        if self.closed_is_final and ticket.status.type == "CLOSED":
            raise HttpError(
                400,
                "VALIDATION_ERROR",
                f"Invalid request: ticket {ticket.id} is closed; reopen it before {what}",
                [{"code": "TICKET_CLOSED", "path": "status", "message": "ticket is closed"}],
            )

    def _ticket(self, ticket_id: str) -> _Ticket:
        found = self._tickets.get(ticket_id)
        if found is None:
            raise HttpError(404, "NOT_FOUND", f"Ticket {ticket_id} not found")
        return found

    def _origin(self) -> str:
        return AGENT_ORIGIN if self._actor else API_ORIGIN

    @staticmethod
    def _object_body(request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "VALIDATION_ERROR", "Invalid request: body must be an object")
        return body

    def _page(
        self,
        items: Sequence[_T],
        request: Request,
        render: Callable[[_T], dict[str, Any]],
        *,
        first: int = 1,
    ) -> Response:
        """One page of `items`, rendering only that page (a full listing stays O(n)); pages
        count from `first` (the tickets API's from 1, the legacy paging of contacts from 0)."""
        problems = _Problems()
        page = _int_arg(request, "page", first, problems)
        size = _int_arg(request, "size", DEFAULT_PAGE_SIZE, problems)
        if page is not None and page < first:
            problems.add("page", "INVALID_VALUE", f"page must be {first} or greater")
        if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
            problems.add("size", "INVALID_VALUE", f"size must be between 1 and {MAX_PAGE_SIZE}")
        problems.raise_if_any()
        assert page is not None
        assert size is not None
        start = (page - first) * size
        headers = {"x-total": str(len(items))}
        if first == 1:
            headers.update({"x-page": str(page), "x-page-size": str(size)})
        return Response(200, [render(item) for item in items[start : start + size]], headers)

    def _actor_or(self, body: dict[str, Any], key: str, problems: _Problems) -> str | None:
        """`updatedById` / `createdById`: a known agent; defaults to the acting agent."""
        value = body.get(key)
        if value is None:
            return self._actor
        if not isinstance(value, str) or self.catalogue.agent(value) is None:
            problems.add(key, "INVALID_VALUE", f"{key} must be the id of an existing agent")
            return None
        return value

    def _lookup(self, kind: str, value: object, path: str, problems: _Problems) -> Named | None:
        """`{id}` of a configured category/urgency/service/justification/tag, or null."""
        if value is None:
            return None
        if not isinstance(value, dict) or not _is_int(value.get("id")):
            problems.add(path, "INVALID_FORMAT", f"{path} must be an object with an integer id")
            return None
        found = self.catalogue.named(kind, value["id"])
        if found is None:
            problems.add(f"{path}.id", "NOT_FOUND", f"{kind} {value['id']} does not exist")
        return found

    def _owner_value(self, value: object, problems: _Problems) -> Agent | None:
        if value is None:
            problems.add("ownerId", "INVALID_VALUE", "ownerId must not be null")
            return None
        agent = self.catalogue.agent(value) if isinstance(value, str) else None
        if agent is None:
            problems.add("ownerId", "NOT_FOUND", f"agent {value!r} does not exist")
        return agent

    def _clients_value(self, value: object, problems: _Problems) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            problems.add("clients", "INVALID_FORMAT", "clients must be a list of client ids")
            return []
        if self.clients_required and not value:
            problems.add("clients", "REQUIRED", "at least one client is required")
        for index, client in enumerate(value):
            if not self.catalogue.has_client(client):
                problems.add(f"clients[{index}]", "NOT_FOUND", f"client {client!r} does not exist")
        return list(dict.fromkeys(value))

    def _subject_value(self, value: object, problems: _Problems) -> str:
        if not isinstance(value, str) or not value.strip():
            problems.add("subject", "REQUIRED", "subject is required")
            return ""
        limit = self.subject_max_length
        if limit is not None and len(value) > limit:
            problems.add("subject", "MAX_LENGTH", f"subject exceeds {limit} characters")
        return value

    def _type_value(self, value: object, problems: _Problems, path: str = "type") -> str:
        if value not in TICKET_TYPES:
            problems.add(path, "INVALID_VALUE", f"{path} must be one of {', '.join(TICKET_TYPES)}")
            return "PUBLIC"
        return str(value)

    def _status_value(
        self, status: object, justification: object, problems: _Problems
    ) -> tuple[Status | None, Named | None]:
        if not isinstance(status, dict) or not _is_int(status.get("id")):
            problems.add("status", "INVALID_FORMAT", "status must be an object with an integer id")
            return None, None
        target = self.catalogue.status(status["id"])
        if target is None:
            problems.add("status.id", "NOT_FOUND", f"status {status['id']} does not exist")
            return None, None
        if not target.requires_justification:
            if justification is not None:
                problems.add(
                    "justification",
                    "INVALID_VALUE",
                    f"status {target.name!r} does not take a justification",
                )
            return target, None
        allowed = ", ".join(str(j) for j in target.justifications)
        if justification is None:
            problems.add(
                "justification",
                "REQUIRED",
                f"status {target.name!r} requires a justification (one of {allowed})",
            )
            return target, None
        reason = self._lookup("justification", justification, "justification", problems)
        if reason is not None and reason.id not in target.justifications:
            problems.add(
                "justification.id",
                "INVALID_VALUE",
                f"justification {reason.id} is not allowed for status {target.name!r} "
                f"(one of {allowed})",
            )
            return target, None
        return target, reason

    def _moment_value(self, value: object, path: str, problems: _Problems) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        problems.add(path, "INVALID_FORMAT", f"{path} must be an ISO 8601 timestamp")
        return None

    # -- mutations (shared by HTTP and the agent desk) ---------------------------------------

    def _set_status(
        self,
        ticket: _Ticket,
        status: Status,
        justification: Named | None,
        actor: str | None,
        now: datetime,
    ) -> bool:
        if ticket.status == status and ticket.justification == justification:
            return False
        was_closed = ticket.status.type in _CLOSED_TYPES
        ticket.status, ticket.justification = status, justification
        if status.type == "RESOLVED":
            ticket.resolved_at = now
        if status.type == "CLOSED":
            ticket.closed_at = now
        if was_closed and status.type not in _CLOSED_TYPES:
            ticket.reopened_at = now
        ticket.status_changes.append(_StatusChange(status, justification, actor, now))
        return True

    def _set_owner(
        self,
        ticket: _Ticket,
        owner: Agent | None,
        team: Named | None,
        actor: str | None,
        now: datetime,
    ) -> bool:
        """An agent (who brings their team) or a team alone."""
        team = owner.team if owner is not None else team
        if ticket.owner == owner and ticket.owner_team == team:
            return False
        ticket.owner, ticket.owner_team = owner, team
        ticket.owner_changes.append(_OwnerChange(owner, team, actor, now))
        return True

    def _check_dependencies(self, ticket: _Ticket, problems: _Problems) -> None:
        """A category must belong to the ticket's service and type, an urgency to its category."""
        if not self.dependent_lookups:
            return
        category, urgency = ticket.category, ticket.urgency
        if category is not None and not category.fits(ticket.service, ticket.type):
            service = ticket.service.id if ticket.service else None
            problems.add(
                "category.id",
                "INVALID_VALUE",
                f"category {category.id} does not belong to service {service} "
                f"and type {ticket.type}",
            )
        if urgency is not None and not urgency.fits(category):
            problems.add(
                "urgency.id",
                "INVALID_VALUE",
                f"urgency {urgency.id} does not belong to category "
                f"{category.id if category else None}",
            )

    def _settle_children(self, ticket: _Ticket) -> None:
        """After a parent changed, clear a category or urgency that no longer belongs."""
        if not self.dependent_lookups:
            return
        if ticket.category is not None and not ticket.category.fits(ticket.service, ticket.type):
            ticket.category = None
        if ticket.urgency is not None and not ticket.urgency.fits(ticket.category):
            ticket.urgency = None

    def _new_action(
        self,
        ticket: _Ticket,
        body: dict[str, Any],
        problems: _Problems,
        prefix: str = "",
    ) -> Callable[[datetime], _Action] | None:
        """Validate an Action body; returns a function that appends it (after validation)."""
        type_ = self._type_value(body.get("type", "PUBLIC"), problems, f"{prefix}type")
        description = body.get("description")
        if not isinstance(description, str) or not description.strip():
            problems.add(f"{prefix}description", "REQUIRED", "description is required")
        created_by = self._actor_or(body, "createdById", problems)
        created_at = self._moment_value(body.get("createdAt"), f"{prefix}createdAt", problems)
        status: Status | None = None
        reason: Named | None = None
        if body.get("status") is not None:
            status, reason = self._status_value(
                body.get("status"), body.get("justification"), problems
            )
        elif body.get("justification") is not None:
            problems.add("justification", "INVALID_VALUE", "justification needs a status")
        if not prefix and (status is None or status.type == "CLOSED"):
            self._refuse_if_closed(ticket, "adding an action (unless the action reopens it)")

        def append(now: datetime) -> _Action:
            action = _Action(
                id=len(ticket.actions) + 1,
                type=type_,
                origin=self._origin(),
                description=str(description),
                created_at=created_at or now,
                created_by=created_by,
                status=status,
                justification=reason,
            )
            ticket.actions.append(action)
            changed = status is not None and self._set_status(
                ticket, status, reason, created_by, now
            )
            if not prefix and (changed or self.action_moves_updated_at):
                self._touch(ticket, now)
            return action

        return append

    # -- handlers ---------------------------------------------------------------------------

    def _list_tickets(self, request: Request) -> Response:
        problems = _Problems()
        created = _date_arg(request, "createdAt", problems)
        updated = _date_arg(request, "updatedAt", problems)
        status_id = _int_arg(request, "statusId", None, problems)
        problems.raise_if_any()
        zone = self.filter_timezone

        def matches(moment: datetime | None, wanted: date | None) -> bool:
            if wanted is None:
                return True
            if moment is None:  # a null `updatedAt` is on no date
                return False
            day = moment.astimezone(zone).date()
            return day == wanted if self.date_filter == "on" else day >= wanted

        def listed(ticket: _Ticket, now: datetime) -> bool:
            if created is None and updated is None:
                return True
            indexed, seen_updated = self._as_listed(ticket, now)
            return (
                indexed and matches(ticket.created_at, created) and matches(seen_updated, updated)
            )

        selected = self._ordered()
        if created is not None or updated is not None or status_id is not None:
            now = self._now()
            selected = [
                t
                for t in selected
                if listed(t, now) and (status_id is None or t.status.id == status_id)
            ]
        return self._page(self._listing_order(selected), request, _Ticket.render)

    def _list_contacts(self, request: Request) -> Response:
        """The Contacts API's listing as the spec pages it (`page` from 0, `size`, `x-total`);
        `channels.email` keeps the contacts with that e-mail, ignoring letter case."""
        email = (request.arg("channels.email") or "").casefold()
        contacts = [
            self._render_contact(contact)
            for contact in self.catalogue.contacts
            if not email or contact.email.casefold() == email
        ]
        if self.listing_order == "shuffle":
            contacts.sort(key=lambda c: self._shuffle_key("contact", c["id"]))
        else:
            contacts.sort(key=lambda c: str(c["id"]))
        return self._page(contacts, request, dict, first=0)

    def _render_contact(self, contact: Contact) -> dict[str, Any]:
        contact_id = (
            contact.client
            if self.contacts_are_clients
            else str(uuid.uuid5(_CONTACT_IDS, contact.client))
        )
        return {
            "id": contact_id,
            "channelList": [{"type": "email", "id": contact.email}],
            "firstName": contact.name,
        }

    def _create_ticket(self, request: Request) -> Response:
        body = self._object_body(request)
        problems = _Problems()
        subject = self._subject_value(body.get("subject"), problems)
        type_ = self._type_value(body.get("type", "PUBLIC"), problems)
        status, reason = self._status_value(
            body.get("status") or {"id": self.catalogue.initial_status},
            body.get("justification"),
            problems,
        )
        lookups = {
            kind: self._lookup(kind, body.get(kind), kind, problems) for kind in LOOKUP_ATTRIBUTES
        }
        owner = self._owner_value(body["ownerId"], problems) if "ownerId" in body else None
        team = self._team_value(body.get("ownerTeam"), problems) if self._actor else None
        clients = self._clients_value(body.get("clients", []), problems)
        cc = body.get("cc", [])
        if not isinstance(cc, list) or not all(isinstance(c, str) for c in cc):
            problems.add("cc", "INVALID_FORMAT", "cc must be a list of e-mail addresses")
            cc = []
        created_by = self._actor_or(body, "createdById", problems)
        first = body.get("firstAction")
        if first is not None and not isinstance(first, dict):
            problems.add("firstAction", "INVALID_FORMAT", "firstAction must be an object")
            first = None
        problems.raise_if_any()
        assert status is not None
        now = self._now()
        updated_at = None if self.null_updated_at else now
        category, urgency = lookups["category"], lookups["urgency"]
        ticket = _Ticket(
            id=str(self._next_id),
            subject=subject,
            type=type_,
            origin=self._origin(),
            status=status,
            justification=reason,
            created_at=now,
            updated_at=updated_at,
            created_by=created_by,
            cc=list(cc),
            clients=clients,
            category=category if isinstance(category, Category) else None,
            urgency=urgency if isinstance(urgency, Urgency) else None,
            service=lookups["service"],
            history=[(now, updated_at)],
            shuffle_key=self._shuffle_key(self._next_id),
        )
        self._check_dependencies(ticket, problems)
        ticket.status_changes.append(_StatusChange(status, reason, created_by, now))
        if owner is not None or team is not None:
            self._set_owner(ticket, owner, team, created_by, now)
        if first is not None:
            append = self._new_action(ticket, first, problems, "firstAction.")
            problems.raise_if_any()
            assert append is not None
            append(now)
        problems.raise_if_any()
        self._next_id += 1
        self._tickets[ticket.id] = ticket
        self._in_order.append(ticket)
        bisect.insort(self._shuffled, ticket, key=lambda t: t.shuffle_key)
        return Response(201, ticket.render(), {"Location": f"/v2/tickets/{ticket.id}"})

    def _team_value(self, value: object, problems: _Problems) -> Named | None:
        """`ownerTeam {id}`: only the agent desk (Zenvia's UI) can hand a ticket to a team."""
        if value is None:
            return None
        return self._lookup("team", value, "ownerTeam", problems)

    def assign_team(self, ticket_id: str, team_id: int, *, actor: str | None = None) -> None:
        """Hand a ticket to a team alone (no agent): what the UI or an assignment rule does."""
        with self.lock:
            ticket = self._ticket(ticket_id)
            problems = _Problems()
            team = self._lookup("team", {"id": team_id}, "ownerTeam", problems)
            problems.raise_if_any()
            self._refuse_if_closed(ticket, "changing its owner")
            now = self._now()
            if self._set_owner(ticket, None, team, actor, now):
                self._touch(ticket, now)

    def _get_ticket(self, request: Request) -> Response:
        return Response(200, self._ticket(request.params["ticket_id"]).render())

    def _list_actions(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        actions = ticket.actions
        if self.listing_order == "updated_desc":
            actions = sorted(actions, key=lambda a: a.created_at, reverse=True)
        elif self.listing_order == "shuffle":
            actions = sorted(actions, key=lambda a: self._shuffle_key(ticket.id, a.id))
        return self._page(actions, request, _Action.render)

    def _add_action(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        body = self._object_body(request)
        problems = _Problems()
        append = self._new_action(ticket, body, problems)
        problems.raise_if_any()
        assert append is not None
        action = append(self._now())
        return Response(
            201,
            action.render(),
            {"Location": f"/v2/tickets/{ticket.id}/actions/{action.id}"},
        )

    def _render_status_changes(self, ticket: _Ticket) -> list[dict[str, Any]]:
        return [
            {
                "status": change.status.render(),
                "justification": change.justification.render() if change.justification else None,
                **_permanency(change.updated_at, _next_time(ticket.status_changes, i), self),
                "updatedById": change.updated_by,
                "updatedAt": iso_millis(change.updated_at),
            }
            for i, change in enumerate(ticket.status_changes)
        ]

    def _render_owner_changes(self, ticket: _Ticket) -> list[dict[str, Any]]:
        return [
            {
                "ownerId": change.owner.id if change.owner else None,
                "ownerTeam": change.team.render() if change.team else None,
                **_permanency(change.updated_at, _next_time(ticket.owner_changes, i), self),
                "updatedById": change.updated_by,
                "updatedAt": iso_millis(change.updated_at),
            }
            for i, change in enumerate(ticket.owner_changes)
        ]

    def _status_changes(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        return self._page(self._render_status_changes(ticket), request, dict)

    def _owner_changes(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        return self._page(self._render_owner_changes(ticket), request, dict)

    def _list_tags(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        return self._page(ticket.tags, request, Named.render)

    def _add_tag(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        body = self._object_body(request)
        problems = _Problems()
        if body.get("tag") is None:
            problems.add("tag", "REQUIRED", "tag is required")
        tag = self._lookup("tag", body.get("tag"), "tag", problems)
        updated_by = self._actor_or(body, "updatedById", problems)
        problems.raise_if_any()
        assert tag is not None
        self._refuse_if_closed(ticket, "tagging it")
        if tag in ticket.tags:
            raise HttpError(409, "DUPLICATED", f"Ticket {ticket.id} already has tag {tag.id}")
        ticket.tags.append(tag)
        if self.action_moves_updated_at:
            self._touch(ticket, self._now())
        return Response(200, {"tag": tag.render(), "updatedById": updated_by})

    def _remove_tag(self, request: Request) -> Response:
        ticket = self._ticket(request.params["ticket_id"])
        wanted = request.params["tag_id"]
        self._refuse_if_closed(ticket, "untagging it")
        for tag in ticket.tags:
            if str(tag.id) == wanted:
                ticket.tags.remove(tag)
                if self.action_moves_updated_at:
                    self._touch(ticket, self._now())
                return Response(204)
        raise HttpError(404, "NOT_FOUND", f"Ticket {ticket.id} has no tag {wanted}")

    def _patcher(self, attr: str) -> Handler:
        def patch(request: Request) -> Response:
            ticket = self._ticket(request.params["ticket_id"])
            body = self._object_body(request)
            problems = _Problems()
            actor = self._actor_or(body, "updatedById", problems)
            key = _ATTRIBUTES[attr]
            if key not in body:
                problems.add(key, "REQUIRED", f"{key} is required")
                problems.raise_if_any()
            apply = self._attribute_change(ticket, attr, body, problems, actor)
            problems.raise_if_any()
            now = self._now()
            if apply(now):
                self._touch(ticket, now)
            return Response(200, body)

        return patch

    def _attribute_change(
        self,
        ticket: _Ticket,
        attr: str,
        body: dict[str, Any],
        problems: _Problems,
        actor: str | None,
    ) -> Callable[[datetime], bool]:
        """Validate one attribute's PATCH body; return a function applying it (True = changed)."""
        value = body[_ATTRIBUTES[attr]]
        if attr == "status":
            status, reason = self._status_value(value, body.get("justification"), problems)
            if status is None or status.type == "CLOSED":
                self._refuse_if_closed(ticket, "changing it (only a reopening status may)")

            def set_status(now: datetime) -> bool:
                assert status is not None
                return self._set_status(ticket, status, reason, actor, now)

            return set_status
        self._refuse_if_closed(ticket, f"changing its {attr}")
        if attr == "subject":
            subject = self._subject_value(value, problems)
            return lambda now: _assign(ticket, "subject", subject)
        if attr in ("type", "service"):
            parent = (
                self._type_value(value, problems)
                if attr == "type"
                else self._lookup(attr, value, attr, problems)
            )

            def set_parent(now: datetime) -> bool:
                changed = _assign(ticket, attr, parent)
                self._settle_children(ticket)
                return changed

            return set_parent
        if attr in ("category", "urgency"):
            item = self._lookup(attr, value, attr, problems)
            trial = copy.copy(ticket)
            setattr(trial, attr, item)
            if attr == "category":
                trial.urgency = None  # an urgency that no longer fits is cleared, not refused
            self._check_dependencies(trial, problems)

            def set_child(now: datetime) -> bool:
                changed = _assign(ticket, attr, item)
                self._settle_children(ticket)
                return changed

            return set_child
        if attr == "owner":
            owner = self._owner_value(value, problems)
            return lambda now: self._set_owner(ticket, owner, None, actor, now)
        if attr == "clients":
            clients = self._clients_value(value, problems)
            return lambda now: _assign(ticket, "clients", clients)
        if attr == "solution":
            solution_at = self._moment_value(value, "solutionAt", problems)
            return lambda now: _assign(ticket, "solution_at", solution_at)
        raise HttpError(404, "NOT_FOUND", f"unknown attribute {attr}")  # pragma: no cover


# attribute path segment → the body key carrying its value
_ATTRIBUTES = {
    "subject": "subject",
    "type": "type",
    "category": "category",
    "urgency": "urgency",
    "status": "status",
    "owner": "ownerId",
    "clients": "clients",
    "service": "service",
    "solution": "solutionAt",
}


def _assign(ticket: _Ticket, name: str, value: object) -> bool:
    if getattr(ticket, name) == value:
        return False
    setattr(ticket, name, value)
    return True


def _next_time(changes: list[_StatusChange] | list[_OwnerChange], index: int) -> datetime | None:
    return changes[index + 1].updated_at if index + 1 < len(changes) else None


def _permanency(start: datetime, end: datetime | None, app: ZenviaSandbox) -> dict[str, int]:
    """Seconds spent in a state; the sandbox has no working-hours calendar, so both agree."""
    seconds = int(((end or app._now()) - start).total_seconds())
    return {"permanencyTimeFullTime": seconds, "permanencyTimeWorkingTime": seconds}


def _resource(request: Request) -> str:
    """The path and query string a signature covers (the query re-encoded as received)."""
    query = urlencode([(k, v) for k, values in request.query.items() for v in values])
    return f"{request.path}?{query}" if query else request.path


def _int_arg(request: Request, name: str, default: int | None, problems: _Problems) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        problems.add(name, "INVALID_FORMAT", f"{name} must be an integer")
        return default


def _date_arg(request: Request, name: str, problems: _Problems) -> date | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        problems.add(name, "INVALID_FORMAT", f"{name} must be a date (YYYY-MM-DD)")
        return None


class ZenviaAgentDesk:
    """A human agent working in Zenvia's UI: every call runs the HTTP route handlers in-process
    (same validation, same side effects) with origin AGENT_IN_SYSTEM and this agent as author.
    Validation failures raise `HttpError` carrying Zenvia's code and details."""

    def __init__(self, sandbox: ZenviaSandbox, agent_id: str) -> None:
        self.sandbox = sandbox
        self.agent_id = agent_id

    def _call(self, method: str, path: str, body: object = None) -> Any:
        return self.sandbox.call(method, path, body, actor=self.agent_id)

    def create_ticket(
        self,
        subject: str,
        *,
        type: str = "PUBLIC",
        status: int | None = None,
        justification: int | None = None,
        urgency: int | None = None,
        category: int | None = None,
        service: int | None = None,
        owner_id: str | None = None,
        owner_team: int | None = None,
        clients: Iterable[str] = ("client-1",),
        description: str | None = None,
        public: bool = True,
    ) -> dict[str, Any]:
        """A ticket made in the UI; `owner_team` alone (no `owner_id`) makes it team-owned."""
        body: dict[str, Any] = {"subject": subject, "type": type, "clients": list(clients)}
        for key, value in (("urgency", urgency), ("category", category), ("service", service)):
            if value is not None:
                body[key] = {"id": value}
        if status is not None:
            body["status"] = {"id": status}
        if justification is not None:
            body["justification"] = {"id": justification}
        if owner_id is not None:
            body["ownerId"] = owner_id
        if owner_team is not None:
            body["ownerTeam"] = {"id": owner_team}
        if description is not None:
            body["firstAction"] = {
                "type": "PUBLIC" if public else "INTERNAL",
                "description": description,
            }
        result: dict[str, Any] = self._call("POST", "/v2/tickets", body)
        return result

    def edit(self, ticket_id: str, attr: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH /tickets/{id}/attributes/{attr} with `body` (e.g. `{"subject": "…"}`)."""
        result: dict[str, Any] = self._call(
            "PATCH", f"/v2/tickets/{ticket_id}/attributes/{attr}", body
        )
        return result

    def move_to_team(self, ticket_id: str, team_id: int) -> None:
        """Hand the ticket to a team, with no agent (`ownerId` becomes null)."""
        self.sandbox.assign_team(ticket_id, team_id, actor=self.agent_id)

    def set_status(
        self, ticket_id: str, status: int, justification: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": {"id": status}}
        if justification is not None:
            body["justification"] = {"id": justification}
        return self.edit(ticket_id, "status", body)

    def add_action(
        self,
        ticket_id: str,
        description: str,
        *,
        public: bool = True,
        status: int | None = None,
        justification: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "PUBLIC" if public else "INTERNAL",
            "description": description,
        }
        if status is not None:
            body["status"] = {"id": status}
        if justification is not None:
            body["justification"] = {"id": justification}
        result: dict[str, Any] = self._call("POST", f"/v2/tickets/{ticket_id}/actions", body)
        return result

    def populate(self, count: int) -> list[str]:
        """Create `count` plausible tickets, deterministic for the sandbox's seed."""
        rng = self.sandbox._random
        catalogue = self.sandbox.catalogue
        ids: list[str] = []
        for n in range(count):
            with self.sandbox.lock:
                service = rng.choice(catalogue.services)
                category = rng.choice(
                    [c for c in catalogue.categories if c.fits(service, "PUBLIC")]
                )
                urgency = rng.choice([u for u in catalogue.urgencies if u.fits(category)])
                ticket = self.create_ticket(
                    f"Chamado {n + 1}: {rng.choice(_TOPICS)}",
                    urgency=urgency.id,
                    category=category.id,
                    service=service.id,
                    owner_id=rng.choice(catalogue.agents).id,
                    clients=[rng.choice(catalogue.clients)],
                    description=f"Descrição do chamado {n + 1}.",
                )
            ids.append(str(ticket["id"]))
        return ids


_TOPICS = (
    "erro ao emitir boleto",
    "dúvida sobre o plano",
    "acesso bloqueado",
    "nota fiscal não chegou",
    "integração parou",
    "solicitação de cancelamento",
)
