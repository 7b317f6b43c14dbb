"""The faults: workers SIGKILLed, flaky remotes, Redis restarted, Postgres connections killed,
every sync delivered twice, a Case edited several times within one second, Salesforce writes
that become visible late.

Redis and Postgres are shared with other engineers on a development machine, so neither is ever
restarted here: the Redis scenario runs its own throw-away `redis-server` (no persistence, so a
restart loses every queued message, lock and budget: the worst case), and the Postgres one
simulates a restart of the database server on this run's own throw-away database by
terminating every backend connected to it (`pg_terminate_backend`) and refusing new connections
for a moment (`ALTER DATABASE … ALLOW_CONNECTIONS false`), which is what clients see while a
server restarts: broken connections, then refused ones, then service again.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import redis

from syncworker.sandbox.salesforce import VisibilityDelay
from syncworker.sandbox.server import Faults, HttpError, RateLimit
from syncworker.settings import Settings
from tests.chaos.runner import ChaosRun, Scenario, after_each_handling
from tests.conftest import ADMIN_URL

ZENVIA_WRITES = ("POST /v2/tickets", "POST /v2/tickets/{ticket_id}/actions")
SALESFORCE_WRITES = (
    "PATCH /services/data/{version}/sobjects/Case/{field}/{value}",
    "POST /services/data/{version}/sobjects/CaseComment",
)


class _Background:
    """A daemon thread running `step` until stopped; errors are counted, never raised."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: Counter[str] = Counter()

    def start(self, step: Any, every: tuple[float, float], rng: Any) -> None:
        def loop() -> None:
            while not self._stop.wait(rng.uniform(*every)):
                try:
                    step()
                except Exception as error:
                    self.errors[type(error).__name__] += 1

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


# -- (a) workers SIGKILLed -------------------------------------------------------------------------


class KillWorkers(Scenario):
    """Every 0.5-2 s, SIGKILL a random worker or, just as often, every worker right after the
    next remote create or comment is applied, before the worker could record it; replacements
    start at once. Messages a killed worker held come back only after the visibility timeout
    (≥ 900 s), so whatever they carried must be found again by reconcile."""

    name = "kill-workers"

    def __init__(self) -> None:
        self.kills = Counter[str]()
        self._armed = 0
        self._lock = threading.Lock()
        self._monkey = _Background("chaos-killer")

    def start(self, run: ChaosRun) -> None:
        for app, labels in (
            (run.stack.zenvia, ZENVIA_WRITES),
            (run.stack.salesforce, SALESFORCE_WRITES),
        ):
            for label in labels:
                after_each_handling(app, label, lambda: self._kill_if_armed(run))

        def step() -> None:
            live = [w for w in run.stack.workers if w.process.poll() is None]
            roll = run.rng.random()
            if live and roll < 0.5:
                run.rng.choice(live).kill()
                self.kills["random"] += 1
            else:
                with self._lock:
                    self._armed += 1
            run.ensure_workers()

        self._monkey.start(step, (0.5, 2.0), run.rng)

    def _kill_if_armed(self, run: ChaosRun) -> None:
        with self._lock:
            if self._armed == 0:
                return
            self._armed -= 1
        for worker in list(run.stack.workers):
            if worker.process.poll() is None:
                worker.kill()
                self.kills["all, right after a remote write"] += 1

    def stop(self, run: ChaosRun) -> None:
        self._monkey.stop()
        with self._lock:
            self._armed = 0
        run.ensure_workers()

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {"sigkill": dict(self.kills), "killer_errors": dict(self._monkey.errors)}


# -- (b) flaky remotes ----------------------------------------------------------------------------


