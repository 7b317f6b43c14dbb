"""Send one HTTP request to a remote: through the gate, counted, transport failures classified.

Shared by every httpx connector. It does not interpret HTTP statuses (each vendor shapes its
errors differently); it only turns httpx's transport exceptions into `TransientError` and
retries ONCE, immediately, when an idempotent request died on a reused keep-alive connection
(the server closed it while we were sending: nothing was processed, a fresh connection is the
fix). Any other retry belongs to the task layer: one layer, one budget.

Messages name the endpoint label and the URL path only, never the query string or headers,
so a token carried in either cannot leak.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from syncworker.connectors.base import RequestCounter, RequestGate
from syncworker.connectors.errors import MalformedResponseError, PermanentError, TransientError

__all__ = ["IDEMPOTENT_METHODS", "retry_after_seconds", "send"]

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Errors a stale pooled connection produces; on a fresh connection they are a real failure.
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class _ConnectionTrace:
    """httpcore trace hook: did this attempt open a new connection, or reuse a pooled one?"""

    def __init__(self) -> None:
        self.connected = False
        self.sent = False

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(("connect_tcp.started", "connect_unix_socket.started")):
            self.connected = True
        elif event.endswith("send_request_headers.started"):
            self.sent = True

    @property
    def reused(self) -> bool:
        return self.sent and not self.connected


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    endpoint: str,
    remote: str,
    gate: RequestGate,
    counter: RequestCounter,
    params: Mapping[str, str | int] | None = None,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool | None = None,
) -> httpx.Response:
    """Send one request and return its response, whatever its status.

    `endpoint` is the label used for the gate and the counter (e.g. `"GET /tickets/{id}"`);
    the body is `json` or a form (`data`).
    `gate.before_request(endpoint)` runs before every attempt and its `RateLimitedError`
    propagates; `gate.after_response` sees every response. `idempotent` defaults to the method
    being GET/HEAD/OPTIONS; only idempotent requests get the one dropped-connection retry.
    Raises `TransientError` for timeouts and connection failures (for a non-idempotent request
    the outcome is then unknown), `MalformedResponseError` for an undecodable body,
    `PermanentError` for an unusable URL scheme.
    """
    method = method.upper()
    retry_allowed = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
    where = f"{method} {httpx.URL(url).path}"
    for attempt in (1, 2):
        gate.before_request(endpoint)
        counter.add(endpoint)
        trace = _ConnectionTrace()
        started = time.monotonic()
        try:
            response = client.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                extensions={"trace": trace},
            )
        except UnicodeEncodeError as exc:  # e.g. half an emoji (a lone surrogate) in copied text
            raise PermanentError(
                f"the request body cannot be encoded as UTF-8 ({exc.reason})",
                remote=remote,
                path=where,
            ) from exc
        except _DROPPED as exc:
            if attempt == 1 and retry_allowed and trace.reused:
                log.debug("%s %s: pooled connection dropped, retrying once", remote, endpoint)
                continue
            raise _transient(exc, remote, where, retry_allowed) from exc
        except httpx.UnsupportedProtocol as exc:
            raise PermanentError(
                f"unusable URL ({type(exc).__name__})", remote=remote, path=where
            ) from exc
        except httpx.DecodingError as exc:
            raise MalformedResponseError(
                f"undecodable response body ({type(exc).__name__})", remote=remote, path=where
            ) from exc
        except httpx.TransportError as exc:
            raise _transient(exc, remote, where, retry_allowed) from exc
        log.debug(
            "%s %s -> %s in %.0f ms",
            remote,
            endpoint,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        gate.after_response(endpoint, response)
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def _transient(
    exc: httpx.TransportError, remote: str, where: str, idempotent: bool
) -> TransientError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    unknown = "" if idempotent else "; the request may or may not have been processed"
    return TransientError(f"{kind} ({type(exc).__name__}){unknown}", remote=remote, path=where)


def retry_after_seconds(
    value: str | None, *, default: float = 60.0, now: datetime | None = None
) -> float:
    """Parse a `Retry-After` header: delta-seconds or an HTTP-date; `default` when absent/bad."""
    if value is None or not value.strip():
        return default
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return default
    return max(0.0, seconds)
