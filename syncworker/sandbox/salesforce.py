"""A faithful local Salesforce REST API for Case and CaseComment (see reference/crm-apis.md).

Serve it with `SandboxServer(SalesforceSandbox(client_id=…, client_secret=…)).start()`; tests act
"as a human agent" through `sandbox.agent`, which runs the very same route handlers in-process.

Modelled: OAuth client-credentials tokens (expirable; refused on login/test.salesforce.com,
accepted on a My Domain host; client id/secret in the form or as HTTP Basic), API versions
v46.0 to v68.0 with the versions list, `describe` and `limits`, sObject CRUD with soft delete,
upsert by external id (201/200/300/404, `updateOnly`), a SOQL subset (see `soql.py`) through
`query`/`queryAll` with server-side cursors and `nextRecordsUrl` (Case, CaseComment, User,
Group), the `updated/` and `deleted/` replication feeds, sObject Collections (create, update,
upsert, `allOrNone`), field validation (unknown, read-only, too long, picklists, ids, owners),
`SystemModstamp` bumped on every change, the daily API quota in `Sforce-Limit-Info`, and the
read-only `ContactEmail` a Case shows of its contact (the org's `contacts`; an id the sandbox
does not know is a contact without an e-mail).

Known facts played by default (docs/real-apis.md lists each, with its switch):
- Stamps have whole-second precision: changes within one second share one stamp.
- An active Case assignment rule: every REST create or update without
  `Sforce-Auto-Assign: FALSE` gives the Case to `assignment_rule_owner` (a queue).
- A query scanning more than `query_scan_limit` rows fails with QUERY_TIMEOUT.
- 15- and 18-character ids (the latter in any letter case) name one record; 18 are returned.

Uncertain points, each a switch defaulting to the harshest plausible answer:
- `fold_ids` (True): ORDER BY Id and Id comparisons are case-insensitive, unlike Python's order.
- `restricted_picklists` (none): an unknown picklist value is stored silently.
- `visibility_delay` (off; chaos scenarios turn it on, even mid-run): a share of the agents'
  writes stays invisible to the API user for a while, then appears with its earlier stamp (a
  long transaction); the API user's write to such a row meets UNABLE_TO_LOCK_ROW meanwhile.

Where Salesforce's behaviour is not documented the sandbox makes a choice, said here:
- Any DML update bumps `SystemModstamp`/`LastModifiedDate`, even when no value changes; a new
  CaseComment does NOT touch its parent Case (poll CaseComment separately).
- Deleting a Case soft-deletes its comments; soft-deleted rows are invisible to GET, `query`
  and upsert matching (a unique external id may be reused), visible to `queryAll`/`deleted/`.
- Empty strings are stored as null, as Salesforce does for text fields.
- A user holds at most 10 open query cursors (the oldest is released), each expires after
  15 minutes unused; OAuth token requests do not count against the API quota.
- A query's result is fixed when it runs: later batches show the rows as they stood then.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import random
import re
import secrets
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from syncworker.connectors.salesforce_ids import to_id18
from syncworker.sandbox.server import (
    Clock,
    Handler,
    HttpError,
    Request,
    Response,
    SandboxApp,
    _is_loopback,
    utc_now,
)
from syncworker.sandbox.soql import (
    FieldType,
    SoqlError,
    compile_query,
    format_datetime,
    parse,
)

__all__ = [
    "API_USER_ID",
    "DEFAULT_CONTACTS",
    "DEFAULT_PICKLISTS",
    "DEFAULT_QUEUE_ID",
    "OWNER_IDS",
    "SalesforceAgentDesk",
    "SalesforceSandbox",
    "VisibilityDelay",
    "normalize_id",
    "to_id18",
]

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 (a path, not a secret)
DATA = "/services/data/{version}"
MIN_API_VERSION = 46
MAX_API_VERSION = 68
COLLECTION_LIMIT = 200
DEFAULT_BATCH = 2000
MIN_BATCH = 200
MAX_OPEN_CURSORS = 10
CURSOR_IDLE = timedelta(minutes=15)
UPDATED_WINDOW = timedelta(days=30)
DELETED_WINDOW = timedelta(days=15)
# Rows one query may scan before QUERY_TIMEOUT: a fifth of the reconcile benchmark's 100k-case
# org (so a whole-table listing of a large org must be split), 16 times the chaos org's 1,200.
QUERY_SCAN_LIMIT = 20_000
MY_DOMAIN_SUFFIX = ".my.salesforce.com"


# -- ids ----------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order


def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when it is not an id."""
    try:
        return to_id18(value)
    except ValueError:
        return None


API_USER_ID = to_id18("005000000000001")  # the integration user the connected app runs as
OWNER_IDS = tuple(to_id18(f"005{n:012d}") for n in range(1, 6))
DEFAULT_AGENT_ID = OWNER_IDS[1]
DEFAULT_QUEUE_ID = to_id18("00G000000000001")  # the Case assignment rule's catch-all queue
ORG_ID = to_id18("00D000000000001")
OWNER_PREFIXES = ("005", "00G")  # a Case belongs to a user or a queue

DEFAULT_PICKLISTS: dict[str, tuple[str, ...]] = {
    "Status": ("New", "Working", "Escalated", "On Hold", "Closed"),
    "Priority": ("High", "Medium", "Low"),
    "Origin": ("Phone", "Email", "Web"),
    "Type": ("Mechanical", "Electrical", "Electronic", "Structural", "Other"),
    "Reason": ("Installation", "Equipment Complexity", "Performance", "Breakdown", "Other"),
}
_PICKLIST_DEFAULTS = {"Status": "New", "Priority": "Medium"}
# The org's contacts, ContactId → Email: the first 50 are the Zenvia sandbox catalogue's
# customers (`customer{n}@example.com`, every fifth typed with capitals), the last 10 are known
# to no Zenvia contact. Their ids (003…900001 on) stay clear of the small ones tests pick.
DEFAULT_CONTACTS: dict[str, str] = {
    to_id18(f"003{900_000 + n:012d}"): (
        f"Customer{n}@Example.com" if n % 5 == 0 else f"customer{n}@example.com"
    )
    for n in range(1, 61)
}


class _IdMaker:
    """Sequential ids per key prefix: `500` + pod `5g` + `0` + 9 base-62 digits + checksum."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.pod = _BASE62[rng.randrange(10)] + _BASE62[10 + rng.randrange(52)]
        self.start = rng.randrange(62**5, 62**6)
        self.counters: collections.Counter[str] = collections.Counter()

    def next(self, prefix: str) -> str:
        self.counters[prefix] += 1
        number = self.start + self.counters[prefix]
        digits = ""
        for _ in range(9):
            number, rest = divmod(number, 62)
            digits = _BASE62[rest] + digits
        return to_id18(f"{prefix}{self.pod}0{digits}")


# -- schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisibilityDelay:
    """`share` (0..1) of the agents' writes stay invisible to other sessions for `seconds`."""

    share: float
    seconds: float

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1 or self.seconds < 0:
            raise ValueError("VisibilityDelay: share is 0..1 and seconds at least 0")


