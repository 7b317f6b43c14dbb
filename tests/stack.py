"""A real deployment in miniature for integration, chaos and benchmark runs.

Both sandboxes serve over real sockets in this process; Celery workers run as separate OS
processes (so they can be SIGKILLed) against the real Redis and a throw-away Postgres
database migrated by Alembic. Polls and reconciles can be run here, in-process, exactly as
beat would trigger them in a worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis

from syncworker import sync
from syncworker.celery_app import app as celery_app
from syncworker.celery_app import celery_config
from syncworker.context import Runtime
from syncworker.mapping import Mapping
from syncworker.runtime import build_runtime
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import ZenviaCatalogue
from syncworker.settings import Settings, get_settings, load_settings
from syncworker.store import migrate, repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link
from syncworker.tasks import reset_runtime

ZENVIA_TOKEN = "zen-test-token-7f3a9c"
SF_CLIENT_ID = "sw-test-client"
SF_CLIENT_SECRET = "sf-test-secret-41be02"
REPO_ROOT = Path(__file__).resolve().parents[1]
QUIET_MARGIN = 0.05  # seconds past the listing lag before the last quiet poll
BROKER_URL = os.environ.get("SYNCWORKER_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> None:
    """Poll `predicate` until it holds; fail with `what` when it does not within `timeout`."""
    if not holds_within(predicate, timeout=timeout, interval=interval):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")


def holds_within(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    """Whether `predicate` holds at some check within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class WorkerExited(AssertionError):
    """A worker process ended before it answered its first ping."""


def answers_ping(worker_name: str) -> bool:
    """Whether the worker answers; a broker that is restarting (chaos) just means not yet."""
    try:
        return bool(celery_app.control.ping(destination=[worker_name], timeout=0.5))
    except (redis.exceptions.ConnectionError, kombu.exceptions.OperationalError, OSError):
        return False


