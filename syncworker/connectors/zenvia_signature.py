"""Zenvia's signature mode (spec `info/description.md`, "Signature"): a signature-mode token
is refused (401) on any request without a valid `X-API-Signature`.

The signed text is six lines joined by `\n`: method, hex MD5 of the body (empty without a
body), the body's Content-Type (empty without a body), the `Date` header (RFC 2616; the API
refuses one in the future or older than 3 minutes), the host, and the path with its query
string. The signature is the base64 HMAC-SHA256 of that text under the token's secret.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

__all__ = ["SignatureAuth", "signature", "signed_text"]


def signed_text(
    *, method: str, body: bytes, content_type: str, date: str, host: str, resource: str
) -> str:
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest() if body else ""
    return "\n".join((method.upper(), digest, content_type if body else "", date, host, resource))


def signature(
    secret: str,
    *,
    method: str,
    body: bytes,
    content_type: str,
    date: str,
    host: str,
    resource: str,
) -> str:
    text = signed_text(
        method=method, body=body, content_type=content_type, date=date, host=host, resource=resource
    )
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class SignatureAuth(httpx.Auth):
    """Signs every request at send time (the body is final only then); `clock` dates it."""

    requires_request_body = True

    def __init__(self, secret: SecretStr, clock: Callable[[], datetime]) -> None:
        if not secret.get_secret_value():
            raise ValueError("the Zenvia signature secret is empty")
        self._secret = secret
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        date = email.utils.format_datetime(self._clock().astimezone(UTC), usegmt=True)
        query = request.url.query.decode()
        request.headers["Date"] = date
        request.headers["X-API-Signature"] = signature(
            self._secret.get_secret_value(),
            method=request.method,
            body=request.content,
            content_type=request.headers.get("Content-Type", ""),
            date=date,
            host=request.headers.get("Host", request.url.netloc.decode()),
            resource=f"{request.url.path}?{query}" if query else request.url.path,
        )
        yield request
