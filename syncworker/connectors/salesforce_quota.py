"""Salesforce's daily API quota, as every REST answer reports it in `Sforce-Limit-Info`
(`api-usage=used/limit`), and the refusal once it is spent: read by the connector
(`last_quota`) and by the shared gate (`ratelimit.QuotaBudget`)."""

from __future__ import annotations

import re

import httpx

__all__ = ["api_usage", "quota_refused"]

_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def api_usage(response: httpx.Response) -> tuple[int, int] | None:
    """(requests used, daily limit) from the answer's header; None when it carries none."""
    found = _API_USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
    return (int(found.group(1)), int(found.group(2))) if found else None


def quota_refused(response: httpx.Response) -> bool:
    """Whether the answer refuses a request because the org's daily quota is spent."""
    return response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.content
