"""The HTTP core shared by every sandbox: routing, auth hook, fault injection, counters.

Built on the standard library's threading HTTP server so the sandboxes can drop a
connection or hang past a client timeout exactly like a misbehaving remote would.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock_time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class HttpError(Exception):
    """Raised by a handler to answer with an error; the app renders the vendor's error body."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.body:
            raise HttpError(400, "VALIDATION_ERROR", "request body is required")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, "VALIDATION_ERROR", f"malformed JSON body: {exc}") from exc


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Send nothing and drop the connection; the handler's effects stay (a lost response).
    drop_connection: bool = False


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    label: str
    handler: Handler


@dataclass
class RateLimit:
    """Zenvia-style: `requests` per fixed `window_seconds`, optionally only in business hours."""

    requests: int
    window_seconds: float = 60.0
    business_hours: tuple[clock_time, clock_time] | None = None
    timezone: str = "America/Sao_Paulo"

    def applies_at(self, moment: datetime) -> bool:
        if self.business_hours is None:
            return True
        local = moment.astimezone(ZoneInfo(self.timezone)).time()
        start, end = self.business_hours
        return start <= local < end


@dataclass
class Faults:
    """Misbehaviour switchable at run time; every rate is a probability per request."""

    latency_seconds: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 5.0
    drop_rate: float = 0.0
    rate_limit: RateLimit | None = None


@dataclass
class Counters:
    """What the sandbox saw, for tests and benchmarks."""

    by_endpoint: collections.Counter[str] = field(default_factory=collections.Counter)
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    throttled: int = 0
    injected: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())


@dataclass
class _Hook:
    """A one-shot fault armed on a route: `act` serves the request in its place."""

    kind: str  # "drop_before" | "drop_after" | "fail" | "answer" | "rewrite"
    remaining: int
    act: Callable[[Request, Handler], Response]