@dataclass(frozen=True)
class _Pending:
    """A write not yet committed: other sessions see `before` (None: no row) until `visible_at`."""

    visible_at: datetime
    before: Mapping[str, Any] | None


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    createable: bool = True
    updateable: bool = True
    max_length: int | None = None  # characters
    max_bytes: int | None = None  # UTF-8 bytes (CommentBody)
    restricted: bool = False  # restricted picklist
    prefixes: tuple[str, ...] = ()  # key prefixes a reference may point to


def _case_schema(external_id_field: str, restricted: Collection[str]) -> dict[str, FieldSpec]:
    def picklist(name: str) -> FieldSpec:
        return FieldSpec("picklist", restricted=name in restricted, max_length=255)

    return {
        "Id": FieldSpec("id", createable=False, updateable=False),
        "CaseNumber": FieldSpec("string", createable=False, updateable=False),
        "Subject": FieldSpec("string", max_length=255),
        "Description": FieldSpec("textarea", max_length=32000),
        "Status": picklist("Status"),
        "Priority": picklist("Priority"),
        "Origin": picklist("Origin"),
        "Type": picklist("Type"),
        "Reason": picklist("Reason"),
        "OwnerId": FieldSpec("reference", prefixes=OWNER_PREFIXES),
        "ContactId": FieldSpec("reference", prefixes=("003",)),
        "ContactEmail": FieldSpec("string", createable=False, updateable=False, max_length=80),
        "AccountId": FieldSpec("reference", prefixes=("001",)),
        "IsClosed": FieldSpec("boolean", createable=False, updateable=False),
        "ClosedDate": FieldSpec("datetime", createable=False, updateable=False),
        "IsEscalated": FieldSpec("boolean"),
        "IsDeleted": FieldSpec("boolean", createable=False, updateable=False),
        "MasterRecordId": FieldSpec("reference", False, False, prefixes=("500",)),
        "CreatedDate": FieldSpec("datetime", createable=False, updateable=False),
        "CreatedById": FieldSpec("reference", False, False, prefixes=("005",)),
        "LastModifiedDate": FieldSpec("datetime", createable=False, updateable=False),
        "LastModifiedById": FieldSpec("reference", False, False, prefixes=("005",)),
        "SystemModstamp": FieldSpec("datetime", createable=False, updateable=False),
        external_id_field: FieldSpec("string", max_length=255),
    }


COMMENT_SCHEMA: dict[str, FieldSpec] = {
    "Id": FieldSpec("id", createable=False, updateable=False),
    "ParentId": FieldSpec("reference", updateable=False, prefixes=("500",)),
    "CommentBody": FieldSpec("textarea", max_bytes=4000),
    "IsPublished": FieldSpec("boolean"),
    "IsDeleted": FieldSpec("boolean", createable=False, updateable=False),
    "CreatedById": FieldSpec("reference", createable=False, updateable=False),
    "CreatedDate": FieldSpec("datetime", createable=False, updateable=False),
    "LastModifiedById": FieldSpec("reference", createable=False, updateable=False),
    "LastModifiedDate": FieldSpec("datetime", createable=False, updateable=False),
    "SystemModstamp": FieldSpec("datetime", createable=False, updateable=False),
}

KEY_PREFIXES = {"Case": "500", "CaseComment": "00a"}
PREFIX_OBJECTS = {"005": "User", "00G": "Group", "003": "Contact", "001": "Account", "500": "Case"}
# Read-only objects SOQL can list (a pre-flight check looks up owners and queues).
DIRECTORY_SCHEMA: dict[str, dict[str, FieldType]] = {
    "User": {"Id": "id", "Name": "string", "IsActive": "boolean"},
    "Group": {"Id": "id", "Name": "string", "Type": "picklist"},
}