@dataclass
class Worker:
    """One `celery worker` OS process (its own process group, so it can be killed whole)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    database_url: str
    tmp: Path
    zenvia: ZenviaSandbox
    zenvia_server: SandboxServer
    salesforce: SalesforceSandbox
    salesforce_server: SandboxServer
    env: dict[str, str]
    settings: Settings
    runtime: Runtime
    workers: list[Worker] = field(default_factory=list)

    @property
    def mapping(self) -> Mapping:
        return self.runtime.mapping

    # -- processes ------------------------------------------------------------------------

    def start_worker(
        self,
        *,
        concurrency: int = 2,
        queues: str = "poll,sync,reconcile",
        app: str = "syncworker",
        name_prefix: str = "w",
        env: dict[str, str] | None = None,
    ) -> Worker:
        """Start a worker OS process and wait until it answers a ping; benchmarks pass their
        own `app` (the syncworker app plus a baseline task)."""
        name = f"{name_prefix}{len(self.workers) + 1}-{os.getpid()}@localhost"
        log_path = self.tmp / f"{name.split('@')[0]}.log"
        command = [
            *(sys.executable, "-m", "celery", "-A", app, "worker"),
            *("-Q", queues, "-c", str(concurrency), "-n", name, "-l", "INFO"),
            *("--without-gossip", "--without-mingle", "-E"),
        ]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                env={**os.environ, **self.env, **(env or {})},
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, process, log_path)
        self.workers.append(worker)
        wait_until(
            lambda: process.poll() is not None or answers_ping(name),
            timeout=60,
            what=f"worker {name} to answer a ping; its log:\n{worker.log()[-3000:]}",
        )
        if process.poll() is not None:
            raise WorkerExited(
                f"worker {name} exited ({process.returncode}) before answering a ping; "
                f"its log:\n{worker.log()[-3000:]}"
            )
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    # -- what beat would trigger ----------------------------------------------------------

    def poll(self) -> list[sync.PollOutcome]:
        return [sync.poll(self.runtime, side) for side in ("crm", "zenvia")]

    def reconcile(self) -> sync.ReconcileOutcome:
        return sync.reconcile(self.runtime)

    # -- looking at the result ------------------------------------------------------------

    def links(self) -> list[Link]:
        with session_scope(self.database_url) as session:
            return list(repo.all_links(session))

    def backlog(self) -> int:
        with session_scope(self.database_url) as session:
            return repo.backlog(session)

    def tickets(self) -> list[dict[str, Any]]:
        return self.zenvia.tickets()

    def cases(self) -> list[dict[str, Any]]:
        return [c for c in self.salesforce.cases() if not c.get("IsDeleted")]

    def settle(self, *, timeout: float = 90.0) -> None:
        """Poll both sides until polls find nothing new and every queued sync has run.

        Zenvia's date-filtered listings lag (`listing_lag`): a ticket written just before a
        poll is not listed yet. So the quiet polls must span more than the lag, counted from
        the start of the first one (after every write the syncs before it made): the last of
        them lists all of it. Between the first quiet poll and that one the stack just waits.
        """
        deadline = time.monotonic() + timeout
        lag = self.zenvia.listing_lag.total_seconds()
        quiet_since: float | None = None
        while True:
            started = time.monotonic()
            if started > deadline:
                raise AssertionError(
                    f"no quiet state within {timeout:.0f} s (sync backlog {self.backlog()})"
                )
            outcomes = self.poll()
            enqueued = sum(outcome.enqueued for outcome in outcomes)
            complete = all(outcome.complete for outcome in outcomes)
            # a sync whose message a killed worker took with it is sent again by a poll once
            # its flag is stale: poll again when the backlog has not drained by then
            drained = holds_within(
                lambda: self.backlog() == 0 and _queues_empty(),
                timeout=min(self.settings.stale_queued_seconds + 1, deadline - time.monotonic()),
            )
            if not drained:
                quiet_since = None
                continue
            if not (enqueued == 0 and complete):
                quiet_since = None
                if not complete:  # the budget stopped a poll: give the window time, as beat does
                    time.sleep(self.settings.poll_interval_seconds)
                continue
            if quiet_since is None:
                quiet_since = started
            elif started - quiet_since > lag:
                return
            time.sleep(max(0.0, quiet_since + lag + QUIET_MARGIN - time.monotonic()))


def _queues_empty() -> bool:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        return all(client.llen(queue) == 0 for queue in ("sync", "poll", "reconcile"))
    finally:
        client.close()


def stack_settings(database_url: str, zenvia_url: str, salesforce_url: str) -> dict[str, str]:
    return {
        "SYNCWORKER_DATABASE_URL": database_url,
        "SYNCWORKER_BROKER_URL": BROKER_URL,
        "SYNCWORKER_ZENVIA_BASE_URL": f"{zenvia_url}/v2",
        "SYNCWORKER_ZENVIA_TOKEN": ZENVIA_TOKEN,
        "SYNCWORKER_ZENVIA_BUSINESS_HOURS": "always",
        "SYNCWORKER_ZENVIA_RATE_LIMIT": "100000",
        "SYNCWORKER_SALESFORCE_LOGIN_URL": salesforce_url,
        "SYNCWORKER_SALESFORCE_CLIENT_ID": SF_CLIENT_ID,
        "SYNCWORKER_SALESFORCE_CLIENT_SECRET": SF_CLIENT_SECRET,
        "SYNCWORKER_POLL_INTERVAL_SECONDS": "2",
        "SYNCWORKER_POLL_OVERLAP_SECONDS": "5",
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": "1",
        # the sandbox's listings lag 2 s: a lost create is looked for once they show it
        "SYNCWORKER_ZENVIA_LISTING_LAG_SECONDS": "2.5",
        # one clock for the sandboxes and the product: no skew to allow for
        "SYNCWORKER_CLOCK_SKEW_SECONDS": "0",
        "SYNCWORKER_HTTP_TIMEOUT_SECONDS": "3",
        "SYNCWORKER_MAX_RETRIES": "4",
        "SYNCWORKER_LOG_JSON": "true",
        "SYNCWORKER_LOCK_TTL_SECONDS": "5",
        # a sync message a killed worker took with it is sent again by the polls after this
        "SYNCWORKER_STALE_QUEUED_SECONDS": "20",
    }


@contextlib.contextmanager
def running_stack(
    database_url: str,
    tmp: Path,
    *,
    catalogue: ZenviaCatalogue | None = None,
    **overrides: str,
) -> Iterator[Stack]:
    """Sandboxes up, broker emptied, settings pointed at them; workers stopped afterwards."""
    migrate.upgrade(database_url)
    zenvia = ZenviaSandbox(token=ZENVIA_TOKEN, seed=7, catalogue=catalogue)
    salesforce = SalesforceSandbox(client_id=SF_CLIENT_ID, client_secret=SF_CLIENT_SECRET, seed=7)
    with SandboxServer(zenvia) as zenvia_server, SandboxServer(salesforce) as salesforce_server:
        env = {
            **stack_settings(database_url, zenvia_server.base_url, salesforce_server.base_url),
            **overrides,
        }
        redis.Redis.from_url(BROKER_URL).flushdb()
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        get_settings.cache_clear()
        reset_runtime()
        settings = load_settings()
        celery_app.conf.update(celery_config(settings))
        from syncworker.tasks import enqueue_sync, syncs_waiting

        runtime = build_runtime(settings, enqueue_sync=enqueue_sync, syncs_waiting=syncs_waiting)
        for gate in runtime.gates.values():
            gate.reset()
        stack = Stack(
            database_url=database_url,
            tmp=tmp,
            zenvia=zenvia,
            zenvia_server=zenvia_server,
            salesforce=salesforce,
            salesforce_server=salesforce_server,
            env=env,
            settings=settings,
            runtime=runtime,
        )
        try:
            yield stack
        finally:
            stack.stop_workers()
            runtime.close()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            get_settings.cache_clear()
            reset_runtime()