class SandboxApp:
    """A vendor API: subclasses register routes and say how errors and auth look.

    Every route can be armed with one-shot faults (`fail_next`, `drop_next_request`, …) by its
    label, so tests stage a lost reply or a malformed answer on exactly one request.
    """

    name = "sandbox"

    def __init__(self, *, seed: int = 0, clock: Clock = utc_now) -> None:
        self.routes: list[Route] = []
        self.lock = threading.RLock()
        self.seed = seed
        self.clock = clock
        self._raw: dict[str, Handler] = {}  # label → handler without hooks (in-process calls)
        self._hooks: dict[str, list[_Hook]] = {}
        self.hooks_fired: collections.Counter[str] = collections.Counter()

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Register `template` like `/tickets/{ticket_id}`; the label is the template itself."""
        label = f"{method} {template}"
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._raw[label] = handler
        self.routes.append(
            Route(method, re.compile(f"^{regex}$"), label, self._hooked(label, handler))
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in self.routes:
            found = candidate.pattern.match(path)
            if found and candidate.method == method:
                return candidate, found.groupdict()
        return None

    def authenticate(self, request: Request) -> None:
        """Raise HttpError when the request's credentials are refused."""

    def screen(self, request: Request) -> None:
        """Raise HttpError for a matched request the vendor refuses before any handler (or armed
        fault) sees it, e.g. an API version it does not serve."""

    def error_response(self, error: HttpError) -> Response:
        return Response(error.status, {"code": error.code, "message": error.message})

    def throttled_response(self, retry_after: int) -> Response:
        return Response(
            429,
            {"code": "TOO_MANY_REQUESTS", "message": "Too many requests"},
            {"Retry-After": str(retry_after)},
        )

    def decorate(self, request: Request, response: Response) -> None:
        """Add headers every response carries (e.g. Salesforce's Sforce-Limit-Info)."""

    def reset(self) -> None:
        """Forget armed faults; subclasses also forget their records and re-seed."""
        with self.lock:
            self._hooks.clear()
            self.hooks_fired.clear()

    # -- one-shot faults (tests) ------------------------------------------------------------

    def drop_next_response_after_handling(self, label: str, *, times: int = 1) -> None:
        """Handle the next `times` requests to `label` (a route label such as
        `"POST /v2/tickets"`), then drop the connection instead of answering: the change is
        made, the client never hears."""

        def act(request: Request, handler: Handler) -> Response:
            response = handler(request)
            response.drop_connection = True
            return response

        self._arm(label, _Hook("drop_after", times, act))

    def drop_next_request(self, label: str, *, times: int = 1) -> None:
        """Drop the connection of the next `times` requests to `label` before handling them."""
        self._arm(
            label, _Hook("drop_before", times, lambda _r, _h: Response(500, drop_connection=True))
        )

    def fail_next_with(self, label: str, error: HttpError, *, times: int = 1) -> None:
        """Answer the next `times` requests to `label` with `error` (rendered the vendor's way),
        unhandled. The sandboxes' `fail_next` build `error` from the vendor's error fields."""

        def act(_request: Request, _handler: Handler) -> Response:
            raise error

        self._arm(label, _Hook("fail", times, act))

    def answer_next(
        self,
        label: str,
        status: int,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `label` with this (JSON) body, unhandled: for
        testing how clients cope with answers of the wrong shape."""
        fixed = dict(headers or {})
        self._arm(label, _Hook("answer", times, lambda _r, _h: Response(status, body, dict(fixed))))

    def rewrite_next_response(
        self, label: str, rewrite: Callable[[Response], Response], *, times: int = 1
    ) -> None:
        """Handle the next `times` requests to `label`, then answer `rewrite(response)`
        instead (a misbehaving remote: wrong types, missing fields, odd headers)."""
        self._arm(label, _Hook("rewrite", times, lambda request, h: rewrite(h(request))))

    def _arm(self, label: str, hook: _Hook) -> None:
        if label not in self._raw:
            raise ValueError(f"unknown endpoint {label!r}; known: {sorted(self._raw)}")
        with self.lock:
            self._hooks.setdefault(label, []).append(hook)

    def _take_hook(self, label: str) -> _Hook | None:
        pending = self._hooks.get(label)
        if not pending:
            return None
        hook = pending[0]
        hook.remaining -= 1
        if hook.remaining <= 0:
            pending.pop(0)
        return hook

    def _hooked(self, label: str, handler: Handler) -> Handler:
        def serve(request: Request) -> Response:
            self.screen(request)
            hook = self._take_hook(label)
            if hook is None:
                return handler(request)
            self.hooks_fired[f"{hook.kind} {label}"] += 1
            return hook.act(request, handler)

        return serve


class _Window:
    """A fixed-window counter, the way Zenvia's help centre describes its limit."""

    def __init__(self) -> None:
        self.started = 0.0
        self.used = 0

    def take(self, limit: RateLimit, now: float) -> float:
        """Return 0 when a request may pass, else the seconds until the window resets."""
        if now - self.started >= limit.window_seconds:
            self.started, self.used = now, 0
        if self.used < limit.requests:
            self.used += 1
            return 0.0
        return limit.window_seconds - (now - self.started)


class SandboxServer:
    """Serves one SandboxApp on a real socket, in a background thread."""

    def __init__(
        self,
        app: SandboxApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"refusing to serve the {app.name} sandbox on non-loopback address {host!r}; "
                "pass allow_remote=True (CLI: --allow-remote) if you really mean it"
            )
        self.app = app
        self.faults = Faults()
        self.counters = Counters()
        self._random = random.Random(app.seed)
        self._window = _Window()
        self._stats_lock = threading.Lock()
        self._http = ThreadingHTTPServer((host, port), _make_handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.app.name}-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def reset_counters(self) -> None:
        with self._stats_lock:
            self.counters = Counters()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request pipeline -------------------------------------------------------------------

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def fault_for(self, label: str) -> str | None:
        """Decide (deterministically for a seed) which fault, if any, hits this request."""
        faults = self.faults
        with self._stats_lock:
            self.counters.by_endpoint[label] += 1
            for kind, rate in (
                ("drop", faults.drop_rate),
                ("timeout", faults.timeout_rate),
                ("error", faults.error_rate),
            ):
                if self._roll(rate):
                    self.counters.injected[kind] += 1
                    return kind
        return None

    def throttle(self) -> int | None:
        """Seconds to wait when the simulated rate limit refuses this request."""
        limit = self.faults.rate_limit
        if limit is None or not limit.applies_at(self.app.clock()):
            return None
        with self._stats_lock:
            wait = self._window.take(limit, time.monotonic())
            if wait > 0:
                self.counters.throttled += 1
                return max(1, int(wait + 0.999))
        return None

    def record_status(self, status: int) -> None:
        with self._stats_lock:
            self.counters.by_status[status] += 1


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _make_handler(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    app = server.app

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
        server_version = f"{app.name}-sandbox"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging; counters tell tests what happened."""

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            matched = app.match(request.method, request.path)
            label = matched[0].label if matched else f"{request.method} <unknown>"
            fault = server.fault_for(label)
            if fault == "drop":
                self._drop()
                return
            if fault == "timeout":
                time.sleep(server.faults.hang_seconds)
                self._drop()
                return
            if server.faults.latency_seconds:
                time.sleep(server.faults.latency_seconds)
            response = self._dispatch(request, matched, fault)
            if response.drop_connection:
                self._drop()
                return
            self._send(request, response)

        def _dispatch(
            self, request: Request, matched: tuple[Route, dict[str, str]] | None, fault: str | None
        ) -> Response:
            try:
                retry_after = server.throttle()
                if retry_after is not None:
                    return app.throttled_response(retry_after)
                if fault == "error":
                    raise HttpError(500, "INTERNAL_ERROR", "injected server error")
                app.authenticate(request)
                if matched is None:
                    raise HttpError(
                        404, "NOT_FOUND", f"no route for {request.method} {request.path}"
                    )
                route, params = matched
                request.params = params
                with app.lock:
                    return route.handler(request)
            except HttpError as error:
                return app.error_response(error)

        def _send(self, request: Request, response: Response) -> None:
            app.decorate(request, response)
            server.record_status(response.status)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status, HTTPStatus(response.status).phrase)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.body is not None:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)  # a client that went away (or was killed) mid-reply

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return _Handler
