"""A request gate for tests of connectors: it records what it is asked and told."""

from __future__ import annotations

import httpx

from syncworker.connectors.errors import RateLimitedError


class RecordingGate:
    """Records each consultation (`before`) and each answer (`after`: the endpoint and the
    response); while `refuse_with` is set it refuses every request with that wait."""

    def __init__(self) -> None:
        self.before: list[str] = []
        self.after: list[tuple[str, httpx.Response]] = []
        self.refuse_with: float | None = None

    def before_request(self, endpoint: str) -> None:
        self.before.append(endpoint)
        if self.refuse_with is not None:
            raise RateLimitedError(
                "shared budget spent", retry_after=self.refuse_with, remote="test gate"
            )

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        self.after.append((endpoint, response))
