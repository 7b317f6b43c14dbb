"""Salesforce Cases over the REST API with httpx (facts: reference/crm-apis.md, Salesforce).

Records are SOQL rows minus `attributes`: native field values exactly as Salesforce sends them
(datetimes stay `2013-05-20T20:49:32.000+0000` strings; the mapping gives them meaning).
A record's version is its parsed `SystemModstamp` (system-set, unlike LastModifiedDate).

Facts of a real org it copes with (docs/real-apis.md, Salesforce):
- Every write says `Sforce-Auto-Assign: FALSE`, so an active Case assignment rule never takes
  a Case from its owner (`assignment_rules_on_create` lets the rules run on creates only).
- Client credentials work only on the org's My Domain: a login URL on login/test.salesforce.com
  is refused at construction, and the server's own refusal names the same fix.
- QUERY_TIMEOUT: a listing is split, never retried whole: `changed_since` halves its
  SystemModstamp range (one busy second: Id chunks), `iter_all` walks Id keyset chunks
  (`WHERE Id > last ORDER BY Id LIMIT n`).
- No listing depends on an order Salesforce may not keep (SOQL orders ids case-insensitively):
  changes are sorted here, comment stamps are folded in through a dict keyed by Case Id.
- Ids are taken in 15 or 18 characters (any case for 18) and sent as 18 (`salesforce_ids`).

Creates are idempotent by construction: `create` upserts on the External ID + Unique field
(`Zenvia_Ticket_Id__c` by default) with the idempotency key as its value, so a retry after a
lost response updates the record the first attempt made instead of creating another.

Authentication: OAuth 2 client credentials (token cached; on `INVALID_SESSION_ID` one fresh
token is fetched and the request sent once more), or a static access token (no re-auth: a 401
is an AuthError). Secrets live in `SecretStr`, travel only in the `Authorization` header or the
token request body, and are redacted from every message this module produces.

Every failure is classified here (see connectors/errors.py; the rules both remotes share are
in connectors/wire.py); the only automatic retries are the re-auth above and
connectors/http.py's one retry of an idempotent request on a dropped pooled connection (GETs
and the PATCHes, which set values and so may be sent twice).

Request costs (each counts against the org's daily API quota, see `last_quota`):
- `get` 1; `update` 1; `create` 2 (upsert + GET); `add_comment` 1;
  `find_created` 1; `list_comments` 1 per 2,000 comments;
- `changed_since` 2 + 1 per 2,000 changed cases (+ 1 when comments changed on other cases),
  + 1 per QUERY_TIMEOUT (each splits a range in two; one second that still times out is read
  in Id keyset chunks);
- `iter_all` 1 per 2,000 cases + 1 per 2,000 comments (at least 2); on QUERY_TIMEOUT 1 more per
  10,000-row keyset chunk (+ 1 per timeout, each halving the chunk);
- `update_many` / `upsert_many` 1 per 200 records.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

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
    AuthError,
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)
from syncworker.connectors.salesforce_ids import to_id18
from syncworker.connectors.salesforce_login import MY_DOMAIN_HINT, check_client_credentials_url
from syncworker.connectors.salesforce_quota import api_usage
from syncworker.connectors.wire import (
    error_for_status,
    json_body,
    maybe_json,
    path_segment,
    redact,
    utc,
)
from syncworker.model import NativeFields, RemoteComment, RemoteRecord, Side

__all__ = [
    "COLLECTION_LIMIT",
    "DEFAULT_CASE_FIELDS",
    "SalesforceConnector",
    "UpsertOutcome",
]

log = logging.getLogger(__name__)

REMOTE = "salesforce"
COLLECTION_LIMIT = 200  # records per sObject Collections call
COMMENT_MAX_BYTES = 4000
QUOTA_RETRY_AFTER = 300.0  # the daily quota is a rolling 24 h window: look again in 5 minutes
# a listed Case's synthetic field: its comments changed since the listing's start (see
# `changed_since`); never mapped, never written
RECENT_COMMENTS = "_recent_comment_ids"
PARENT_CHUNK = 200  # ids per `WHERE Id IN (...)`, keeping the query URL well under 16 KB
KEYSET_CHUNK = 10_000  # rows per keyset query after a QUERY_TIMEOUT: five 2,000-row batches
MIN_KEYSET_CHUNK = 50  # a timeout this small is not about size: give up (transient)
NO_AUTO_ASSIGN = {"Sforce-Auto-Assign": "FALSE"}
_MAX_PAGES = 100_000
_OPEN_GATE = OpenGate()

DEFAULT_CASE_FIELDS: tuple[str, ...] = (
    "Id",
    "CaseNumber",
    "Subject",
    "Description",
    "Status",
    "Priority",
    "Origin",
    "Type",
    "Reason",
    "OwnerId",
    "ContactId",
    "AccountId",
    "IsClosed",
    "ClosedDate",
    "IsEscalated",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)
COMMENT_FIELDS = ("Id", "ParentId", "CommentBody", "IsPublished", "CreatedDate", "CreatedById")

TOKEN_ENDPOINT = "POST oauth2/token"  # noqa: S105 (an endpoint label)
# errorCodes that say "try again later" even though the status is 4xx
_TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "INVALID_QUERY_LOCATOR",  # the server cursor expired: run the query again
        "QUERY_TIMEOUT",
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",  # this item was fine; another one failed
    }
)
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_VERSION = re.compile(r"\d{2,3}\.0")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}(?:Z|[+-]\d\d:?\d\d)")


@dataclass(frozen=True)
class UpsertOutcome:
    """One successful upsert: the record's Id and whether this call created it."""

    id: str
    created: bool