def _error(status: int, code: str, message: str, fields: Iterable[str] | None = None) -> HttpError:
    details = None if fields is None else [{"field": name} for name in fields]
    return HttpError(status, code, message, details)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client id and secret from `Authorization: Basic …` (simple-salesforce sends them so)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(given.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None


def _release(version: int) -> str:
    """The release that introduced API `version`: 46.0 is Summer '19, three releases a year."""
    season = ("Winter", "Spring", "Summer")[(version - 47) % 3]
    return f"{season} '{20 + (version - 47) // 3:02d}"


@dataclass
class _Cursor:
    """A query's result as it stood when the query ran (a change replaces a stored row, never
    edits it), rendered one batch per request as Salesforce streams it."""

    sobject: str
    rows: list[Mapping[str, Any]]
    fields: tuple[str, ...]
    version: str
    batch: int
    user: str
    used_at: datetime


Row = dict[str, Any]


class SalesforceSandbox(SandboxApp):
    """Salesforce REST (`/services/data/vNN.N/…`, `/services/oauth2/token`): Case, CaseComment."""

    name = "salesforce"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        static_token: str | None = None,
        seed: int = 0,
        clock: Clock = utc_now,
        external_id_field: str = "Zenvia_Ticket_Id__c",
        external_id_unique: bool = True,
        daily_quota: int = 100_000,
        picklists: Mapping[str, Sequence[str]] | None = None,
        closed_statuses: Sequence[str] = ("Closed",),
        owner_ids: Sequence[str] = OWNER_IDS,
        queue_ids: Sequence[str] = (DEFAULT_QUEUE_ID,),
        assignment_rule_owner: str | None = DEFAULT_QUEUE_ID,
        query_scan_limit: int | None = QUERY_SCAN_LIMIT,
        restricted_picklists: Collection[str] = (),
        fold_ids: bool = True,
        visibility_delay: VisibilityDelay | None = None,
        contacts: Mapping[str, str] | None = None,
    ) -> None:
        """Switches (docs/real-apis.md): `assignment_rule_owner` None = no active assignment
        rule; `query_scan_limit` None = no QUERY_TIMEOUT; `restricted_picklists` names the
        picklist fields that refuse unknown values; `fold_ids` False = binary Id order;
        `visibility_delay` = some agents' writes commit late. `contacts` (ContactId → e-mail,
        default `DEFAULT_CONTACTS`) gives a Case's read-only `ContactEmail`."""
        super().__init__(seed=seed, clock=clock)
        if not client_id or not client_secret:
            raise ValueError("the Salesforce sandbox needs a client id and secret")
        self._client_id = client_id.encode()
        self._client_secret = client_secret.encode()
        self._static_token = static_token.encode() if static_token else None
        self._tokens: set[bytes] = set()
        self.external_id_field = external_id_field
        self.external_id_unique = external_id_unique
        self.daily_quota = daily_quota
        self.api_usage = 0
        self.picklists = {
            **DEFAULT_PICKLISTS,
            **{k: tuple(v) for k, v in (picklists or {}).items()},
        }
        self.closed_statuses = frozenset(closed_statuses)
        self.owner_ids = frozenset(owner_ids)
        self.queue_ids = frozenset(queue_ids)
        if assignment_rule_owner is not None and assignment_rule_owner not in (
            self.owner_ids | self.queue_ids
        ):
            raise ValueError(f"assignment_rule_owner {assignment_rule_owner!r} is no owner")
        self.assignment_rule_owner = assignment_rule_owner
        self.query_scan_limit = query_scan_limit
        self.fold_ids = fold_ids
        self.visibility_delay = visibility_delay
        self.contacts = {
            to_id18(contact_id): email
            for contact_id, email in (DEFAULT_CONTACTS if contacts is None else contacts).items()
        }
        self.schema: dict[str, dict[str, FieldSpec]] = {
            "Case": _case_schema(external_id_field, frozenset(restricted_picklists)),
            "CaseComment": COMMENT_SCHEMA,
        }
        self._soql_schema: dict[str, dict[str, FieldType]] = {
            **{
                sobject: {name: spec.type for name, spec in fields.items()}
                for sobject, fields in self.schema.items()
            },
            **DIRECTORY_SCHEMA,
        }
        self._lookup = {
            sobject: {name.lower(): name for name in fields}
            for sobject, fields in self.schema.items()
        }
        self._actor: str | None = None
        self._assigning = False
        self._undo: dict[tuple[str, str], Row | None] | None = None
        self._init_state()
        self._register()

    def __repr__(self) -> str:
        return (
            f"SalesforceSandbox(cases={len(self._rows['Case'])}, client_secret='***', "
            f"api_usage={self.api_usage}/{self.daily_quota})"
        )

    def _init_state(self) -> None:
        self._ids = _IdMaker(self.seed)
        self.random = random.Random(self.seed)  # for populate(): same seed, same org
        self._rows: dict[str, dict[str, Row]] = {"Case": {}, "CaseComment": {}}
        self._deleted_at: dict[str, datetime] = {}
        self._case_number = 1000
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._late = random.Random(self.seed + 1)  # which writes commit late
        self.late_writes = 0  # agents' writes that committed late (read-only, for reports)
        self._cursors: collections.OrderedDict[str, _Cursor] = collections.OrderedDict()
        self._started = self._minute(self._now())

    # -- wiring -----------------------------------------------------------------------------

    def _register(self) -> None:
        self.route("POST", TOKEN_PATH, self._token)
        for path in ("/services/data", "/services/data/"):
            self.route("GET", path, self._versions)
        self.route("GET", f"{DATA}/limits", self._limits)
        self.route("GET", f"{DATA}/limits/", self._limits)
        for query in ("query", "queryAll"):
            all_rows = query == "queryAll"
            for suffix in ("", "/"):
                self.route("GET", f"{DATA}/{query}{suffix}", self._query_handler(all_rows))
            self.route("GET", f"{DATA}/{query}/{{locator}}", self._next_batch)
        for sobject in ("Case", "CaseComment"):
            base = f"{DATA}/sobjects/{sobject}"
            for suffix in ("", "/"):
                self.route("GET", f"{base}/describe{suffix}", self._describe(sobject))
            if sobject == "Case":
                for suffix in ("", "/"):
                    self.route("GET", f"{base}/updated{suffix}", self._updated)
                    self.route("GET", f"{base}/deleted{suffix}", self._deleted)
            create = self._assigns(self._sobject_create(sobject))
            self.route("POST", base, create)
            self.route("POST", f"{base}/", create)
            self.route("GET", f"{base}/{{record_id}}", self._sobject_get(sobject))
            self.route(
                "PATCH", f"{base}/{{record_id}}", self._assigns(self._sobject_update(sobject))
            )
            self.route("DELETE", f"{base}/{{record_id}}", self._sobject_delete(sobject))
            self.route("GET", f"{base}/{{field}}/{{value}}", self._get_by_external(sobject))
            self.route(
                "PATCH", f"{base}/{{field}}/{{value}}", self._assigns(self._upsert_one(sobject))
            )
        collections_path = f"{DATA}/composite/sobjects"
        self.route("POST", collections_path, self._assigns(self._collection_create))
        self.route("PATCH", collections_path, self._assigns(self._collection_update))
        self.route(
            "PATCH",
            f"{collections_path}/{{sobject}}/{{field}}",
            self._assigns(self._collection_upsert),
        )

    def _assigns(self, handler: Handler) -> Handler:
        """Run the active assignment rule on the Cases this write touches, unless the request
        says `Sforce-Auto-Assign: FALSE` (any other value, or none, runs it)."""

        def write(request: Request) -> Response:
            header = request.headers.get("sforce-auto-assign", "TRUE").strip().lower()
            self._assigning = self.assignment_rule_owner is not None and header != "false"
            try:
                return handler(request)
            finally:
                self._assigning = False

        return write

    # -- one-shot faults (tests) ------------------------------------------------------------

    def fail_next(
        self,
        label: str,
        status: int,
        code: str,
        message: str,
        *,
        fields: Sequence[str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `label` with this Salesforce error, unhandled."""
        self.fail_next_with(label, _error(status, code, message, fields), times=times)

    def expire_tokens(self) -> None:
        """Invalidate every OAuth token issued so far (the static token stays valid)."""
        with self.lock:
            self._tokens.clear()

    def empty_recycle_bin(self) -> None:
        """Hard-delete soft-deleted rows; `deleted/` then says nothing earlier is available."""
        with self.lock:
            for rows in self._rows.values():
                for record_id in [i for i, row in rows.items() if row["IsDeleted"]]:
                    del rows[record_id]
                    self._deleted_at.pop(record_id, None)
            self._started = self._minute(self._now())

    # -- SandboxApp hooks -------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        if request.path in (TOKEN_PATH, "/services/data", "/services/data/"):
            return  # the token endpoint and the versions list need no session
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        token = given.strip().encode()
        with self.lock:
            valid = (
                scheme.lower() in ("bearer", "oauth")
                and token
                and (
                    any(hmac.compare_digest(token, known) for known in self._tokens)
                    or (
                        self._static_token is not None
                        and hmac.compare_digest(token, self._static_token)
                    )
                )
            )
            if not valid:
                raise HttpError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if self.api_usage >= self.daily_quota:
                raise HttpError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_usage += 1

    def screen(self, request: Request) -> None:
        """Refuse API versions outside v46.0 to v68.0 as Salesforce does: a plain 404."""
        version = request.params.get("version")
        if version is None:
            return
        found = re.fullmatch(r"v(\d+)\.0", version)
        if not found or not MIN_API_VERSION <= int(found.group(1)) <= MAX_API_VERSION:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")

    def error_response(self, error: HttpError) -> Response:
        code, message = error.code, error.message
        if code == "INTERNAL_ERROR":  # the core's injected 5xx, in Salesforce's words
            code = "UNKNOWN_EXCEPTION"
            message = (
                "An unexpected error occurred. Please include this ErrorId if you contact "
                "support: 1234567890-12345 (-1234567890)"
            )
        item: dict[str, Any] = {"message": message, "errorCode": code}
        if error.details:
            item["fields"] = [d["field"] for d in error.details if "field" in d]
        return Response(error.status, [item])

    def throttled_response(self, retry_after: int) -> Response:
        return Response(
            429,
            [{"message": "Too many requests.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            {"Retry-After": str(retry_after)},
        )

    def decorate(self, request: Request, response: Response) -> None:
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_quota}"

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self._init_state()
            self.api_usage = 0

    def merge_cases(self, master_id: str, duplicate_id: str, *, actor: str) -> None:
        """Merge `duplicate_id` into `master_id` as the UI's Merge Cases does: the duplicate's
        comments move to the master, the duplicate is deleted with MasterRecordId set."""
        with self.lock:
            self._actor = actor
            try:
                master = self._live("Case", master_id, for_write=True)
                duplicate = self._live("Case", duplicate_id, for_write=True)
                for comment in list(self._rows["CaseComment"].values()):
                    if comment["ParentId"] == duplicate["Id"] and not comment["IsDeleted"]:
                        moved = {**comment, "ParentId": master["Id"]}
                        stamp = self._stamp()
                        moved.update(SystemModstamp=stamp, LastModifiedDate=stamp)
                        self._put("CaseComment", moved)
                self._update("Case", master, {})
                self._soft_delete("Case", {**duplicate, "MasterRecordId": master["Id"]})
            finally:
                self._actor = None

    # -- inspection (tests) -----------------------------------------------------------------

    def cases(self, *, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Every Case (soft-deleted ones too, by default) as GET would render it, by Id."""
        return self._snapshot("Case", include_deleted)

    def comments(self, case_id: str | None = None) -> list[dict[str, Any]]:
        rows = self._snapshot("CaseComment", True)
        return [row for row in rows if case_id is None or row["ParentId"] == case_id]

    def _snapshot(self, sobject: str, include_deleted: bool) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self._render(sobject, row)
                for _, row in sorted(self._rows[sobject].items())
                if include_deleted or not row["IsDeleted"]
            ]

    @property
    def agent(self) -> SalesforceAgentDesk:
        """Act as a support agent (owner 005…002) in Salesforce's UI."""
        return SalesforceAgentDesk(self, DEFAULT_AGENT_ID)

    def as_user(self, user_id: str) -> SalesforceAgentDesk:
        if user_id not in self.owner_ids:
            raise ValueError(f"unknown user {user_id!r}")
        return SalesforceAgentDesk(self, user_id)

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        actor: str | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Run the route handler for `method path` in-process (no hooks, auth, quota or faults)
        and return the response body; validation failures raise `HttpError`."""
        with self.lock:
            matched = self.match(method, path)
            if matched is None:
                raise _error(404, "NOT_FOUND", "The requested resource does not exist")
            route, params = matched
            request = Request(
                method=method,
                path=path,
                query={k: [v] for k, v in (query or {}).items()},
                headers={"content-type": "application/json", **(headers or {})},
                body=b"" if body is None else json.dumps(body).encode(),
                params=params,
            )
            self.screen(request)
            self._actor = actor
            try:
                return self._raw[route.label](request).body
            finally:
                self._actor = None

    # -- OAuth ------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))

        def one(name: str) -> str:
            values = form.get(name)
            return values[0] if values else ""

        def refused(error: str, description: str) -> Response:
            return Response(400, {"error": error, "error_description": description})

        if one("grant_type") != "client_credentials":
            return refused("unsupported_grant_type", "grant type not supported")
        host = request.headers.get("host", "127.0.0.1")
        hostname = host.rsplit(":", 1)[0].strip("[]").lower()
        my_domain = hostname.endswith(MY_DOMAIN_SUFFIX)
        if not (my_domain or _is_loopback(hostname)):
            return refused("invalid_grant", "request not supported on this domain")
        client_id, client_secret = _basic_credentials(request) or (
            one("client_id"),
            one("client_secret"),
        )
        client_ok = hmac.compare_digest(client_id.encode(), self._client_id)
        secret_ok = hmac.compare_digest(client_secret.encode(), self._client_secret)
        if not (client_ok and secret_ok):
            return refused("invalid_client", "invalid client credentials")
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(72)}"
        self._tokens.add(token.encode())
        instance_url = f"{'https' if my_domain else 'http'}://{host}"
        identity = f"{instance_url}/id/{ORG_ID}/{API_USER_ID}"
        issued_at = str(int(self._now().timestamp() * 1000))
        digest = hmac.new(self._client_secret, (identity + issued_at).encode(), hashlib.sha256)
        return Response(
            200,
            {
                "access_token": token,
                "signature": base64.b64encode(digest.digest()).decode(),
                "scope": "api",
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            },
        )

    # -- metadata: versions, limits, describe --------------------------------------------------

    def _versions(self, request: Request) -> Response:
        return Response(
            200,
            [
                {"label": _release(n), "url": f"/services/data/v{n}.0", "version": f"{n}.0"}
                for n in range(MIN_API_VERSION, MAX_API_VERSION + 1)
            ],
        )

    def _limits(self, request: Request) -> Response:
        remaining = max(0, self.daily_quota - self.api_usage)
        return Response(
            200,
            {
                "DailyApiRequests": {"Max": self.daily_quota, "Remaining": remaining},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 5120, "Remaining": 5120},
            },
        )

    def _describe(self, sobject: str) -> Handler:
        def describe(request: Request) -> Response:
            version = request.params["version"]
            base = f"/services/data/{version}/sobjects/{sobject}"
            return Response(
                200,
                {
                    "name": sobject,
                    "label": sobject,
                    "keyPrefix": KEY_PREFIXES[sobject],
                    "custom": False,
                    "createable": True,
                    "updateable": True,
                    "deletable": True,
                    "queryable": True,
                    "fields": [
                        self._describe_field(name, spec)
                        for name, spec in self.schema[sobject].items()
                    ],
                    "urls": {"describe": f"{base}/describe", "sobject": base},
                },
            )

        return describe

    def _describe_field(self, name: str, spec: FieldSpec) -> dict[str, Any]:
        external = name == self.external_id_field
        values = self.picklists.get(name, ()) if spec.type == "picklist" else ()
        default = _PICKLIST_DEFAULTS.get(name)
        length = (
            spec.max_length or spec.max_bytes or (18 if spec.type in ("id", "reference") else 0)
        )
        return {
            "name": name,
            "label": name.removesuffix("__c").replace("_", " "),
            "type": spec.type,
            "length": length if spec.type not in ("boolean", "datetime") else 0,
            "byteLength": length * 3,
            "createable": spec.createable,
            "updateable": spec.updateable,
            "nillable": spec.type != "boolean" and name not in ("Id", "OwnerId", "ParentId"),
            "custom": name.endswith("__c"),
            "externalId": external,
            "unique": external and self.external_id_unique,
            "idLookup": name == "Id" or external,
            "restrictedPicklist": spec.restricted,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in values
            ],
            "referenceTo": [PREFIX_OBJECTS[p] for p in spec.prefixes if p in PREFIX_OBJECTS],
        }

    # -- time and rendering -----------------------------------------------------------------

    def _now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    @staticmethod
    def _minute(moment: datetime) -> datetime:
        return moment.replace(second=0, microsecond=0)

    def _stamp(self) -> datetime:
        """The next SystemModstamp: now, to the whole second (changes in one second share it)."""
        return self._now().replace(microsecond=0)

    @staticmethod
    def _url(version: str, sobject: str, record_id: str) -> str:
        return f"/services/data/{version}/sobjects/{sobject}/{record_id}"

    def _render(
        self,
        sobject: str,
        row: Mapping[str, Any],
        version: str = f"v{MAX_API_VERSION}.0",
        fields: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "attributes": {"type": sobject, "url": self._url(version, sobject, row["Id"])}
        }
        for name in fields if fields is not None else self.schema[sobject]:
            value = row.get(name)
            rendered[name] = format_datetime(value) if isinstance(value, datetime) else value
        return rendered

    # -- storage ----------------------------------------------------------------------------

    def _live(self, sobject: str, record_id: str, *, for_write: bool) -> Row:
        """The row for `record_id` (15 or 18 chars), or 404 as Salesforce says it."""
        full = normalize_id(record_id)
        row = self._rows[sobject].get(full) if full else None
        if row is not None and self._actor is None and self._uncommitted(sobject, row):
            if for_write:
                raise _error(
                    400,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record or 1 records: " + row["Id"],
                )
            row = self._visible(sobject, row)
        if row is None:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        if row["IsDeleted"]:
            if for_write:
                raise _error(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        return row

    def _put(self, sobject: str, row: Row) -> None:
        """Store `row`, remembering the previous version while an all-or-none call runs, and,
        for a late-committing agent write, what other sessions see until it commits."""
        key = (sobject, row["Id"])
        previous = self._rows[sobject].get(row["Id"])
        if self._undo is not None and key not in self._undo:
            self._undo[key] = None if previous is None else dict(previous)
        delay = self.visibility_delay
        if (
            delay is not None
            and self._actor is not None
            and not (previous is not None and self._uncommitted(sobject, previous))
            and self._late.random() < delay.share
        ):
            self._pending[key] = _Pending(self._now() + timedelta(seconds=delay.seconds), previous)
            self.late_writes += 1
        self._rows[sobject][row["Id"]] = row

    def _uncommitted(self, sobject: str, row: Row) -> bool:
        """Whether `row` is a write other sessions cannot see yet."""
        pending = self._pending.get((sobject, row["Id"]))
        return pending is not None and self._now() < pending.visible_at

    def _visible(self, sobject: str, row: Row) -> Row | None:
        """`row` as another session sees it: the last committed version (None: none yet).
        The acting agent sees its own writes."""
        if self._actor is not None or not self._uncommitted(sobject, row):
            return row
        before = self._pending[(sobject, row["Id"])].before
        return None if before is None else dict(before)

    def _committed(self, sobject: str) -> Iterator[Row]:
        if self._pending:  # forget the writes that have committed since
            now = self._now()
            self._pending = {k: p for k, p in self._pending.items() if now < p.visible_at}
        for row in self._rows[sobject].values():
            seen = self._visible(sobject, row) if self._pending else row
            if seen is not None:
                yield seen

    def _begin(self) -> None:
        self._undo = {}

    def _finish(self, *, commit: bool) -> None:
        undo, self._undo = self._undo or {}, None
        if commit:
            return
        for (sobject, record_id), previous in undo.items():
            if previous is None:
                self._rows[sobject].pop(record_id, None)
                self._deleted_at.pop(record_id, None)
            else:
                self._rows[sobject][record_id] = previous

    @property
    def _user(self) -> str:
        return self._actor or API_USER_ID

    # -- validation -------------------------------------------------------------------------

    def _clean(
        self, sobject: str, body: Mapping[str, Any], *, creating: bool, skip: Iterable[str] = ()
    ) -> Row:
        """Validate a write body and return its values by canonical field name."""
        specs = self.schema[sobject]
        lookup = self._lookup[sobject]
        skipped = {name.lower() for name in skip}
        values: Row = {}
        refused: list[str] = []
        for given, value in body.items():
            if given == "attributes" or given.lower() in skipped:
                continue
            name = lookup.get(given.lower())
            if name is None:
                raise _error(
                    400, "INVALID_FIELD", f"No such column '{given}' on sobject of type {sobject}"
                )
            spec = specs[name]
            if not (spec.createable if creating else spec.updateable):
                refused.append(name)
                continue
            values[name] = self._coerce(sobject, name, spec, value)
        if refused:
            raise _error(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(refused)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                refused,
            )
        return values

    def _coerce(self, sobject: str, name: str, spec: FieldSpec, value: Any) -> Any:
        if spec.type == "boolean":
            if value is None:
                return False
            if not isinstance(value, bool):
                raise _error(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of boolean from {type(value).__name__} value "
                    f"{value!r} for field {name}",
                )
            return value
        if value is not None and not isinstance(value, str):
            raise _error(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of string from {type(value).__name__} value "
                f"{value!r} for field {name}",
            )
        text = value or None  # Salesforce stores "" as null
        if spec.type == "reference":
            return self._reference(name, spec, text)
        if spec.restricted:
            allowed = self.picklists.get(name, ())
            if (text is None and name == "Status") or (text is not None and text not in allowed):
                raise _error(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{name}: bad value for restricted picklist field: {text}",
                    [name],
                )
        if text is not None and spec.max_length is not None and len(text) > spec.max_length:
            raise _error(
                400,
                "STRING_TOO_LONG",
                f"{name}: data value too large: {text[:40]}... (max length={spec.max_length})",
                [name],
            )
        limit = spec.max_bytes
        if text is not None and limit is not None and len(text.encode()) > limit:
            raise _error(
                400,
                "STRING_TOO_LONG",
                f"{name}: data value too large: {text[:40]}... (max length={limit})",
                [name],
            )
        return text

    def _reference(self, name: str, spec: FieldSpec, value: str | None) -> str | None:
        if value is None:
            if name == "OwnerId":
                raise _error(
                    400, "INVALID_CROSS_REFERENCE_KEY", "Owner ID: owner cannot be blank", [name]
                )
            if name == "ParentId":
                raise _error(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
            return None
        full = normalize_id(value)
        if full is None or (spec.prefixes and full[:3] not in spec.prefixes):
            raise _error(
                400, "MALFORMED_ID", f"{name}: id value of incorrect type: {value}", [name]
            )
        if name == "OwnerId" and full not in self.owner_ids | self.queue_ids:
            raise _error(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
        if name == "ParentId":
            parent = self._rows["Case"].get(full)
            if parent is None:
                raise _error(
                    400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name]
                )
            if parent["IsDeleted"]:
                raise _error(400, "ENTITY_IS_DELETED", "entity is deleted", [name])
        return full

    def _check_unique(self, sobject: str, values: Row, own_id: str | None) -> None:
        value = values.get(self.external_id_field)
        if sobject != "Case" or not self.external_id_unique or value is None:
            return
        for other in self._matching(value):
            if other["Id"] != own_id:
                raise _error(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {self.external_id_field} duplicates value on "
                    f"record with id: {other['Id']}",
                    [],
                )

    def _matching(self, value: str) -> list[Row]:
        field_name = self.external_id_field
        return [
            row
            for row in self._rows["Case"].values()
            if not row["IsDeleted"] and row.get(field_name) == value
        ]

    # -- DML --------------------------------------------------------------------------------

    def _insert(self, sobject: str, body: Mapping[str, Any]) -> Row:
        values = self._clean(sobject, body, creating=True)
        stamp = self._stamp()
        row: Row = dict.fromkeys(self.schema[sobject])
        row.update(
            Id=self._ids.next(KEY_PREFIXES[sobject]),
            IsDeleted=False,
            CreatedById=self._user,
            CreatedDate=stamp,
            LastModifiedById=self._user,
            LastModifiedDate=stamp,
            SystemModstamp=stamp,
        )
        if sobject == "Case":
            self._case_number += 1
            row.update(
                CaseNumber=f"{self._case_number:08d}",
                OwnerId=self._user if self._user in self.owner_ids else min(self.owner_ids),
                IsEscalated=False,
            )
            values = self._assign(values)
            for name, default in _PICKLIST_DEFAULTS.items():
                if default in self.picklists.get(name, ()):
                    row[name] = default
            if row["Status"] is None and self.picklists.get("Status"):
                row["Status"] = self.picklists["Status"][0]
        else:
            row["IsPublished"] = False
            if "ParentId" not in values:
                raise _error(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [ParentId]",
                    ["ParentId"],
                )
        row.update(values)
        self._check_unique(sobject, row, None)
        self._derive(sobject, row, None, stamp)
        self._put(sobject, row)
        return row

    def _update(
        self, sobject: str, row: Row, body: Mapping[str, Any], skip: Iterable[str] = ()
    ) -> Row:
        values = self._clean(sobject, body, creating=False, skip=skip)
        if sobject == "Case":
            values = self._assign(values)
        self._check_unique(sobject, values, row["Id"])
        stamp = self._stamp()
        updated = {**row, **values}
        updated.update(LastModifiedById=self._user, LastModifiedDate=stamp, SystemModstamp=stamp)
        self._derive(sobject, updated, row, stamp)
        self._put(sobject, updated)
        return updated

    def _assign(self, values: Row) -> Row:
        """The active assignment rule, when this request runs it, overrides any OwnerId."""
        if not self._assigning:
            return values
        return {**values, "OwnerId": self.assignment_rule_owner}

    def _derive(self, sobject: str, row: Row, before: Row | None, stamp: datetime) -> None:
        if sobject != "Case":
            return
        closed = row["Status"] in self.closed_statuses
        row["IsClosed"] = closed
        if not closed:
            row["ClosedDate"] = None
        elif before is None or not before["IsClosed"]:
            row["ClosedDate"] = stamp
        row["ContactEmail"] = self.contacts.get(row["ContactId"] or "")

    def _soft_delete(self, sobject: str, row: Row) -> None:
        stamp = self._stamp()
        self._put(
            sobject,
            {
                **row,
                "IsDeleted": True,
                "SystemModstamp": stamp,
                "LastModifiedDate": stamp,
                "LastModifiedById": self._user,
            },
        )
        self._deleted_at[row["Id"]] = stamp
        if sobject == "Case":
            for comment in list(self._rows["CaseComment"].values()):
                if comment["ParentId"] == row["Id"] and not comment["IsDeleted"]:
                    self._soft_delete("CaseComment", comment)

    # -- sObject rows -----------------------------------------------------------------------

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body) if request.body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _error(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
        if not isinstance(body, dict):
            raise _error(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize the request body: expected a JSON object",
            )
        return body

    def _sobject_create(self, sobject: str) -> Handler:
        def create(request: Request) -> Response:
            row = self._insert(sobject, self._body(request))
            return Response(201, {"id": row["Id"], "success": True, "errors": []})

        return create

    def _sobject_get(self, sobject: str) -> Handler:
        def get(request: Request) -> Response:
            row = self._live(sobject, request.params["record_id"], for_write=False)
            fields = self._requested_fields(sobject, request.arg("fields"))
            return Response(200, self._render(sobject, row, request.params["version"], fields))

        return get

    def _requested_fields(self, sobject: str, given: str | None) -> list[str] | None:
        if not given:
            return None
        names = []
        for raw in given.split(","):
            name = self._lookup[sobject].get(raw.strip().lower())
            if name is None:
                raise _error(
                    400, "INVALID_FIELD", f"No such column '{raw.strip()}' on entity '{sobject}'"
                )
            names.append(name)
        return names

    def _sobject_update(self, sobject: str) -> Handler:
        def update(request: Request) -> Response:
            body = self._body(request)
            row = self._live(sobject, request.params["record_id"], for_write=True)
            self._update(sobject, row, body, skip=self._same_id(body, row))
            return Response(204)

        return update

    @staticmethod
    def _same_id(body: Mapping[str, Any], row: Row) -> list[str]:
        """An `Id` in a PATCH body naming the row itself is tolerated, as Salesforce does."""
        given = next((v for k, v in body.items() if k.lower() == "id"), None)
        return ["Id"] if given is not None and normalize_id(given) == row["Id"] else []

    def _sobject_delete(self, sobject: str) -> Handler:
        def delete(request: Request) -> Response:
            row = self._live(sobject, request.params["record_id"], for_write=True)
            self._soft_delete(sobject, row)
            return Response(204)

        return delete

    def _external_field(self, sobject: str, given: str) -> str:
        name = self._lookup[sobject].get(given.lower())
        if sobject != "Case" or name != self.external_id_field:
            raise _error(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {given}",
            )
        return name

    def _get_by_external(self, sobject: str) -> Handler:
        def get(request: Request) -> Response:
            self._external_field(sobject, request.params["field"])
            matches = self._matching(request.params["value"])
            if not matches:
                raise _error(404, "NOT_FOUND", "The requested resource does not exist")
            version = request.params["version"]
            if len(matches) > 1:
                return Response(300, [self._url(version, sobject, r["Id"]) for r in matches])
            fields = self._requested_fields(sobject, request.arg("fields"))
            return Response(200, self._render(sobject, matches[0], version, fields))

        return get

    def _upsert_one(self, sobject: str) -> Handler:
        def upsert(request: Request) -> Response:
            field_name = self._external_field(sobject, request.params["field"])
            body = self._body(request)
            update_only = (request.arg("updateOnly") or "").lower() == "true"
            result = self._upsert(sobject, field_name, request.params["value"], body, update_only)
            if isinstance(result, list):
                version = request.params["version"]
                return Response(300, [self._url(version, sobject, r["Id"]) for r in result])
            row, created = result
            answer = {"id": row["Id"], "success": True, "errors": [], "created": created}
            return Response(201 if created else 200, answer)

        return upsert

    def _upsert(
        self, sobject: str, field_name: str, value: str, body: Mapping[str, Any], update_only: bool
    ) -> tuple[Row, bool] | list[Row]:
        """Create or update the row whose `field_name` is `value`; a list when several match."""
        given = next((v for k, v in body.items() if k.lower() == field_name.lower()), value)
        if given != value:
            raise _error(
                400,
                "INVALID_FIELD",
                f"{field_name} in the body ({given!r}) differs from the external id in the URL",
                [field_name],
            )
        matches = self._matching(value)
        if len(matches) > 1:
            return matches
        if matches:
            return self._update(sobject, matches[0], body, skip=[field_name]), False
        if update_only:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        return self._insert(sobject, {**body, field_name: value}), True

    # -- SOQL -------------------------------------------------------------------------------

    def _query_handler(self, include_deleted: bool) -> Handler:
        def query(request: Request) -> Response:
            text = request.arg("q")
            if not text:
                raise _error(400, "MALFORMED_QUERY", "A query string has to be specified")
            try:
                compiled = compile_query(
                    parse(text),
                    self._soql_schema,
                    normalize_id=normalize_id,
                    fold_ids=self.fold_ids,
                )
            except SoqlError as exc:
                raise _error(400, exc.code, exc.message) from exc
            rows, scanned = compiled.execute(
                row
                for row in self._table(compiled.sobject)
                if include_deleted or not row.get("IsDeleted")
            )
            if self.query_scan_limit is not None and scanned > self.query_scan_limit:
                raise _error(400, "QUERY_TIMEOUT", "Your query request was running for too long.")
            version = request.params["version"]
            batch = self._batch_size(request.headers.get("sforce-query-options", ""))
            cursor = _Cursor(
                compiled.sobject,
                rows,
                compiled.fields,
                version,
                batch,
                self._user,
                self._now(),
            )
            return Response(200, self._page(cursor, self._ids.next("01g"), 0, version))

        return query

    def _table(self, sobject: str) -> Iterable[Row]:
        """The rows a query of `sobject` sees: committed records, or the users and queues."""
        if sobject == "User":
            ids = sorted(self.owner_ids | {API_USER_ID})
            return [{"Id": i, "Name": f"User {i[10:15]}", "IsActive": True} for i in ids]
        if sobject == "Group":
            ids = sorted(self.queue_ids)
            return [{"Id": i, "Name": f"Queue {i[10:15]}", "Type": "Queue"} for i in ids]
        return self._committed(sobject)

    @staticmethod
    def _batch_size(options: str) -> int:
        found = re.search(r"batchSize\s*=\s*(\d+)", options)
        if not found:
            return DEFAULT_BATCH
        return max(MIN_BATCH, min(DEFAULT_BATCH, int(found.group(1))))

    def _page(self, cursor: _Cursor, locator: str, offset: int, version: str) -> dict[str, Any]:
        end = offset + cursor.batch
        page: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": end >= len(cursor.rows),
            "records": [
                self._render(cursor.sobject, row, cursor.version, cursor.fields)
                for row in cursor.rows[offset:end]
            ],
        }
        self._cursors.pop(locator, None)
        if not page["done"]:
            page["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
            cursor.used_at = self._now()
            self._cursors[locator] = cursor
            mine = [key for key, c in self._cursors.items() if c.user == cursor.user]
            for stale in mine[:-MAX_OPEN_CURSORS]:
                del self._cursors[stale]
        return page

    def _next_batch(self, request: Request) -> Response:
        found = re.fullmatch(r"(\w+)-(\d+)", request.params["locator"])
        cursor = self._cursors.get(found.group(1)) if found else None
        if found is None or cursor is None or self._now() - cursor.used_at > CURSOR_IDLE:
            raise _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        locator, offset = found.group(1), int(found.group(2))
        return Response(200, self._page(cursor, locator, offset, request.params["version"]))

    # -- replication feeds ------------------------------------------------------------------

    def _window(self, request: Request, horizon: timedelta) -> tuple[datetime, datetime]:
        bounds = []
        for name in ("start", "end"):
            given = request.arg(name)
            if not given:
                raise _error(400, "MISSING_ARGUMENT", f"{name} was not specified")
            try:
                moment = datetime.fromisoformat(given.replace(" ", "+"))
            except ValueError as exc:
                raise _error(400, "INVALID_REPLICATION_DATE", f"invalid {name}: {given}") from exc
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            bounds.append(self._minute(moment.astimezone(UTC)))  # seconds are ignored
        start, end = bounds
        now = self._minute(self._now())
        end = min(end, now)
        if start >= end:
            raise _error(400, "INVALID_REPLICATION_DATE", "start date must be before end date")
        if start < now - horizon:
            raise _error(
                400,
                "INVALID_REPLICATION_DATE",
                f"start date cannot be more than {horizon.days} days ago",
            )
        return start, end

    def _updated(self, request: Request) -> Response:
        start, end = self._window(request, UPDATED_WINDOW)
        ids = [
            row["Id"]
            for row in sorted(self._committed("Case"), key=lambda r: r["Id"])
            if not row["IsDeleted"] and start <= row["SystemModstamp"] < end
        ]
        return Response(200, {"ids": ids, "latestDateCovered": format_datetime(end)})

    def _deleted(self, request: Request) -> Response:
        start, end = self._window(request, DELETED_WINDOW)
        deleted = [
            {"id": row["Id"], "deletedDate": format_datetime(self._deleted_at[row["Id"]])}
            for row in sorted(self._committed("Case"), key=lambda r: r["Id"])
            if row["IsDeleted"] and start <= self._deleted_at[row["Id"]] < end
        ]
        return Response(
            200,
            {
                "deletedRecords": deleted,
                "earliestDateAvailable": format_datetime(self._started),
                "latestDateCovered": format_datetime(end),
            },
        )

    # -- sObject Collections ----------------------------------------------------------------

    def _collection(self, request: Request) -> tuple[list[Any], bool]:
        body = self._body(request)
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise _error(400, "INVALID_FIELD", "records: a non-empty list is required")
        if len(records) > COLLECTION_LIMIT:
            raise _error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
                "into this call",
            )
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise _error(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
        return records, all_or_none

    def _item_type(self, item: Any) -> str:
        if not isinstance(item, dict):
            raise _error(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
        attributes = item.get("attributes")
        sobject = attributes.get("type") if isinstance(attributes, dict) else None
        if not sobject:
            raise _error(400, "INVALID_TYPE", "Must send a concrete entity type.")
        if sobject not in self.schema:
            raise _error(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        return str(sobject)

    def _run_items(self, records: list[Any], all_or_none: bool, apply: Any) -> list[dict[str, Any]]:
        """Apply `apply(item) -> result` per item; per-item errors; all-or-none rolls back."""
        results: list[dict[str, Any]] = []
        failed = False
        self._begin()
        try:
            for item in records:
                try:
                    results.append({"success": True, "errors": [], **apply(item)})
                except HttpError as error:
                    failed = True
                    fields = [d["field"] for d in error.details if "field" in d]
                    problem = {"statusCode": error.code, "message": error.message, "fields": fields}
                    results.append({"id": None, "success": False, "errors": [problem]})
        finally:
            self._finish(commit=not (all_or_none and failed))
        if all_or_none and failed:
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            for result in results:
                if result["success"]:
                    result.update(id=None, success=False, errors=[rolled_back])
                    result.pop("created", None)
        return [
            {
                "id": r.get("id"),
                "success": r["success"],
                "errors": r["errors"],
                **({"created": r["created"]} if "created" in r else {}),
            }
            for r in results
        ]

    def _collection_create(self, request: Request) -> Response:
        records, all_or_none = self._collection(request)

        def create(item: Any) -> dict[str, Any]:
            sobject = self._item_type(item)
            if any(key.lower() == "id" for key in item):
                raise _error(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "cannot specify Id in an insert call",
                    ["Id"],
                )
            return {"id": self._insert(sobject, item)["Id"]}

        return Response(200, self._run_items(records, all_or_none, create))

    def _collection_update(self, request: Request) -> Response:
        records, all_or_none = self._collection(request)

        def update(item: Any) -> dict[str, Any]:
            sobject = self._item_type(item)
            given = next((v for k, v in item.items() if k.lower() == "id"), None)
            if not isinstance(given, str):
                raise _error(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
            row = self._live(sobject, given, for_write=True)
            return {"id": self._update(sobject, row, item, skip=["Id"])["Id"]}

        return Response(200, self._run_items(records, all_or_none, update))

    def _collection_upsert(self, request: Request) -> Response:
        sobject = request.params["sobject"]
        if sobject not in self.schema:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        field_name = self._external_field(sobject, request.params["field"])
        records, all_or_none = self._collection(request)
        keys = [
            next((v for k, v in item.items() if k.lower() == field_name.lower()), None)
            if isinstance(item, dict)
            else None
            for item in records
        ]
        repeated = {
            key for key, n in collections.Counter(keys).items() if key is not None and n > 1
        }

        def upsert(item: Any) -> dict[str, Any]:
            if self._item_type(item) != sobject:
                raise _error(400, "INVALID_TYPE", f"records must all be of type {sobject}")
            key = next((v for k, v in item.items() if k.lower() == field_name.lower()), None)
            if not isinstance(key, str) or not key:
                raise _error(400, "MISSING_ARGUMENT", f"{field_name} not specified", [field_name])
            if key in repeated:
                raise _error(
                    400,
                    "DUPLICATE_EXTERNAL_ID",
                    f"Duplicate external id specified: {key}",
                    [field_name],
                )
            result = self._upsert(sobject, field_name, key, item, update_only=False)
            if isinstance(result, list):
                ids = ", ".join(row["Id"] for row in result)
                raise _error(
                    300,
                    "DUPLICATE_EXTERNAL_ID",
                    f"{field_name}: more than one record found for external id field: {ids}",
                    [field_name],
                )
            row, created = result
            return {"id": row["Id"], "created": created}

        return Response(200, self._run_items(records, all_or_none, upsert))


class SalesforceAgentDesk:
    """A human working in Salesforce's UI: every call runs the HTTP route handlers in-process
    (same validation, same stamps) with this user as CreatedById/LastModifiedById.
    Validation failures raise `HttpError` carrying Salesforce's errorCode."""

    def __init__(self, sandbox: SalesforceSandbox, user_id: str) -> None:
        self.sandbox = sandbox
        self.user_id = user_id

    def _call(self, method: str, path: str, body: object = None) -> Any:
        # The UI's "Assign using active assignment rules" box is unticked by default.
        return self.sandbox.call(
            method,
            f"/services/data/v{MAX_API_VERSION}.0/{path}",
            body,
            actor=self.user_id,
            headers={"sforce-auto-assign": "FALSE"},
        )

    def create_case(self, **fields: Any) -> str:
        """Create a Case with these field values; returns its Id."""
        result: dict[str, Any] = self._call("POST", "sobjects/Case", fields)
        return str(result["id"])

    def edit(self, case_id: str, **fields: Any) -> None:
        self._call("PATCH", f"sobjects/Case/{case_id}", fields)

    def add_comment(self, case_id: str, body: str, *, public: bool = True) -> str:
        result: dict[str, Any] = self._call(
            "POST",
            "sobjects/CaseComment",
            {"ParentId": case_id, "CommentBody": body, "IsPublished": public},
        )
        return str(result["id"])

    def edit_comment(self, comment_id: str, body: str) -> None:
        self._call("PATCH", f"sobjects/CaseComment/{comment_id}", {"CommentBody": body})

    def merge(self, master_id: str, duplicate_id: str) -> None:
        """Merge the duplicate Case into the master (Salesforce's Merge Cases)."""
        self.sandbox.merge_cases(master_id, duplicate_id, actor=self.user_id)

    def delete(self, record_id: str) -> None:
        """Delete a Case (and its comments) or a CaseComment, by the id's key prefix."""
        sobject = "CaseComment" if record_id.startswith(KEY_PREFIXES["CaseComment"]) else "Case"
        self._call("DELETE", f"sobjects/{sobject}/{record_id}")

    def populate(self, count: int) -> list[str]:
        """Create `count` plausible Cases (some with a comment), deterministic for the seed."""
        rng = self.sandbox.random
        ids: list[str] = []
        for n in range(count):
            with self.sandbox.lock:
                topic = rng.choice(_TOPICS)
                case_id = self.sandbox.as_user(
                    rng.choice(sorted(self.sandbox.owner_ids))
                ).create_case(
                    Subject=f"Case {n + 1}: {topic}",
                    Description=f"The customer reports: {topic}.",
                    Status=rng.choice(self.sandbox.picklists["Status"]),
                    Priority=rng.choice(self.sandbox.picklists["Priority"]),
                    Origin=rng.choice(self.sandbox.picklists["Origin"]),
                )
                if rng.random() < 0.3:
                    self.add_comment(
                        case_id, f"Looking into it ({topic}).", public=rng.random() < 0.5
                    )
            ids.append(case_id)
        return ids

    def case(self, case_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"sobjects/Case/{case_id}")
        return result


_TOPICS = (
    "invoice not generated",
    "question about the plan",
    "account locked",
    "tax receipt missing",
    "integration stopped",
    "cancellation request",
)