class FlakyRemotes(Scenario):
    """20 % of requests fail: 10 % 5xx, 5 % hang past the client timeout, 5 % dropped
    connections; a tight per-second window answers 429 with Retry-After; and now and then a
    create or comment is applied but its response lost."""

    name = "flaky-remotes"
    client_timeout = 1.0

    def __init__(self) -> None:
        self.lost_responses = 0

    def overrides(self) -> dict[str, str]:
        return {"SYNCWORKER_HTTP_TIMEOUT_SECONDS": str(self.client_timeout)}

    def start(self, run: ChaosRun) -> None:
        for server in (run.stack.zenvia_server, run.stack.salesforce_server):
            server.faults = Faults(
                error_rate=0.10,
                timeout_rate=0.05,
                hang_seconds=self.client_timeout + 0.5,
                drop_rate=0.05,
                rate_limit=RateLimit(requests=25, window_seconds=1.0),
            )

    def tick(self, run: ChaosRun) -> None:
        if run.rng.random() < 0.15:
            app, labels = run.rng.choice(
                [(run.stack.zenvia, ZENVIA_WRITES), (run.stack.salesforce, SALESFORCE_WRITES)]
            )
            app.drop_next_response_after_handling(run.rng.choice(labels))  # type: ignore[attr-defined]
            self.lost_responses += 1

    def stop(self, run: ChaosRun) -> None:
        for server in (run.stack.zenvia_server, run.stack.salesforce_server):
            server.faults = Faults()
            with server.app.lock:  # lost replies armed but not yet fired: no fault after stop
                server.app._hooks.clear()  # type: ignore[attr-defined]

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        fired = sum(
            count
            for app in (run.stack.zenvia, run.stack.salesforce)
            for label, count in app.hooks_fired.items()
            if label.startswith("drop_after")
        )
        return {"responses lost after the write (armed/fired)": f"{self.lost_responses}/{fired}"}


