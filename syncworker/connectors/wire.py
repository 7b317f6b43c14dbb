"""What every httpx connector does alike at its boundary: check a moment and an id before
they go into a request, read a JSON answer, hide a secret, and name the error class an HTTP
status calls for.

Each vendor shapes its error bodies differently, so reading one stays in its connector; the
connector then hands the message it found to `error_for_status`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from syncworker.connectors import http
from syncworker.connectors.errors import (
    AuthError,
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RemoteError,
    TransientError,
)

__all__ = ["error_for_status", "json_body", "maybe_json", "path_segment", "redact", "utc"]

DEFAULT_RETRY_AFTER = 60.0  # a 429 without a readable Retry-After


def utc(moment: datetime, name: str) -> datetime:
    """`moment` in UTC; a naive one is refused (its zone would be a guess)."""
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def path_segment(value: str) -> str:
    """An id or key quoted as one URL path segment (a `/` in it cannot reach another path)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id in a URL path is a non-empty string, got {value!r}")
    return quote(value, safe="")


def maybe_json(response: httpx.Response) -> object:
    """The answer's JSON body, or None when it has none (an error page, an empty body)."""
    try:
        payload: object = response.json()
    except (ValueError, RecursionError):
        return None
    return payload


def json_body(response: httpx.Response, remote: str, what: str = "") -> object:
    """The JSON body of a successful answer; anything else is a MalformedResponseError."""
    try:
        payload: object = response.json()
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError(
            f"{what} response is not JSON".strip(),
            remote=remote,
            status=response.status_code,
            path=f"{response.request.method} {response.request.url.path}",
        ) from exc
    return payload


def redact(text: str, secrets: Iterable[SecretStr | None]) -> str:
    """`text` with every non-empty secret in it masked (messages end up in logs)."""
    for secret in secrets:
        value = secret.get_secret_value() if secret is not None else ""
        if value and value in text:
            text = text.replace(value, "**********")
    return text


def error_for_status(
    response: httpx.Response,
    message: str,
    *,
    not_found: bool = False,
    transient: bool = False,
    now: datetime | None = None,
    **common: Any,
) -> RemoteError:
    """The error a non-2xx answer calls for: 429 waits (Retry-After, from `now`), 401/403
    need an operator, 404 (or a vendor code saying `not_found`) is NotFound, 408/5xx (or a
    vendor code saying `transient`) retries, any other 4xx is permanent. `common` holds the
    RemoteError keywords (remote, status, code, path, details)."""
    status = response.status_code
    if status == 429:
        header = response.headers.get("Retry-After")
        wait = http.retry_after_seconds(header, default=DEFAULT_RETRY_AFTER, now=now)
        return RateLimitedError(message, retry_after=wait, **common)
    if status in (401, 403):
        return AuthError(message, **common)
    if status == 404 or not_found:
        return NotFoundError(message, **common)
    if status == 408 or status >= 500 or transient:
        return TransientError(message, **common)
    if 400 <= status < 500:
        return PermanentError(message, **common)
    return MalformedResponseError(f"unexpected HTTP status {status}: {message}", **common)
