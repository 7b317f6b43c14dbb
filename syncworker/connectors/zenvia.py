"""Zenvia Customer Cloud v2 tickets over httpx (facts: reference/zenvia-tickets-api.md).

Tickets are flattened to native fields (ids, not names: the mapping gives them meaning):
`subject, type, status (id), statusType (base type), justification, urgency, category, service
(ids or None), ownerId, ownerTeam (team id or None; read-only), clients (list), origin,
createdAt, updatedAt` (ISO strings as sent). A record's version is its parsed `updatedAt`, or
`createdAt` while `updatedAt` is null (a never-edited ticket). Comments are actions, in
numeric action-id order whatever order the API lists them in; the comment id is
`"<ticket id>:<action id>"` because action ids are only known to be unique per ticket.
`find_client` asks the Contacts API for the contact with an e-mail, a ticket's client.

Anything the API would refuse is refused here first (PermanentError, no request): every
failed request counts toward the account's failed-request lockout (429 for 60-300 s).
PATCHes go in dependency order (type, service, category, urgency: each must belong to the
one before); a status change goes last when it closes, first otherwise (it may reopen a
CLOSED ticket, which refuses other edits).

Every failure is classified here (see connectors/errors.py; the rules both remotes share are
in connectors/wire.py); the only retry is the one immediate retry of an idempotent GET whose
pooled connection was dropped (connectors/http.py).

Request costs, since the account allows 10 requests/min in business hours:
- `get` 1; `create` 1; `add_comment` 1; `find_client` 1; `list_comments` 1 per 100 actions;
- `update` 1 PATCH per changed attribute (`status` + `justification` share one; a lone
  `justification` costs an extra GET for the current status);
- `changed_pages` (a poll's pass; `changed_since` is one whole pass) ≥ 2 per calendar date
  in [since, now]: `updatedAt` = that date, and `createdAt` = that date for never-edited
  tickets whose `updatedAt` is null (1 per 100 tickets each); a past date's listing whose
  total shrank is read again (`zenvia_pass`). A pass stopped by the budget goes on from its
  next page, so each request is progress;
- `find_created` lists `createdAt` (1 per 100 tickets created that date) for each distinct
  date an attempt's send window touches (D dates: usually 1, 2 across midnight in either
  zone), the attempts' own dates first, and after each date checks the actions of its new
  candidates, the tickets created within the send window of an attempt (1 request each,
  more only past 100 actions; API-created and closest to an attempt first), stopping at the
  first hit. Worst case D listings + (tickets created within a send window); found:
  usually 1 listing + 1 actions request. Within `listing_lag_seconds` of the newest attempt
  it sends nothing and raises RateLimitedError (a lagging listing would wrongly say "not
  created").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import httpx
from pydantic import SecretStr

from syncworker.connectors import http
from syncworker.connectors.base import (
    Listed,
    ListingPage,
    OpenGate,
    RequestCounter,
    RequestGate,
    Unreadable,
)
from syncworker.connectors.errors import (
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
)
from syncworker.connectors.wire import (
    error_for_status,
    json_body,
    maybe_json,
    path_segment,
    redact,
    utc,
)
from syncworker.connectors.zenvia_pass import ListingPass
from syncworker.connectors.zenvia_signature import SignatureAuth
from syncworker.markers import marker, with_marker
from syncworker.model import NativeFields, RemoteComment, RemoteRecord, Side

__all__ = ["WRITABLE_FIELDS", "ZenviaConnector"]

log = logging.getLogger(__name__)

REMOTE = "zenvia"
MAX_PAGE_SIZE = 100
API_ORIGIN = "TICKETS_API"
_MAX_PAGES = 10_000
_DATE_STAMPS = ("updatedAt", "createdAt")
_OPEN_GATE = OpenGate()

# native field → (PATCH attribute, body key, kind), in PATCH order: each of type, service,
# category, urgency must belong to those before it; `status`/`justification` go together.
_ATTRIBUTE_OF: dict[str, tuple[str, str, str]] = {
    "type": ("type", "type", "ticket_type"),
    "service": ("service", "service", "ref"),
    "category": ("category", "category", "ref"),
    "urgency": ("urgency", "urgency", "ref"),
    "subject": ("subject", "subject", "text"),
    "clients": ("clients", "clients", "clients"),
    "ownerId": ("owner", "ownerId", "owner"),
    "status": ("status", "status", "ref"),
    "justification": ("status", "justification", "ref"),
}
_PATCH_ORDER = {name: position for position, name in enumerate(_ATTRIBUTE_OF)}
WRITABLE_FIELDS = frozenset(_ATTRIBUTE_OF)
_TICKET_TYPES = ("INTERNAL", "PUBLIC")


def utc_now() -> datetime:
    return datetime.now(UTC)


class ZenviaConnector:
    """The `Connector` for Zenvia v2 tickets.

    `client` is a pooled `httpx.Client` holding the timeouts (the connector closes it in
    `close()`); `base_url` includes the version (`https://api.zenvia.com/v2`). The token only
    ever travels in the `X-API-TOKEN` header. `clock` gives "today" for the date filters;
    `filter_timezones` are the zones whose calendar dates are queried (the API's own zone for
    its DATE filters is undocumented: pass `(UTC, ZoneInfo("America/Sao_Paulo"))` to cover
    both for at most one extra date per poll). Spans longer than `max_filter_days` are
    answered from the full listing instead of one query per date. `clients_required` refuses
    a create without clients before sending it. With `signature_secret` (a signature-mode
    token's secret) every request is signed: the connector sets the client's `auth`.
    `closed_statuses` are the status ids of base type CLOSED (also learned from reads).
    `listing_lag_seconds` is how long a new ticket may be missing from date listings;
    `send_window_seconds` how far from a create's send its ticket's `createdAt` may be (the
    request timeout plus the clocks' difference): `find_created` looks no further.
    """

    side: Side = "zenvia"
    stamp_precision = timedelta(milliseconds=1)
    listing_ordered = False  # undocumented: a poll's pass reads every page
    system = "zenvia"

    def __init__(
        self,
        client: httpx.Client,
        *,
        base_url: str,
        token: str | SecretStr,
        gate: RequestGate = _OPEN_GATE,
        page_size: int = MAX_PAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
        filter_timezones: Iterable[tzinfo] = (UTC,),
        max_filter_days: int = 31,
        clients_required: bool = True,
        signature_secret: str | SecretStr | None = None,
        closed_statuses: Iterable[int] = (),
        listing_lag_seconds: float = 5.0,
        send_window_seconds: float = 60.0,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        if not secret.get_secret_value():
            raise ValueError("the Zenvia token is empty")
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._token = secret
        self._gate = gate
        self._page_size = page_size
        self._clock = clock
        self._zones = tuple(filter_timezones) or (UTC,)
        self._max_filter_days = max_filter_days
        self._clients_required = clients_required
        if listing_lag_seconds < 0:
            raise ValueError("listing_lag_seconds cannot be negative")
        self.listing_lag = timedelta(seconds=listing_lag_seconds)
        if send_window_seconds <= 0:
            raise ValueError("send_window_seconds must be positive")
        self._send_window = timedelta(seconds=send_window_seconds)
        self._signed = signature_secret is not None
        if signature_secret is not None:
            if not isinstance(signature_secret, SecretStr):
                signature_secret = SecretStr(signature_secret)
            client.auth = SignatureAuth(signature_secret, clock)
        # status id → base type, as configured and as learned from every ticket read: tells a
        # reopening status change (sent first) from a closing one (sent last)
        self._status_types: dict[int, str] = dict.fromkeys(closed_statuses, "CLOSED")
        self.requests = RequestCounter()

    def __repr__(self) -> str:
        return f"ZenviaConnector(base_url={self._base_url!r}, token='**********')"

    # -- reading ----------------------------------------------------------------------------

    def get(self, record_id: str) -> RemoteRecord:
        response = self._call("GET", f"/tickets/{path_segment(record_id)}", "GET /tickets/{id}")
        return self._record(json_body(response, REMOTE, "ticket"))

    def confirm_deleted(self, record_id: str) -> bool:
        """Never: v2 has no ticket deletion, so a ticket that cannot be read is not gone."""
        return False

    def changed_at(self, fields: NativeFields) -> datetime | None:
        """`updatedAt`, or `createdAt` for a never-edited ticket (whose `updatedAt` may be null)."""
        stamp = fields.get("updatedAt") or fields.get("createdAt")
        return _parse_time(stamp, "updatedAt", None) if stamp else None

    def iter_all(self) -> Iterator[Listed]:
        for items, _total in self._pages("/tickets", "GET /tickets", {}):
            for raw in items:
                yield self._listed(raw)

    def changed_since(self, since: datetime) -> Iterator[Listed]:
        """Tickets with `updatedAt` ≥ `since`, ascending (version, id): one whole pass of
        `changed_pages`, duplicates merged keeping the newest."""
        found: dict[str, RemoteRecord] = {}
        unreadable: dict[str, Unreadable] = {}
        for page in self.changed_pages(since):
            for item in page.records:
                if isinstance(item, Unreadable):
                    unreadable[item.id] = item
                else:
                    _keep_newest(found, item)
        yield from (item for item in unreadable.values() if item.id not in found)
        yield from sorted(found.values(), key=lambda r: (r.version, r.id))

    def changed_pages(
        self, since: datetime, resume: Mapping[str, Any] | None = None
    ) -> Iterator[ListingPage]:
        """Tickets with `updatedAt` ≥ `since`, a page at a time, each page with the position
        after it (`zenvia_pass`: a poll the budget stops goes on from there).

        The `updatedAt` filter takes a DATE: every calendar date from `since` to now is listed
        (whether the API reads it as "on" or "since" that date, the union is the same) and the
        full timestamp is compared here. A never-edited ticket's `updatedAt` may be null (no
        date matches it), so each date's `createdAt` listing is read too. Past
        `max_filter_days` dates, every ticket is listed instead. The order is undocumented, so
        every page is read; a ticket may come twice (callers keep the newest).
        """
        since = utc(since, "since")
        position = ListingPass.load(resume) if resume is not None else None
        if position is None:
            position = ListingPass(self._listings(since))
        previous: list[object] | None = None
        while not position.done:
            listing, page = position.index, position.page
            items, total = self._page("/tickets", "GET /tickets", position.params(), page)
            if items and items == previous:
                raise _malformed(f"GET /tickets page {page} repeats page {page - 1}", "/tickets")
            position = position.after(items=len(items), total=total, page_size=self._page_size)
            if position.page > _MAX_PAGES:
                raise _malformed(f"GET /tickets did not end after {_MAX_PAGES} pages", "/tickets")
            same_listing = position.index == listing and position.page == page + 1
            previous = items if same_listing else None
            records = [
                listed
                for listed in map(self._listed, items)
                if not isinstance(listed, RemoteRecord) or listed.version >= since
            ]
            yield ListingPage(records, None if position.done else position.dump())

    def _listings(self, since: datetime) -> tuple[tuple[str, str], ...]:
        days = self._dates(since, utc(self._clock(), "clock()"))
        if len(days) > self._max_filter_days:
            return (("", ""),)
        return tuple((stamp, day.isoformat()) for day in days for stamp in _DATE_STAMPS)

    def list_comments(self, record_id: str) -> list[RemoteComment]:
        ticket = path_segment(record_id)
        comments: list[RemoteComment] = []
        for items, _total in self._pages(
            f"/tickets/{ticket}/actions", "GET /tickets/{id}/actions", {}
        ):
            comments.extend(self._comment(raw, record_id) for raw in items)
        # The listing order is undocumented; action ids are numbers in creation order.
        return sorted(comments, key=_action_order)

    def find_created(
        self, idempotency_key: str, *, around: datetime, attempts: Sequence[datetime] = ()
    ) -> RemoteRecord | None:
        """The ticket whose first action carries this key's marker, created within
        `send_window` of `around` or of any of `attempts` (each send's time: a retry days
        later may be the one that created it; a send lands within its timeout, give or take
        the clocks' difference).

        Subject-independent (a human may have renamed it): candidates come from the
        `createdAt` date filter, one listing per distinct date those windows touch, the
        attempts' own dates first; only tickets created inside a window are candidates, and
        each date's new candidates have their first actions page searched for the marker
        before the next date is listed, so the search stops at the first hit.

        Date listings lag behind writes: within `listing_lag` of the newest attempt a miss
        proves nothing, so it raises RateLimitedError (wait, nothing is lost) instead.
        """
        moments = [utc(moment, "attempt") for moment in (around, *attempts)]
        settled = max(moments) + self.listing_lag - utc(self._clock(), "clock()")
        if settled > timedelta(0):
            raise RateLimitedError(
                "a ticket created by the last attempt may not be listed yet",
                retry_after=settled.total_seconds(),
                remote=REMOTE,
                path="GET /tickets",
            )
        wanted = marker(idempotency_key)
        seen: set[str] = set()
        checked = 0
        for day in self._dates_around(moments):
            fresh = [
                record
                for items, _total in self._pages(
                    "/tickets", "GET /tickets", {"createdAt": day.isoformat()}
                )
                for record in (self._record(raw) for raw in items)
                if record.id not in seen and self._sent_within_window(record, moments)
            ]
            seen.update(record.id for record in fresh)
            for record in sorted(fresh, key=lambda r: _likelihood(r, moments)):
                checked += 1
                if self._first_actions_carry(record.id, wanted):
                    log.debug("zenvia find_created: found after %d candidates", checked)
                    return record
        log.debug("zenvia find_created: none of %d candidates", checked)
        return None

    def find_client(self, email: str) -> str | None:
        """The id of the contact (Contacts API) with this e-mail, to name as a ticket's client;
        None when there is none.

        One request, `GET /contacts?channels.email=…`, the first page at the API's own size
        (20): several contacts with one address fit in it, and the first by id is taken, since
        listings come in no documented order. How the filter matches is not documented
        either: a contact whose e-mail channels are all another address is passed over.
        """
        response = self._call("GET", "/contacts", "GET /contacts", params={"channels.email": email})
        items = json_body(response, REMOTE, "contacts page")
        if not isinstance(items, list):
            raise _malformed("GET /contacts page is not a JSON array", "GET /contacts")
        found = [
            contact_id
            for contact_id, emails in map(_contact_emails, items)
            if not emails or email.casefold() in emails
        ]
        return min(found, default=None)

    # -- writing ----------------------------------------------------------------------------

    def create(
        self, fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord:
        """POST /tickets; the first action carries `description` plus the key's marker.

        That action is INTERNAL, so the customer never sees the marker: an exact key beats a
        look-alike match (same subject, client and text) that could adopt someone else's
        ticket. `ownerId` None is left out (unassigned); clients are required when the
        account requires them. A TransientError means the outcome is unknown: resolve it with
        `find_created`.
        """
        if self._clients_required and not fields.get("clients"):
            raise _refuse(
                "a Zenvia ticket needs at least one client: map the case's contact to a "
                "Zenvia client id in the `clients` field"
            )
        body = _ticket_body(fields)
        body["firstAction"] = {
            "type": "INTERNAL",
            "description": with_marker(description, idempotency_key),
        }
        response = self._call("POST", "/tickets", "POST /tickets", json=body)
        return self._record(json_body(response, REMOTE, "ticket"))

    def requests_to_update(self, changes: NativeFields) -> int:
        """One PATCH per attribute; a status and its justification go in one."""
        paired = "status" in changes and "justification" in changes
        return len(changes) - int(paired)

    def update(
        self,
        record_id: str,
        changes: NativeFields,
        *,
        landed: Callable[[NativeFields], None] | None = None,
    ) -> None:
        """One PATCH per changed attribute, in dependency order (type, service, category,
        urgency, then the rest); `status` (+ `justification`) as one PATCH, last when its
        target is a CLOSED status, first otherwise (a CLOSED ticket refuses other edits until
        a status change reopens it).

        Not atomic: if a later PATCH fails the earlier ones stay applied; `landed` hears each
        one that did. Unknown or read-only names, values of the wrong type and a null
        `ownerId` (the API has no way to unassign) raise PermanentError before any request.
        """
        ticket = path_segment(record_id)
        _check_fields(changes, record_id, clients_required=self._clients_required)
        patches: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
        for name in sorted(changes, key=_PATCH_ORDER.__getitem__):
            if name in ("status", "justification"):
                continue
            attr, key, kind = _ATTRIBUTE_OF[name]
            patches.append((attr, {key: _encode(kind, changes[name])}, (name,)))
        if "status" in changes or "justification" in changes:
            status = changes.get("status")
            if status is None:
                if "status" in changes:
                    raise _refuse("status cannot be cleared", record_id)
                status = self.get(record_id).fields["status"]
            body: dict[str, Any] = {"status": {"id": status}}
            if changes.get("justification") is not None:
                body["justification"] = {"id": changes["justification"]}
            change = ("status", body, ("status", "justification"))
            reopens = self._status_types.get(status) != "CLOSED"
            patches.insert(0 if reopens else len(patches), change)
        for attr, body, names in patches:
            self._call(
                "PATCH",
                f"/tickets/{ticket}/attributes/{attr}",
                f"PATCH /tickets/{{id}}/attributes/{attr}",
                json=body,
            )
            if landed is not None:
                landed({name: changes[name] for name in names if name in changes})

    def add_comment(self, record_id: str, body: str, *, public: bool) -> str:
        """POST an action with exactly `body` (a PUBLIC one is what the customer reads); a
        TransientError means the outcome is unknown (look for the text in `list_comments`
        before adding it again)."""
        payload = {"type": "PUBLIC" if public else "INTERNAL", "description": body}
        response = self._call(
            "POST",
            f"/tickets/{path_segment(record_id)}/actions",
            "POST /tickets/{id}/actions",
            json=payload,
        )
        return self._comment(json_body(response, REMOTE, "action"), record_id).id

    def close(self) -> None:
        self._client.close()

    # -- transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        response = http.send(
            self._client,
            method,
            f"{self._base_url}{path}",
            endpoint=endpoint,
            remote=REMOTE,
            gate=self._gate,
            counter=self.requests,
            params=params,
            json=json,
            headers={
                "X-API-TOKEN": self._token.get_secret_value(),
                "Accept": "application/json",
            },
        )
        if 200 <= response.status_code < 300:
            return response
        raise self._failure(response, f"{method} {response.request.url.path}")

    def _failure(self, response: httpx.Response, where: str) -> RemoteError:
        """Classify a non-2xx answer, keeping Zenvia's own code, message and details."""
        status = response.status_code
        code, message, details = None, response.reason_phrase or f"HTTP {status}", []
        payload = maybe_json(response)
        if isinstance(payload, dict):
            if isinstance(payload.get("code"), str):
                code = payload["code"]
            if isinstance(payload.get("message"), str) and payload["message"]:
                message = payload["message"]
            details_list = payload.get("details")
            for item in details_list if isinstance(details_list, list) else []:
                if isinstance(item, dict):
                    path, text = item.get("path"), item.get("message")
                    details.append(f"{path}: {text}" if path else str(text))
        elif response.text:
            message = f"{message}: {response.text[:200]}"
        message = self._redact(message)
        details = [self._redact(d) for d in details]
        common: dict[str, Any] = {
            "remote": REMOTE,
            "status": status,
            "code": code,
            "path": where,
            "details": details,
        }
        if status == 401 and not self._signed:
            message += (
                " (a signature-mode token refuses unsigned requests: set "
                "SYNCWORKER_ZENVIA_SIGNATURE_SECRET or its _FILE to sign them)"
            )
        return error_for_status(response, message, now=self._clock(), **common)

    def _redact(self, text: str) -> str:
        return redact(text, (self._token,))

    def _pages(
        self, path: str, endpoint: str, params: Mapping[str, str | int]
    ) -> Iterator[tuple[list[object], int | None]]:
        """Yield (items, x-total) page by page until a short page or the stated total."""
        previous: list[object] | None = None
        for page in range(1, _MAX_PAGES + 1):
            items, total = self._page(path, endpoint, params, page)
            if items and items == previous:
                raise _malformed(f"{endpoint} page {page} repeats page {page - 1}", endpoint)
            yield items, total
            if len(items) < self._page_size or (
                total is not None and page * self._page_size >= total
            ):
                return
            previous = items
        raise _malformed(f"{endpoint} did not end after {_MAX_PAGES} pages", endpoint)

    def _page(
        self, path: str, endpoint: str, params: Mapping[str, str | int], page: int
    ) -> tuple[list[object], int | None]:
        """One page's items and the `x-total` it states."""
        response = self._call(
            "GET", path, endpoint, params={**params, "page": page, "size": self._page_size}
        )
        items = json_body(response, REMOTE, "page")
        if not isinstance(items, list):
            raise _malformed(f"{endpoint} page {page} is not a JSON array", endpoint)
        return items, _header_int(response, "x-total", endpoint)

    def _first_actions_carry(self, record_id: str, wanted: str) -> bool:
        """Whether an action carries `wanted` (only the create's first action carries its key;
        action ids are not known to start at 1). Actions come in no documented order, so pages
        are read until it shows: one page unless the ticket has over 100 actions."""
        path = f"/tickets/{path_segment(record_id)}/actions"
        try:
            for items, _total in self._pages(path, "GET /tickets/{id}/actions", {}):
                if any(
                    isinstance(item, dict)
                    and isinstance(item.get("description"), str)
                    and wanted in item["description"]
                    for item in items
                ):
                    return True
        except NotFoundError:
            return False
        return False

    def _dates_around(self, moments: Sequence[datetime]) -> list[date]:
        """Each distinct date the send windows touch (in every zone): the moments' own dates
        first, the newest moment's first among equals."""
        ordered: dict[date, None] = {}
        for offset in (timedelta(0), -self._send_window, self._send_window):
            for moment in sorted(moments, reverse=True):
                for zone in self._zones:
                    ordered[(moment + offset).astimezone(zone).date()] = None
        return list(ordered)

    def _sent_within_window(self, record: RemoteRecord, moments: Sequence[datetime]) -> bool:
        created = _parse_time(record.fields["createdAt"], "createdAt", record.id)
        return any(abs(created - moment) <= self._send_window for moment in moments)

    def _dates(self, start: datetime, end: datetime) -> list[date]:
        days: set[date] = set()
        for zone in self._zones:
            first = start.astimezone(zone).date()
            last = max(end.astimezone(zone).date(), first)
            days.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        return sorted(days)

    # -- payloads ---------------------------------------------------------------------------

    def _listed(self, raw: object) -> Listed:
        """A listing's ticket, or, when only its id can be read, the reason it cannot."""
        try:
            return self._record(raw)
        except MalformedResponseError as error:
            ticket = _object(raw, "ticket", None)
            return Unreadable(_identifier(ticket.get("id"), "id", None), error)

    def _record(self, raw: object) -> RemoteRecord:
        ticket = _object(raw, "ticket", None)
        ticket_id = _identifier(ticket.get("id"), "id", None)
        status = _object(ticket.get("status"), "status", ticket_id)
        status_id = status.get("id")
        if not isinstance(status_id, int) or isinstance(status_id, bool):
            raise _field_error("status.id", "an integer", ticket_id)
        status_type = status.get("type")
        if not isinstance(status_type, str):
            raise _field_error("status.type", "a string", ticket_id)
        updated = ticket.get("updatedAt")
        created = _parse_time(ticket.get("createdAt"), "createdAt", ticket_id)
        version = created if updated is None else _parse_time(updated, "updatedAt", ticket_id)
        self._status_types[status_id] = status_type
        clients = ticket.get("clients")
        if clients is None:
            clients = []
        if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
            raise _field_error("clients", "a list of strings", ticket_id)
        fields: NativeFields = {
            "subject": _optional_str(ticket, "subject", ticket_id),
            "type": _optional_str(ticket, "type", ticket_id),
            "status": status_id,
            "statusType": status_type,
            "justification": _ref_id(ticket, "justification", ticket_id),
            "urgency": _ref_id(ticket, "urgency", ticket_id),
            "category": _ref_id(ticket, "category", ticket_id),
            "service": _ref_id(ticket, "service", ticket_id),
            "ownerId": _optional_str(ticket, "ownerId", ticket_id),
            "ownerTeam": _ref_id(ticket, "ownerTeam", ticket_id),
            "clients": list(clients),
            "origin": _optional_str(ticket, "origin", ticket_id),
            "createdAt": ticket.get("createdAt"),
            "updatedAt": updated,
        }
        return RemoteRecord(id=ticket_id, version=version, fields=fields, changed_at=version)

    def _comment(self, raw: object, record_id: str) -> RemoteComment:
        action = _object(raw, "action", record_id)
        action_id = _identifier(action.get("id"), "action.id", record_id)
        kind = action.get("type")
        if kind not in _TICKET_TYPES:
            raise _field_error("action.type", "PUBLIC or INTERNAL", record_id)
        description = action.get("description")
        if description is not None and not isinstance(description, str):
            raise _field_error("action.description", "a string", record_id)
        author = action.get("createdById")
        if author is not None and not isinstance(author, str):
            raise _field_error("action.createdById", "a string", record_id)
        return RemoteComment(
            id=f"{record_id}:{action_id}",
            record_id=record_id,
            body=description or "",
            public=kind == "PUBLIC",
            created_at=_parse_time(action.get("createdAt"), "action.createdAt", record_id),
            author_id=author,
        )


# -- helpers -------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _action_order(comment: RemoteComment) -> tuple[int, str, datetime]:
    """Numeric action id first ("…:2" before "…:10"), then time; a non-numeric id sorts last."""
    action = comment.id.rsplit(":", 1)[-1]
    return (
        (int(action), "", comment.created_at)
        if action.isdigit()
        else (
            1 << 62,
            action,
            comment.created_at,
        )
    )


def _likelihood(record: RemoteRecord, moments: Sequence[datetime]) -> tuple[bool, float, str]:
    """Our own API-created tickets first, then the one created closest to an attempt."""
    created = _parse_time(record.fields["createdAt"], "createdAt", record.id)
    distance = min(abs((created - moment).total_seconds()) for moment in moments)
    return record.fields.get("origin") != API_ORIGIN, distance, record.id


def _keep_newest(found: dict[str, RemoteRecord], record: RemoteRecord) -> None:
    known = found.get(record.id)
    if known is None or record.version > known.version:
        found[record.id] = record


def _contact_emails(raw: object) -> tuple[str, set[str]]:
    """A listed contact's id and e-mail addresses (casefolded), from `channelList` or the
    deprecated `channels`, whichever the API sends."""
    contact = _object(raw, "contact", None)
    contact_id = _identifier(contact.get("id"), "contact.id", None)
    channel_list = contact.get("channelList") or []
    channels = contact.get("channels") or {}
    if not isinstance(channel_list, list):
        raise _field_error("contact.channelList", "a list", None)
    if not isinstance(channels, dict):
        raise _field_error("contact.channels", "an object", None)
    listed = [c.get("id") for c in channel_list if isinstance(c, dict) and c.get("type") == "email"]
    listed.append(channels.get("email"))
    return contact_id, {address.casefold() for address in listed if isinstance(address, str)}


def _malformed(message: str, where: str) -> MalformedResponseError:
    return MalformedResponseError(message, remote=REMOTE, path=where)


def _field_error(name: str, expected: str, ticket_id: str | None) -> MalformedResponseError:
    whose = f"ticket {ticket_id}: " if ticket_id else ""
    return MalformedResponseError(
        f"{whose}field {name!r} is not {expected}", remote=REMOTE, path=name
    )


def _header_int(response: httpx.Response, name: str, where: str) -> int | None:
    raw = response.headers.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise _malformed(f"header {name!r} is not an integer", where) from None


def _object(raw: object, name: str, ticket_id: str | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _field_error(name, "an object", ticket_id)
    return raw


def _identifier(value: object, name: str, ticket_id: str | None) -> str:
    """Ids are strings in v2 (action ids ints); accept either, refuse anything else."""
    if isinstance(value, str) and value:
        return value
    if _is_int(value):
        return str(value)
    raise _field_error(name, "a string or integer id", ticket_id)


def _optional_str(ticket: Mapping[str, Any], name: str, ticket_id: str) -> str | None:
    value = ticket.get(name)
    if value is not None and not isinstance(value, str):
        raise _field_error(name, "a string", ticket_id)
    return value


def _ref_id(ticket: Mapping[str, Any], name: str, ticket_id: str) -> int | None:
    value = ticket.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not _is_int(value.get("id")):
        raise _field_error(f"{name}.id", "an integer", ticket_id)
    ref: int = value["id"]
    return ref


def _parse_time(value: object, name: str, ticket_id: str | None) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # Zenvia always sends `Z`; a zone-less stamp is read as UTC rather than refused.
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    raise _field_error(name, "an ISO 8601 timestamp", ticket_id)


def _refuse(message: str, record_id: str | None = None) -> PermanentError:
    where = f"ticket {record_id}" if record_id else None
    return PermanentError(message, remote=REMOTE, path=where)


def _check_fields(
    fields: NativeFields, record_id: str | None = None, *, clients_required: bool = False
) -> None:
    """Refuse here what the API would refuse: a failed request counts toward its lockout."""
    unknown = sorted(set(fields) - WRITABLE_FIELDS)
    if unknown:
        raise _refuse(
            f"cannot write Zenvia field(s) {', '.join(unknown)}; "
            f"writable: {', '.join(sorted(WRITABLE_FIELDS))}",
            record_id,
        )
    for name, value in fields.items():
        kind = _ATTRIBUTE_OF[name][2]
        if not _valid(kind, value):
            raise _refuse(f"invalid value for Zenvia field {name}: {value!r}", record_id)
    if record_id is not None and "ownerId" in fields and fields["ownerId"] is None:
        raise _refuse(
            "cannot unassign: Zenvia refuses ownerId null (map the owner to an agent, or leave "
            "the owner field out of this change)",
            record_id,
        )
    if record_id is not None and clients_required and fields.get("clients") == []:
        raise _refuse("cannot remove every client: Zenvia requires at least one", record_id)


def _valid(kind: str, value: object) -> bool:
    if kind == "text":
        return isinstance(value, str) and bool(value.strip())
    if kind == "ticket_type":
        return value in _TICKET_TYPES
    if kind == "ref":
        return value is None or _is_int(value)
    if kind == "owner":
        return value is None or isinstance(value, str)
    if kind == "clients":
        return isinstance(value, list) and all(isinstance(c, str) for c in value)
    return False  # pragma: no cover


def _encode(kind: str, value: Any) -> Any:
    if kind == "ref":
        return None if value is None else {"id": value}
    if kind == "clients":
        return list(value)
    return value


def _ticket_body(fields: NativeFields) -> dict[str, Any]:
    """The POST /tickets body for native `fields` (None values are left out)."""
    _check_fields(fields)
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        _attr, key, kind = _ATTRIBUTE_OF[name]
        body[key] = _encode(kind, value)
    return body
