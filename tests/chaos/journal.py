"""Every write either sandbox applied during a chaos run, who sent it and when, and every edit
people made: written beside the workers' logs when a run finds a problem, so a lost update can
be traced to the request that overwrote it (the database and the sandboxes are gone by then).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncworker.sandbox.server import Request, Response, SandboxApp

READS = ("GET", "HEAD")


class Journal:
    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def note(self, **entry: Any) -> None:
        with self._lock:
            self._entries.append({"at": datetime.now(UTC).isoformat(), **entry})

    def watch(self, remote: str, app: SandboxApp) -> None:
        """Note each write `app` applies: over HTTP it is syncworker's (it carries a token),
        in-process a person's (`syncworker.sandbox.people`)."""
        for route in app.routes:
            if route.method not in READS:
                route.handler = self._noting(remote, route.label, route.handler)

    def _noting(
        self, remote: str, label: str, original: Callable[[Request], Response]
    ) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            response = original(request)
            self.note(
                remote=remote,
                by="syncworker" if request.headers else "person",
                route=label,
                path=request.path,
                body=request.body.decode("utf-8", "replace")[:400],
                status=response.status,
            )
            return response

        return handler

    def dump(self, path: Path) -> Path:
        with self._lock, path.open("w") as out:
            for entry in self._entries:
                out.write(json.dumps(entry, default=str) + "\n")
        return path