_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _TokenAnswer(_Strict):
    access_token: str
    instance_url: str


class _QueryPage(_Strict):
    totalSize: int
    done: bool
    nextRecordsUrl: str | None = None
    records: list[dict[str, Any]]


class _CreateAnswer(_Strict):
    id: str
    success: bool


class _ItemError(_Strict):
    statusCode: str | None = None  # sObject Collections
    errorCode: str | None = None  # single-record error arrays
    message: str = ""
    fields: list[str] = []


class _SaveResult(_Strict):
    id: str | None = None
    success: bool
    errors: list[_ItemError] = []
    created: bool | None = None


class SalesforceConnector:
    """The `CrmConnector` for Salesforce Cases (and their CaseComments).

    `client` is a pooled `httpx.Client` holding the timeouts (closed by `close()`).
    `login_url` is where OAuth tokens come from: the org's My Domain (client credentials are
    refused on login/test.salesforce.com); `instance_url`, when given, overrides the one the
    token answer names and is required with a static `access_token`.
    `assignment_rules_on_create` lets the org's Case assignment rules pick the owner of the
    Cases this connector creates (never on updates). `clock` gives "now" when a QUERY_TIMEOUT
    splits an open-ended range. `fields` are the Case fields read everywhere
    (`Id`, `SystemModstamp`, `IsDeleted` are always added, and the external id field too).
    """

    side: Side = "crm"
    stamp_precision = timedelta(seconds=1)  # SystemModstamp stores whole seconds
    listing_lag = timedelta(0)  # a committed change is queryable at once
    listing_ordered = True
    system = "salesforce"

    def __init__(
        self,
        client: httpx.Client,
        *,
        login_url: str | None = None,
        instance_url: str | None = None,
        client_id: str | None = None,
        client_secret: SecretStr | str | None = None,
        access_token: SecretStr | str | None = None,
        api_version: str = "62.0",
        external_id_field: str = "Zenvia_Ticket_Id__c",
        fields: Sequence[str] = DEFAULT_CASE_FIELDS,
        gate: RequestGate = _OPEN_GATE,
        assignment_rules_on_create: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not _VERSION.fullmatch(api_version) or float(api_version) < 46:
            raise ValueError(
                f"api_version must look like '62.0' and be 46.0 or later: {api_version!r}"
            )
        for name in (external_id_field, *fields):
            if not _NAME.fullmatch(name):
                raise ValueError(f"not a Salesforce field name: {name!r}")
        secret = _secret(client_secret)
        token = _secret(access_token)
        if token is None and (not client_id or secret is None):
            raise ValueError(
                "give either access_token (+ instance_url) or client_id and client_secret"
            )
        if token is not None and not instance_url:
            raise ValueError("a static access_token needs instance_url")
        if token is None:
            if not login_url:
                raise ValueError(f"client credentials need login_url: {MY_DOMAIN_HINT}")
            check_client_credentials_url(login_url)
        self._client = client
        self._login_url = (login_url or "").rstrip("/")
        self._configured_instance = instance_url.rstrip("/") if instance_url else None
        self._instance = self._configured_instance
        self._client_id = client_id
        self._client_secret = secret
        self._static = token is not None
        self._token: SecretStr | None = token
        self._token_lock = threading.Lock()
        self._version = api_version
        self._external = external_id_field
        self._fields = tuple(
            dict.fromkeys(("Id", *fields, external_id_field, "SystemModstamp", "IsDeleted"))
        )
        self._gate = gate
        self._create_headers = {} if assignment_rules_on_create else NO_AUTO_ASSIGN
        self._clock = clock
        self.requests = RequestCounter()
        self.last_quota: tuple[int, int] | None = None

    def __repr__(self) -> str:
        auth = "static token" if self._static else f"client credentials via {self._login_url}"
        return (
            f"SalesforceConnector(instance_url={self._instance!r}, api_version={self._version!r}, "
            f"auth={auth!r}, secrets='**********')"
        )

    # -- reading ----------------------------------------------------------------------------

    def get(self, record_id: str) -> RemoteRecord:
        record_id = _id18(record_id)
        response = self._call(
            "GET",
            f"sobjects/Case/{record_id}",
            "GET sobjects/Case/{id}",
            params={"fields": ",".join(self._fields)},
        )
        return self._with_comment_versions(
            [self._record(_object(json_body(response, REMOTE), "Case", record_id))]
        )[0]

    def confirm_deleted(self, record_id: str) -> bool:
        """Whether queryAll shows the Case deleted: in the recycle bin, or merged into another
        Case (a merge deletes the losing record). No row (never existed, purged, or not
        visible to us) proves nothing: False. One request per record; the `deleted/` feed
        would answer many at once but only for 15 days back, and not by id."""
        soql = f"SELECT Id, IsDeleted FROM Case WHERE Id = {_soql_string(_id18(record_id))}"
        return any(row.get("IsDeleted") is True for row in self.query(soql, include_deleted=True))

    def changed_at(self, fields: NativeFields) -> datetime | None:
        """The Case's own SystemModstamp: a CaseComment never moves it."""
        stamp = fields.get("SystemModstamp")
        return (
            _parse_datetime(stamp, "SystemModstamp", str(fields.get("Id", "Case")))
            if stamp
            else None
        )

    def _with_comment_versions(self, records: list[RemoteRecord]) -> list[RemoteRecord]:
        """A Case's version includes its comments': a new CaseComment does not touch its Case."""
        newest: dict[str, datetime] = {}
        ids = [r.id for r in records]
        for chunk in _chunks(ids, PARENT_CHUNK):
            soql = (
                "SELECT ParentId, SystemModstamp FROM CaseComment WHERE ParentId IN ("
                + ", ".join(_soql_string(i) for i in chunk)
                + ")"
            )
            _note_newest(newest, self.query(soql, include_deleted=True))
        return _fold_comment_versions(records, newest)

    def iter_all(self) -> Iterator[Listed]:
        """Every Case not in the recycle bin, streamed 2,000 per request, its version folding
        in its newest comment's.

        The comments' newest stamps are read first (one streamed queryAll, kept as a dict by
        Case Id: no order assumed), then the Cases stream. Either listing that meets
        QUERY_TIMEOUT walks Id keyset chunks instead (see `_scan`).
        """
        newest: dict[str, datetime] = {}
        _note_newest(newest, self._scan("CaseComment", "Id, ParentId, SystemModstamp", True))
        for row in self._scan("Case", ", ".join(self._fields), False):
            record = self._listed(row)
            if isinstance(record, RemoteRecord) and record.id in newest:
                [record] = _fold_comment_versions([record], newest)
            yield record

    def _scan(self, sobject: str, columns: str, include_deleted: bool) -> Iterator[dict[str, Any]]:
        """Every row of `sobject`: one query, or, when that meets QUERY_TIMEOUT, Id keyset
        chunks (`_keyset`)."""
        select = f"SELECT {columns} FROM {sobject}"
        whole = self.query(select, include_deleted=include_deleted)
        try:
            first = next(whole, None)
        except TransientError as error:
            if error.code != "QUERY_TIMEOUT":
                raise
            log.info("salesforce: %s listing timed out; reading it in Id chunks", sobject)
            yield from self._keyset(select, None, include_deleted)
            return
        yield from _prepend(first, whole)

    def _keyset(
        self, select: str, where: str | None, include_deleted: bool
    ) -> Iterator[dict[str, Any]]:
        """`select` (its columns include Id) `WHERE where AND Id > last ORDER BY Id LIMIT n`,
        chunk after chunk; n starts at 10,000 and halves on each QUERY_TIMEOUT. The keyset
        follows the server's own order: `last` is the last row it returned, never compared here."""
        chunk = KEYSET_CHUNK
        after: str | None = None
        while True:
            conditions = [where] if where else []
            if after is not None:
                conditions.append(f"Id > {_soql_string(after)}")
            clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            rows = self.query(
                f"{select}{clause} ORDER BY Id LIMIT {chunk}", include_deleted=include_deleted
            )
            try:
                first = next(rows, None)
            except TransientError as error:
                if error.code != "QUERY_TIMEOUT" or chunk <= MIN_KEYSET_CHUNK:
                    raise
                chunk //= 2
                continue
            count = 0
            for row in _prepend(first, rows):
                count += 1
                after = _row_id(row, select)
                yield row
            if count < chunk:
                return

    def changed_since(self, since: datetime) -> Iterator[Listed]:
        """Cases whose SystemModstamp, or one of whose comments' SystemModstamp, is ≥ `since`,
        deleted ones included (`deleted=True`), in ascending (version, id) order (sorted here:
        no server order is trusted).

        Order of work: the comments changed since then name their parents and carry the only
        comment stamps that can move a listed Case's version (an older comment is older than
        `since`, so older than the Case's own stamp or than that newer comment); the parents
        not themselves changed (SystemModstamp < since: they sort first) are read in one
        `Id IN (...)` query; then one `queryAll` reads every changed Case, live or deleted.
        A query meeting QUERY_TIMEOUT is split into SystemModstamp ranges, down to one second,
        then Id chunks (`_ranged`). Each Case's fields also name its comments changed since
        `since` (`RECENT_COMMENTS`): a comment committed late carries a stamp older than the
        version already synced, and only this list shows the poll that something changed.
        """
        since = utc(since, "since")
        literal = _soql_datetime(since)
        columns = ", ".join(self._fields)
        newest: dict[str, datetime] = {}
        changed_comments = self._ranged(
            "SELECT Id, ParentId, SystemModstamp FROM CaseComment", since
        )
        _note_newest(newest, (c for c in changed_comments if isinstance(c.get("ParentId"), str)))
        parents = sorted(newest)
        earlier: list[Listed] = []
        for start in range(0, len(parents), PARENT_CHUNK):
            ids = ", ".join(_soql_string(i) for i in parents[start : start + PARENT_CHUNK])
            soql = f"SELECT {columns} FROM Case WHERE Id IN ({ids}) AND SystemModstamp < {literal}"
            earlier.extend(self._listed(row) for row in self.query(soql))
        later = [self._listed(row) for row in self._ranged(f"SELECT {columns} FROM Case", since)]
        yield from (item for item in earlier + later if isinstance(item, Unreadable))
        records = [item for item in earlier + later if isinstance(item, RemoteRecord)]
        seen = _comment_ids_by_parent(changed_comments)
        records = [
            replace(r, fields={**r.fields, RECENT_COMMENTS: seen.get(r.id, [])}) for r in records
        ]
        yield from sorted(_fold_comment_versions(records, newest), key=_order)

    def changed_pages(
        self, since: datetime, resume: Mapping[str, Any] | None = None
    ) -> Iterator[ListingPage]:
        """`changed_since` as one page: it is ordered, so a stopped poll resumes from its
        cursor, and `resume` is never needed."""
        yield ListingPage(list(self.changed_since(since)))

    def _ranged(self, select: str, since: datetime) -> list[dict[str, Any]]:
        """queryAll `select` (its columns include Id) over SystemModstamp ≥ since. A range that
        meets QUERY_TIMEOUT is read as two halves; one second (Salesforce's precision) that
        still does is read in Id keyset chunks."""
        found: list[dict[str, Any]] = []
        pending: list[tuple[datetime, datetime | None]] = [(since, None)]
        while pending:
            low, high = pending.pop(0)
            condition = f"SystemModstamp >= {_soql_datetime(low)}"
            if high is not None:
                condition += f" AND SystemModstamp < {_soql_datetime(high)}"
            try:
                found.extend(list(self.query(f"{select} WHERE {condition}", include_deleted=True)))
            except TransientError as error:
                if error.code != "QUERY_TIMEOUT":
                    raise
                top = high if high is not None else max(self._clock(), low + timedelta(seconds=2))
                middle = (low + (top - low) / 2).replace(microsecond=0)
                if middle > low:
                    log.info("salesforce: changes since %s timed out; splitting at %s", low, middle)
                    pending[:0] = [(low, middle), (middle, high)]
                    continue
                log.info("salesforce: changes at %s timed out; reading them in Id chunks", low)
                found.extend(list(self._keyset(select, condition, True)))
        return found

    def find_created(
        self, idempotency_key: str, *, around: datetime, attempts: Sequence[datetime] = ()
    ) -> RemoteRecord | None:
        """The Case an earlier `create` with this key made (deleted or not), by the external id
        field; `around` and `attempts` are not needed since the key is indexed."""
        soql = (
            f"SELECT {', '.join(self._fields)} FROM Case "
            f"WHERE {self._external} = {_soql_string(idempotency_key)} ORDER BY IsDeleted, Id"
        )
        found = [self._record(row) for row in self.query(soql, include_deleted=True)]
        if len(found) > 1:
            log.warning("salesforce: %d Cases carry one idempotency key", len(found))
        return found[0] if found else None

    def query(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Run SOQL (`queryAll` with `include_deleted`) and stream its rows minus `attributes`,
        following `nextRecordsUrl`. `batch_size` (200 to 2,000) is advisory, as in Salesforce."""
        resource = "queryAll" if include_deleted else "query"
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else {}
        response = self._call(
            "GET", resource, f"GET {resource}", params={"q": soql}, headers=headers
        )
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = _parse(_QueryPage, json_body(response, REMOTE), f"GET {resource}")
            for row in page.records:
                yield {key: value for key, value in row.items() if key != "attributes"}
            if page.done:
                return
            following = page.nextRecordsUrl
            if not following or not following.startswith("/services/data/"):
                raise _malformed(f"{resource}: not done, but no usable nextRecordsUrl", resource)
            if following in seen:
                raise _malformed(f"{resource}: nextRecordsUrl repeats {following}", resource)
            seen.add(following)
            response = self._call("GET", following, f"GET {resource}/{{locator}}", headers=headers)
        raise _malformed(f"{resource} did not end after {_MAX_PAGES} batches", resource)

    def list_comments(self, record_id: str) -> list[RemoteComment]:
        soql = (
            f"SELECT {', '.join(COMMENT_FIELDS)} FROM CaseComment "
            f"WHERE ParentId = {_soql_string(_id18(record_id))} ORDER BY CreatedDate, Id"
        )
        return [self._comment(row) for row in self.query(soql)]

    # -- writing ----------------------------------------------------------------------------

    def create(
        self, fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord:
        """Upsert on the external id field = `idempotency_key`, then read the record back.

        `description` fills `Description` unless `fields` sets it. Sending this twice (say,
        after a TransientError) never makes a second Case: the second call updates the first.
        """
        body = self._body(fields)
        if description and "Description" not in body:
            body["Description"] = description
        response = self._call(
            "PATCH",
            f"sobjects/Case/{self._external}/{path_segment(idempotency_key)}",
            f"PATCH sobjects/Case/{self._external}/{{key}}",
            json=body,
            headers=self._create_headers,
            idempotent=True,
        )
        answer = _parse(_SaveResult, json_body(response, REMOTE), "upsert")
        if not answer.id:
            raise _malformed("upsert answered without an id", "upsert")
        if answer.created is False:
            log.info("salesforce: Case for key %s already existed; updated it", idempotency_key)
        try:
            return self.get(answer.id)
        except RateLimitedError as exc:  # the Case exists: a refused read is no refused write
            raise TransientError(
                f"Case {answer.id} upserted; reading it back was refused: {exc.message}",
                remote=REMOTE,
                status=exc.status,
                code=exc.code,
                path=exc.path,
            ) from exc

    def requests_to_update(self, changes: NativeFields) -> int:
        """One PATCH of the record carries every field."""
        return int(bool(changes))

    def update(
        self,
        record_id: str,
        changes: NativeFields,
        *,
        landed: Callable[[NativeFields], None] | None = None,
    ) -> None:
        """One PATCH of exactly `changes` (nothing is sent when it is empty)."""
        if not changes:
            return
        self._call(
            "PATCH",
            f"sobjects/Case/{_id18(record_id)}",
            "PATCH sobjects/Case/{id}",
            json=self._body(changes, keep_external=True),
            headers=NO_AUTO_ASSIGN,
            idempotent=True,
        )
        if landed is not None:
            landed(changes)

    def update_many(self, changes: Mapping[str, NativeFields]) -> dict[str, RemoteError | None]:
        """Update several Cases through sObject Collections (200 per request, not all-or-none).

        Returns, per record id, None on success or that record's classified error. A failure of
        a whole request (transient, rate limit, auth) is raised: nothing of that chunk applied.
        """
        results: dict[str, RemoteError | None] = {}
        pending = [(record_id, body) for record_id, body in changes.items() if body]
        results.update({record_id: None for record_id, body in changes.items() if not body})
        for chunk in _chunks(pending, COLLECTION_LIMIT):
            records = [
                {
                    "attributes": {"type": "Case"},
                    **self._body(body, keep_external=True),
                    "Id": _id18(rid),
                }
                for rid, body in chunk
            ]
            answers = self._collection(
                "composite/sobjects", "PATCH composite/sobjects", records, len(chunk)
            )
            for (record_id, _body), answer in zip(chunk, answers, strict=True):
                results[record_id] = None if answer.success else self._item_error(answer, record_id)
        return results

    def upsert_many(
        self, items: Sequence[tuple[str, NativeFields]]
    ) -> dict[str, UpsertOutcome | RemoteError]:
        """Create-or-update several Cases keyed by idempotency key (the external id value),
        200 per request; per key an `UpsertOutcome` or that record's classified error."""
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("upsert_many: each idempotency key may appear once")
        results: dict[str, UpsertOutcome | RemoteError] = {}
        for chunk in _chunks(list(items), COLLECTION_LIMIT):
            records = [
                {"attributes": {"type": "Case"}, **self._body(body), self._external: key}
                for key, body in chunk
            ]
            answers = self._collection(
                f"composite/sobjects/Case/{self._external}",
                f"PATCH composite/sobjects/Case/{self._external}",
                records,
                len(chunk),
            )
            for (key, _body), answer in zip(chunk, answers, strict=True):
                if answer.success and answer.id:
                    results[key] = UpsertOutcome(answer.id, bool(answer.created))
                else:
                    results[key] = self._item_error(answer, key)
        return results

    def add_comment(self, record_id: str, body: str, *, public: bool) -> str:
        """POST a CaseComment with exactly `body`; its id.

        CommentBody holds 4,000 bytes: a longer body is cut, ending in "…". A TransientError
        means the outcome is unknown: look for the text in `list_comments` before adding it
        again. No read-back: a refused read after the POST landed would look like a refused
        POST, and the comment would be added twice.
        """
        text = _fit_comment(body)
        response = self._call(
            "POST",
            "sobjects/CaseComment",
            "POST sobjects/CaseComment",
            json={"ParentId": _id18(record_id), "CommentBody": text, "IsPublished": public},
            headers=NO_AUTO_ASSIGN,
        )
        return _parse(_CreateAnswer, json_body(response, REMOTE), "POST sobjects/CaseComment").id

    # -- the paired ticket (`CrmConnector`) -------------------------------------------------

    def note_ticket(self, record_id: str, ticket_id: str) -> None:
        """The ticket id goes in the external id field: the key our Case creates upsert on,
        so a Case made from a ticket holds it from the start."""
        self.update(record_id, {self._external: ticket_id})

    def noted_ticket(self, record: RemoteRecord) -> str | None:
        ticket_id = record.fields.get(self._external)
        return str(ticket_id) if ticket_id else None

    def close(self) -> None:
        self._client.close()

    # -- authentication ---------------------------------------------------------------------

    def _bearer(self, stale: SecretStr | None) -> SecretStr:
        """The current token; a new one when there is none or it is `stale` (refused)."""
        with self._token_lock:
            if self._token is not None and (self._static or self._token is not stale):
                return self._token
            self._token = self._fetch_token()
            return self._token

    def _fetch_token(self) -> SecretStr:
        assert self._client_id is not None  # __init__ refuses OAuth without both
        assert self._client_secret is not None
        where = "POST /services/oauth2/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        response = http.send(
            self._client,
            "POST",
            f"{self._login_url}/services/oauth2/token",
            endpoint=TOKEN_ENDPOINT,
            remote=REMOTE,
            gate=self._gate,
            counter=self.requests,
            data=form,
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status != 200:
            payload = maybe_json(response)
            code = message = None
            if isinstance(payload, dict):
                code = payload.get("error") if isinstance(payload.get("error"), str) else None
                described = payload.get("error_description")
                message = described if isinstance(described, str) else None
            text = self._redact(message or f"token request refused (HTTP {status})")
            common: dict[str, Any] = {
                "remote": REMOTE,
                "status": status,
                "code": code,
                "path": where,
            }
            if status == 429:
                wait = http.retry_after_seconds(response.headers.get("Retry-After"))
                raise RateLimitedError(text, retry_after=wait, **common)
            if code == "invalid_grant" and "domain" in text:
                text = f"{text}: {self._login_url} cannot issue client-credentials tokens; "
                text += MY_DOMAIN_HINT
            if status == 408 or status >= 500:
                raise TransientError(text, **common)
            raise AuthError(text, **common)
        answer = _parse(_TokenAnswer, json_body(response, REMOTE), where)
        if not answer.instance_url.startswith(("https://", "http://")):
            raise _malformed("token answer has no usable instance_url", where)
        if self._configured_instance is None:
            self._instance = answer.instance_url.rstrip("/")
        log.debug("salesforce: obtained an access token for %s", self._instance)
        return SecretStr(answer.access_token)

    # -- transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one API request (relative to /services/data/vXX.X/, or an absolute
        /services/… path); re-authenticate once on INVALID_SESSION_ID; raise classified."""
        refused: SecretStr | None = None
        for attempt in (1, 2):
            token = self._bearer(refused)
            url = (
                path if path.startswith("/services/") else f"/services/data/v{self._version}/{path}"
            )
            response = http.send(
                self._client,
                method,
                f"{self._instance}{url}",
                endpoint=endpoint,
                remote=REMOTE,
                gate=self._gate,
                counter=self.requests,
                params=params,
                json=json,
                headers={
                    "Authorization": f"Bearer {token.get_secret_value()}",
                    "Accept": "application/json",
                    **(headers or {}),
                },
                idempotent=idempotent,
            )
            self._note_quota(response)
            if 200 <= response.status_code < 300:
                return response
            if response.status_code == 401 and attempt == 1 and not self._static:
                log.info("salesforce: session refused on %s; re-authenticating once", endpoint)
                refused = token
                continue
            raise self._failure(response, f"{method} {response.request.url.path}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_quota(self, response: httpx.Response) -> None:
        self.last_quota = api_usage(response) or self.last_quota

    def _failure(self, response: httpx.Response, where: str) -> RemoteError:
        """Classify a non-2xx answer, keeping Salesforce's errorCode, message and fields."""
        status = response.status_code
        payload = maybe_json(response)
        code: str | None = None
        message = response.reason_phrase or f"HTTP {status}"
        details: list[str] = []
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            first = payload[0]
            code = first.get("errorCode") if isinstance(first.get("errorCode"), str) else None
            if isinstance(first.get("message"), str) and first["message"]:
                message = first["message"]
            fields = first.get("fields")
            if isinstance(fields, list):
                details = [f"field {name}" for name in fields if isinstance(name, str)]
            details += [
                f"{item.get('errorCode')}: {item.get('message')}"
                for item in payload[1:]
                if isinstance(item, dict)
            ]
        elif response.text and status != 300:
            message = f"{message}: {response.text[:200]}"
        common: dict[str, Any] = {
            "remote": REMOTE,
            "status": status,
            "code": code,
            "path": where,
            "details": [self._redact(d) for d in details],
        }
        message = self._redact(message.strip())
        if status == 300:
            urls = payload if isinstance(payload, list) else []
            common["code"] = "MULTIPLE_CHOICES"
            common["details"] = [u.rsplit("/", 1)[-1] for u in urls if isinstance(u, str)]
            return PermanentError("several records match this external id", **common)
        if code == "REQUEST_LIMIT_EXCEEDED" and status in (403, 429):
            header = response.headers.get("Retry-After")
            wait = http.retry_after_seconds(header, default=QUOTA_RETRY_AFTER)
            return RateLimitedError(message, retry_after=wait, **common)
        return error_for_status(
            response,
            message,
            not_found=code in _NOT_FOUND_CODES,
            transient=code in _TRANSIENT_CODES,
            **common,
        )

    def _item_error(self, answer: _SaveResult, record: str) -> RemoteError:
        """Classify one sObject Collections item's failure."""
        first = answer.errors[0] if answer.errors else _ItemError(message="failed without errors")
        code = first.statusCode or first.errorCode
        common: dict[str, Any] = {
            "remote": REMOTE,
            "code": code,
            "path": f"record {record}",
            "details": [f"field {name}" for name in first.fields]
            + [f"{e.statusCode or e.errorCode}: {e.message}" for e in answer.errors[1:]],
        }
        message = self._redact(first.message or "failed")
        if code == "REQUEST_LIMIT_EXCEEDED":
            return RateLimitedError(message, retry_after=QUOTA_RETRY_AFTER, **common)
        if code in _NOT_FOUND_CODES:
            return NotFoundError(message, **common)
        if code in _TRANSIENT_CODES:
            return TransientError(message, **common)
        return PermanentError(message, **common)

    def _collection(
        self, path: str, endpoint: str, records: list[dict[str, Any]], expected: int
    ) -> list[_SaveResult]:
        response = self._call(
            "PATCH",
            path,
            endpoint,
            json={"allOrNone": False, "records": records},
            headers=NO_AUTO_ASSIGN,
            idempotent=True,
        )
        payload = json_body(response, REMOTE)
        if not isinstance(payload, list) or len(payload) != expected:
            raise _malformed(f"{endpoint}: expected {expected} results", endpoint)
        return [_parse(_SaveResult, item, endpoint) for item in payload]

    def _redact(self, text: str) -> str:
        return redact(text, (self._token, self._client_secret))

    # -- payloads ---------------------------------------------------------------------------

    def _body(self, fields: NativeFields, *, keep_external: bool = False) -> dict[str, Any]:
        """A write body: field names checked; the external id field only where allowed
        (in `create`/`upsert_many` it is the key itself)."""
        body: dict[str, Any] = {}
        for name, value in fields.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise PermanentError(f"not a Salesforce field name: {name!r}", remote=REMOTE)
            if name.lower() == self._external.lower() and not keep_external:
                raise PermanentError(
                    f"{name} is the idempotency key's field; it cannot be set here",
                    remote=REMOTE,
                )
            body[name] = value
        return body

    def _listed(self, row: Mapping[str, Any]) -> Listed:
        """A listed Case, or, when only its Id can be read, the reason it cannot."""
        try:
            return self._record(row)
        except MalformedResponseError as error:
            record_id = row.get("Id")
            if not isinstance(record_id, str) or not record_id:
                raise
            return Unreadable(record_id, error)

    def _record(self, row: Mapping[str, Any]) -> RemoteRecord:
        record_id = row.get("Id")
        if not isinstance(record_id, str) or not record_id:
            raise _malformed("a Case row has no Id", "Case")
        deleted = row.get("IsDeleted", False)
        if not isinstance(deleted, bool):
            raise _malformed(f"Case {record_id}: IsDeleted is not a boolean", "Case")
        version = _parse_datetime(row.get("SystemModstamp"), "SystemModstamp", record_id)
        fields = {key: value for key, value in row.items() if key != "attributes"}
        return RemoteRecord(
            id=record_id, version=version, fields=fields, deleted=deleted, changed_at=version
        )

    def _comment(self, row: Mapping[str, Any]) -> RemoteComment:
        comment_id, parent = row.get("Id"), row.get("ParentId")
        if not isinstance(comment_id, str) or not isinstance(parent, str):
            raise _malformed("a CaseComment row lacks Id or ParentId", "CaseComment")
        body, public, author = (
            row.get("CommentBody"),
            row.get("IsPublished"),
            row.get("CreatedById"),
        )
        if body is not None and not isinstance(body, str):
            raise _malformed(f"CaseComment {comment_id}: CommentBody is not text", "CaseComment")
        if not isinstance(public, bool):
            raise _malformed(
                f"CaseComment {comment_id}: IsPublished is not a boolean", "CaseComment"
            )
        if author is not None and not isinstance(author, str):
            raise _malformed(f"CaseComment {comment_id}: CreatedById is not text", "CaseComment")
        return RemoteComment(
            id=comment_id,
            record_id=parent,
            body=body or "",
            public=public,
            created_at=_parse_datetime(row.get("CreatedDate"), "CreatedDate", comment_id),
            author_id=author,
        )


# -- helpers -------------------------------------------------------------------------------


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    return secret if secret.get_secret_value() else None


def _soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal, rounded DOWN to Salesforce's milliseconds (so ≥ misses nothing)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _soql_string(value: str) -> str:
    """A quoted SOQL string literal with backslashes and quotes escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def _order(record: RemoteRecord) -> tuple[datetime, str]:
    return record.version, record.id


def _prepend(
    first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    if first is not None:
        yield first
        yield from rest


def _row_id(row: Mapping[str, Any], query: str) -> str:
    value = row.get("Id")
    if not isinstance(value, str) or not value:
        raise _malformed(f"a row of `{query}` has no Id ({value!r})", "Id")
    return value


def _id18(value: str) -> str:
    """An id as Salesforce returns it (18 characters); a malformed one is a permanent error."""
    try:
        return to_id18(value)
    except ValueError as exc:
        raise PermanentError(str(exc), remote=REMOTE, code="MALFORMED_ID") from exc


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fit_comment(body: str) -> str:
    """The comment cut to CommentBody's 4,000 bytes, ending in "…" (`engine.is_copy_of` still
    knows it as ours)."""
    try:
        body.encode()
    except UnicodeEncodeError as exc:  # half an emoji (a lone surrogate) copied from elsewhere
        raise PermanentError(
            f"the comment cannot be encoded as UTF-8 ({exc.reason})",
            remote=REMOTE,
            path="CommentBody",
        ) from exc
    if len(body.encode()) <= COMMENT_MAX_BYTES:
        return body
    room = COMMENT_MAX_BYTES - len("…".encode())
    return body.encode()[:room].decode("utf-8", "ignore") + "…"


def _parse_datetime(value: object, name: str, record_id: str) -> datetime:
    """`2013-05-20T20:49:32.000+0000` → aware UTC; the shape is checked by a regex and parsed
    by `fromisoformat`, ten times quicker than `strptime` (a reconcile parses every stamp)."""
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    raise _malformed(f"{record_id}: {name} is not a Salesforce datetime ({value!r})", name)


def _parent_id(row: dict[str, Any]) -> str:
    value = row.get("ParentId")
    if not isinstance(value, str) or not value:
        raise _malformed(f"a CaseComment row has no ParentId ({value!r})", "ParentId")
    return value


def _malformed(message: str, where: str) -> MalformedResponseError:
    return MalformedResponseError(message, remote=REMOTE, path=where)


def _comment_ids_by_parent(comments: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for row in comments:
        parent, comment_id = row.get("ParentId"), row.get("Id")
        if isinstance(parent, str) and isinstance(comment_id, str):
            ids.setdefault(parent, []).append(comment_id)
    return {parent: sorted(found) for parent, found in ids.items()}


def _note_newest(newest: dict[str, datetime], comments: Iterable[dict[str, Any]]) -> None:
    """Keep, per parent Case, the newest SystemModstamp among these CaseComment rows."""
    for row in comments:
        parent = _parent_id(row)
        stamp = _parse_datetime(row.get("SystemModstamp"), "SystemModstamp", parent)
        if parent not in newest or stamp > newest[parent]:
            newest[parent] = stamp


def _fold_comment_versions(
    records: list[RemoteRecord], newest: Mapping[str, datetime]
) -> list[RemoteRecord]:
    """A Case's version is its own stamp or its newest comment's, whichever is later."""
    return [replace(r, version=max(r.version, newest.get(r.id, r.version))) for r in records]


def _object(payload: object, what: str, record_id: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _malformed(f"{what} {record_id}: answer is not a JSON object", what)
    return payload


def _parse(model: type[_M], payload: object, where: str) -> _M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise _malformed(f"unexpected answer shape ({problems})", where) from exc