# -- (c) Redis restarted --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnRedis:
    """A throw-away redis-server on a free loopback port: no RDB, no AOF."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"own redis-server on port {self.port} did not answer")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RestartRedis(Scenario):
    """kill -9 the broker/lock/budget Redis twice in the window, down 1-2 s each time."""

    name = "redis-restart"

    def __init__(self, server: OwnRedis) -> None:
        self.server = server
        self._schedule: list[float] = []
        self._down_until: float | None = None

    def overrides(self) -> dict[str, str]:
        return {"SYNCWORKER_BROKER_URL": self.server.url}

    def start(self, run: ChaosRun) -> None:
        now, window = time.monotonic(), run.config.seconds
        self._schedule = [now + window * 0.3, now + window * 0.65]

    def tick(self, run: ChaosRun) -> None:
        now = time.monotonic()
        if self._down_until is not None and now >= self._down_until:
            self.server.start()
            self.server.restarts += 1
            self._down_until = None
        elif self._down_until is None and self._schedule and now >= self._schedule[0]:
            self._schedule.pop(0)
            self.server.kill()
            self._down_until = now + run.rng.uniform(1.0, 2.0)

    def stop(self, run: ChaosRun) -> None:
        if not self.server.running():
            self.server.start()
            self.server.restarts += 1

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {"redis kill -9 + restart": self.server.restarts}


# -- (d) Postgres connections killed --------------------------------------------------------------


class KillPostgresConnections(Scenario):
    """Every 1-2.5 s terminate every backend on this run's database; twice, also refuse new
    connections for 1-2 s (a simulated server restart, see the module docstring)."""

    name = "postgres-restart"

    def __init__(self, database: str) -> None:
        self.database = database
        self.terminated = 0
        self.refusals = 0
        self._monkey = _Background("chaos-pg")

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(ADMIN_URL, autocommit=True)

    def _terminate(self) -> int:
        with self._admin() as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def _allow(self, allowed: bool) -> None:
        with self._admin() as admin:
            flag = "true" if allowed else "false"
            admin.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {flag}')

    def start(self, run: ChaosRun) -> None:
        outages = [run.config.seconds * 0.3, run.config.seconds * 0.7]
        started = time.monotonic()

        def step() -> None:
            if outages and time.monotonic() - started >= outages[0]:
                outages.pop(0)
                self._allow(False)
                self.refusals += 1
                try:
                    self.terminated += self._terminate()
                    time.sleep(run.rng.uniform(1.0, 2.0))
                finally:
                    self._allow(True)
            else:
                self.terminated += self._terminate()

        self._monkey.start(step, (1.0, 2.5), run.rng)

    def stop(self, run: ChaosRun) -> None:
        self._monkey.stop()
        self._allow(True)

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {
            "backends terminated": self.terminated,
            "connection refusals (1-2 s)": self.refusals,
            "injector errors": dict(self._monkey.errors),
        }


# -- (e) every task delivered twice ---------------------------------------------------------------


class DeliverTwice(Scenario):
    """Every sync that poll and reconcile enqueue is sent twice, and random pairs get two more
    deliveries at random moments, so copies of one sync run concurrently on both workers."""

    name = "deliver-twice"

    def __init__(self) -> None:
        self.extra = 0

    def start(self, run: ChaosRun) -> None:
        runtime = run.stack.runtime
        once = runtime.enqueue_sync

        def twice(side: Any, record_id: str) -> None:
            once(side, record_id)
            once(side, record_id)
            self.extra += 1

        runtime.enqueue_sync = twice
        self._once = once

    def tick(self, run: ChaosRun) -> None:
        pair = run.rng.choice(run.pairs)
        side = run.rng.choice(pair.sides())
        record_id = pair.crm_id if side == "crm" else pair.zenvia_id
        assert record_id is not None
        run.stack.runtime.enqueue_sync(side, record_id)

    def stop(self, run: ChaosRun) -> None:
        pass  # keep delivering twice through recovery: duplicates must stay harmless

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {"extra deliveries": self.extra}


# -- (f) several edits of one Case within one second ---------------------------------------------


class SameSecondEdits(Scenario):
    """Every turn, a human edits one Case `edits` times within one second, mostly the same
    field (one turn in six a field at random each time): Salesforce stamps whole seconds, so
    the edits share one `SystemModstamp`, and a poll run right after the first edit reads that
    stamp with the first value. Only the last value may end up on both sides."""

    name = "same-second-edits"
    edits = 3

    def __init__(self) -> None:
        self.bursts = Counter[str]()

    def tick(self, run: ChaosRun) -> None:
        case_ids = [pair.crm_id for pair in run.pairs if pair.crm_id]
        if not case_ids:
            return
        case_id = run.rng.choice(case_ids)
        name = run.rng.choice((None, "subject", "status", "priority", "category", "owner"))
        time.sleep(1.0 - time.time() % 1.0 + 0.005)  # start at a second's beginning
        second = int(time.time())
        try:
            run.human.edit("crm", case_id, name)
            run.beat()
            for _ in range(self.edits - 1):
                run.human.edit("crm", case_id, name)
        except HttpError as refused:  # a refused edit ends the burst; counted, not raised
            self.bursts[f"refused ({refused.code})"] += 1
            return
        self.bursts["within one second" if int(time.time()) == second else "spilled over"] += 1

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {f"bursts of {self.edits} Case edits with a poll after the first": dict(self.bursts)}


# -- (g) Salesforce writes that become visible late -----------------------------------------------


# A fifth of the agents' writes, so the ~40-pair quick run meets several late writes (at 5 %
# it met one or none); 30 s, well past a poll interval and well below the overlap.
LATE_WRITES = VisibilityDelay(share=0.2, seconds=30.0)


class DelayedVisibility(Scenario):
    """A share of the Salesforce agents' writes commits late (the sandbox's `visibility_delay`):
    invisible to the API user for `delay.seconds`, then visible with its earlier stamp; the API
    user's write to such a Case meets UNABLE_TO_LOCK_ROW meanwhile. Polls catch a late write
    only because they re-read `poll_overlap_seconds` behind their cursor, so the delay must stay
    below the overlap: the stack's short test overlap is replaced by the product's default
    (120 s), and a delay that is not shorter is refused. After the window, beat goes on for one
    delay, until every late write is visible, before recovery starts."""

    name = "delayed-visibility"

    def __init__(self, delay: VisibilityDelay = LATE_WRITES) -> None:
        overlap = Settings.model_fields["poll_overlap_seconds"].default
        if delay.seconds >= overlap:
            raise ValueError(
                f"a visibility delay of {delay.seconds} s is not below the poll overlap "
                f"({overlap} s): polls could never see the late writes"
            )
        self.delay, self.overlap = delay, overlap

    def overrides(self) -> dict[str, str]:
        return {"SYNCWORKER_POLL_OVERLAP_SECONDS": str(self.overlap)}

    def start(self, run: ChaosRun) -> None:
        run.stack.salesforce.visibility_delay = self.delay

    def stop(self, run: ChaosRun) -> None:
        run.stack.salesforce.visibility_delay = None
        every_late_write_visible = time.monotonic() + self.delay.seconds
        while time.monotonic() < every_late_write_visible:
            run.beat()
            time.sleep(run.stack.settings.poll_interval_seconds)

    def faults(self, run: ChaosRun) -> dict[str, Any]:
        return {
            f"Salesforce writes visible {self.delay.seconds:.0f} s late": (
                run.stack.salesforce.late_writes
            )
        }
