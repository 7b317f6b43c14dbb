"""`syncworker demo`: the real sync machinery in one process, with nothing installed or running.

Embedded default (DESIGN "Running it"): a SQLite mapping database in a work directory, migrated
by Alembic; Celery's in-memory transport with a real worker (thread pool) in a thread;
fakeredis for locks, rate budgets and metrics; both sandboxes on 127.0.0.1. The demo owns its
configuration: every `SYNCWORKER_*` variable of the caller is set aside while it runs.

People at both desks seed cases and tickets, then edit and comment on both sides over a few
rounds while this thread plays beat, sending `syncworker.poll` for both sides every second
through Celery. Once everything is quiet it sends one `syncworker.reconcile`, waits again, and
checks convergence (`syncworker.convergence`). The exit code is 0 only when the sides converged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from celery.contrib.testing.worker import start_worker
from celery.signals import after_task_publish, task_postrun, task_prerun
from rich.console import Console
from rich.live import Live
from rich.table import Table

from syncworker import convergence, metrics
from syncworker.celery_app import app as celery_app
from syncworker.celery_app import celery_config
from syncworker.logs import configure_logging
from syncworker.mapping import Mapping
from syncworker.model import SIDES, Side
from syncworker.ratelimit import redis_client
from syncworker.sandbox.people import SalesforcePerson, ZenviaPerson
from syncworker.sandbox.salesforce import OWNER_IDS, SalesforceSandbox
from syncworker.sandbox.server import HttpError, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.settings import PREFIX, Settings, get_settings
from syncworker.store import migrate, repo
from syncworker.store.db import reset_engines, session_scope
from syncworker.tasks import get_runtime, poll, reconcile, reset_runtime

QUEUES = ("poll", "sync", "reconcile")
BEAT_INTERVAL = 1.0
REFRESH = 0.2
SF_CLIENT_ID = "syncworker-demo"


@dataclass(frozen=True)
class DemoOptions:
    """What `syncworker demo` takes; the defaults run in well under a minute on 2 cores."""

    cases: int = 20
    tickets: int = 20
    rounds: int = 4
    seed: int = 7
    keep_db: Path | None = None
    round_seconds: float = 2.5
    settle_timeout: float = 60.0
    concurrency: int = 4


# -- configuration -------------------------------------------------------------------------------


def demo_environment(
    database_url: str,
    *,
    zenvia_url: str,
    zenvia_token: str,
    salesforce_url: str,
    salesforce_secret: str,
) -> dict[str, str]:
    """The embedded default: every setting the demo needs, nothing from outside."""
    return {
        f"{PREFIX}DATABASE_URL": database_url,
        f"{PREFIX}BROKER_URL": "memory://syncworker-demo",
        f"{PREFIX}RESULT_BACKEND": "cache+memory://",
        f"{PREFIX}ZENVIA_BASE_URL": f"{zenvia_url}/v2",
        f"{PREFIX}ZENVIA_TOKEN": zenvia_token,
        f"{PREFIX}ZENVIA_BUSINESS_HOURS": "always",
        f"{PREFIX}ZENVIA_RATE_LIMIT": "100000",
        f"{PREFIX}SALESFORCE_LOGIN_URL": salesforce_url,
        f"{PREFIX}SALESFORCE_CLIENT_ID": SF_CLIENT_ID,
        f"{PREFIX}SALESFORCE_CLIENT_SECRET": salesforce_secret,
        f"{PREFIX}POLL_INTERVAL_SECONDS": str(BEAT_INTERVAL),
        f"{PREFIX}POLL_OVERLAP_SECONDS": "5",
        # time runs fast here: an agent's comment (which does not move the ticket's updatedAt)
        # is swept within seconds, not production's five minutes
        f"{PREFIX}ZENVIA_COMMENT_SWEEP_SECONDS": str(2 * BEAT_INTERVAL),
        f"{PREFIX}HTTP_TIMEOUT_SECONDS": "5",
        f"{PREFIX}LOCK_TTL_SECONDS": "10",
        f"{PREFIX}MAX_RETRIES": "4",
        f"{PREFIX}LOG_LEVEL": "INFO",
        f"{PREFIX}LOG_JSON": "true",
    }


@contextmanager
def embedded_settings(env: dict[str, str]) -> Iterator[tuple[Settings, list[str]]]:
    """Replace every SYNCWORKER_* variable by `env` (restored afterwards), rebuild settings,
    runtime and Celery's configuration from it. Yields the settings and the names set aside."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    get_settings.cache_clear()
    reset_runtime()
    try:
        settings = get_settings()
        celery_app.conf.update(celery_config(settings))
        # The memory transport sleeps `polling_interval` (1 s) whenever a queue is empty.
        celery_app.conf.broker_transport_options = {
            **celery_app.conf.broker_transport_options,
            "polling_interval": 0.05,
        }
        yield settings, sorted(saved)
    finally:
        reset_runtime()
        reset_engines()
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)
        get_settings.cache_clear()


@contextmanager
def logging_into(path: Path, settings: Settings) -> Iterator[IO[str]]:
    """Structured logs (secrets scrubbed) into `path`, not over the live display; the handlers
    writing there are removed before the file closes."""
    root = logging.getLogger()
    with path.open("a", encoding="utf-8") as stream:
        configure_logging(level=settings.log_level, json=True, secrets=settings.secret_values())
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
        try:
            yield stream
        finally:
            root.handlers = [h for h in root.handlers if getattr(h, "stream", None) is not stream]


# -- what the worker did (Celery signals, delivered in the worker's threads) ----------------------


class TaskTally:
    """Counts our tasks as they are published and finish, and how quiet the last polls were.

    A poll counts as quiet only when it started `listing_lag` seconds after the last change:
    Zenvia's date listings show a change only that long after it was made."""

    def __init__(self, listing_lag: float = 0.0) -> None:
        self.listing_lag = listing_lag
        self._lock = threading.Lock()
        self.published: collections.Counter[str] = collections.Counter()
        self.finished: collections.Counter[str] = collections.Counter()
        self.states: collections.Counter[str] = collections.Counter()
        self._poll_started: dict[str, float] = {}
        self._changed_at = 0.0
        self.quiet_polls: dict[str, int] = dict.fromkeys(SIDES, 0)

    @contextmanager
    def listening(self) -> Iterator[TaskTally]:
        receivers: list[tuple[Any, Callable[..., None]]] = [
            (after_task_publish, self._on_publish),
            (task_prerun, self._on_prerun),
            (task_postrun, self._on_postrun),
        ]
        for signal, receiver in receivers:
            signal.connect(receiver, weak=False)
        try:
            yield self
        finally:
            for signal, receiver in receivers:
                signal.disconnect(receiver)

    @property
    def in_flight(self) -> int:
        """Published and not finished: queued, reserved, running or waiting for a retry."""
        with self._lock:
            return sum(self.published.values()) - sum(self.finished.values())

    def changed(self) -> None:
        """Records changed now: only polls that start later can say the sides are quiet."""
        with self._lock:
            self._changed_at = time.monotonic()
            self.quiet_polls = dict.fromkeys(SIDES, 0)

    def _on_publish(self, sender: str | None = None, **_: Any) -> None:
        if sender and sender.startswith("syncworker."):
            with self._lock:
                self.published[sender] += 1

    def _on_prerun(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        if task is not None and task.name == "syncworker.poll":
            with self._lock:
                self._poll_started[task_id] = time.monotonic()

    def _on_postrun(
        self, task_id: str = "", task: Any = None, retval: Any = None, state: str = "", **_: Any
    ) -> None:
        if task is None or not task.name.startswith("syncworker."):
            return
        with self._lock:
            self.finished[task.name] += 1
            self.states[f"{task.name.removeprefix('syncworker.')} {state}"] += 1
            started = self._poll_started.pop(task_id, None)
            if started is None or not isinstance(retval, dict) or "side" not in retval:
                return
            side = retval["side"]
            if retval.get("enqueued") == 0 and started >= self._changed_at + self.listing_lag:
                self.quiet_polls[side] += 1
            elif retval.get("enqueued"):
                self.quiet_polls[side] = 0


# -- the people at both desks ---------------------------------------------------------------------


class Desks:
    """Agents editing and commenting in Salesforce and Zenvia, as people would, from one seed.

    Each round touches about a quarter of the records on each side with one change (subject,
    priority/urgency, status, owner, public or internal comment) and changes the same field
    on both sides of a few linked pairs, which the mapping's conflict policies must settle.
    They work as the real APIs let them (`syncworker.sandbox.people`): Zenvia values that fit
    the catalogue, a closed record reopened before it is touched, a client on every ticket.
    """

    def __init__(self, salesforce: SalesforceSandbox, zenvia: ZenviaSandbox, seed: int) -> None:
        self.salesforce, self.zenvia = salesforce, zenvia
        self.rng = random.Random(seed)
        self.done: collections.Counter[str] = collections.Counter()

    def seed(self, cases: int, tickets: int) -> None:
        self.salesforce.agent.populate(cases)
        self.zenvia.agent.populate(tickets)
        self.done["cases seeded"], self.done["tickets seeded"] = cases, tickets

    def work(self, round_no: int, pairs: list[tuple[str, str]]) -> None:
        rng = self.rng
        cases = [str(c["Id"]) for c in self.salesforce.cases(include_deleted=False)]
        tickets = [str(t["id"]) for t in self.zenvia.tickets()]
        for case_id in rng.sample(cases, k=_share(cases, 4)):
            self._change("crm", case_id, rng.choice(CHANGES), round_no)
        for ticket_id in rng.sample(tickets, k=_share(tickets, 4)):
            self._change("zenvia", ticket_id, rng.choice(CHANGES), round_no)
        for case_id, ticket_id in rng.sample(pairs, k=_share(pairs, 8)):
            change = rng.choice(CHANGES[:4])
            self._change("crm", case_id, change, round_no)
            self._change("zenvia", ticket_id, change, round_no)
            self.done["both sides"] += 1

    def _change(self, side: Side, record_id: str, change: str, round_no: int) -> None:
        try:
            if side == "crm":
                self._on_case(record_id, change, round_no)
            else:
                self._on_ticket(record_id, change, round_no)
        except HttpError:
            self.done[f"{side} edits refused by the remote"] += 1
        else:
            self.done[f"{side} {change}"] += 1

    def _on_case(self, case_id: str, change: str, round_no: int) -> None:
        rng = self.rng
        person = SalesforcePerson(self.salesforce, rng.choice(OWNER_IDS))
        if change == "subject":
            person.edit(case_id, Subject=f"{rng.choice(TOPICS)} (Salesforce, round {round_no})")
        elif change == "priority":
            person.edit(case_id, Priority=rng.choice(self.salesforce.picklists["Priority"]))
        elif change == "status":
            person.edit(case_id, Status=rng.choice(self.salesforce.picklists["Status"]))
        elif change == "owner":
            person.edit(case_id, OwnerId=rng.choice(OWNER_IDS))
        else:
            public = change == "public comment"
            person.comment(case_id, f"{rng.choice(NOTES)} (round {round_no})", public=public)

    def _on_ticket(self, ticket_id: str, change: str, round_no: int) -> None:
        rng = self.rng
        catalogue = self.zenvia.catalogue
        person = ZenviaPerson(self.zenvia, rng, rng.choice(catalogue.agents).id)
        if change == "subject":
            person.set_subject(ticket_id, f"{rng.choice(TOPICS)} (Zenvia, round {round_no})")
        elif change == "priority":
            person.set_urgency(ticket_id)
        elif change == "status":
            person.set_status(ticket_id, catalogue.statuses)
        elif change == "owner":
            person.set_owner(ticket_id)
        else:
            public = change == "public comment"
            person.comment(ticket_id, f"{rng.choice(NOTES)} (round {round_no})", public=public)


def _share(items: list[Any], divisor: int) -> int:
    """About 1/divisor of the items, at least one when there are any."""
    return min(len(items), max(1, len(items) // divisor))


CHANGES = ("subject", "priority", "status", "owner", "public comment", "internal comment")
TOPICS = ("Invoice missing", "Login fails", "Refund request", "Plan upgrade", "API errors")
NOTES = ("Called the customer", "Waiting for finance", "Sent the fix", "Escalated to N2")


# -- the demo -------------------------------------------------------------------------------------


@dataclass
class Demo:
    """One running demo: beat, the quiet test, the live view, the summary and the check."""

    options: DemoOptions
    settings: Settings
    salesforce: SalesforceSandbox
    salesforce_server: SandboxServer
    zenvia: ZenviaSandbox
    zenvia_server: SandboxServer
    desks: Desks
    tally: TaskTally
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    _last_beat: float = 0.0

    # -- beat ---------------------------------------------------------------------------------

    def beat(self) -> None:
        """Poll both sides through Celery, once per BEAT_INTERVAL."""
        if time.monotonic() - self._last_beat >= BEAT_INTERVAL:
            self._last_beat = time.monotonic()
            for side in SIDES:
                poll.delay(side)

    def run_for(self, seconds: float, live: Live) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.beat()
            live.update(self.progress())
            time.sleep(REFRESH)

    def settle(self, live: Live) -> bool:
        """Beat until two polls of each side find nothing new and no task is left in flight."""
        deadline = time.monotonic() + self.options.settle_timeout
        while time.monotonic() < deadline:
            if self.quiet():
                return True
            self.beat()
            live.update(self.progress())
            time.sleep(REFRESH)
        return False

    def quiet(self) -> bool:
        return (
            all(count >= 2 for count in self.tally.quiet_polls.values())
            and self.tally.in_flight == 0
            and self.db_backlog() == 0
        )

    # -- what there is to see -------------------------------------------------------------------

    def db_backlog(self) -> int:
        with session_scope(self.settings.database_url) as session:
            return repo.backlog(session)

    def linked_pairs(self) -> list[tuple[str, str]]:
        with session_scope(self.settings.database_url) as session:
            return [
                (link.crm_id, link.zenvia_id)
                for link in repo.all_links(session)
                if link.crm_id and link.zenvia_id
            ]

    def broker_backlog(self) -> int:
        with celery_app.connection_for_read() as connection:
            channel = connection.default_channel
            return sum(channel.queue_declare(queue=q, passive=True).message_count for q in QUEUES)

    def progress(self) -> Table:
        """The live view: one line per figure, narrow enough for any terminal."""
        states = self.tally.states
        human = sum(n for key, n in self.desks.done.items() if key.startswith(SIDES))
        retries = sum(n for key, n in states.items() if key.endswith("RETRY"))
        table = Table(title="syncworker demo: SQLite, in-memory Celery, both sandboxes")
        table.add_column("phase", style="bold")
        table.add_column(f"{self.phase}   ({time.monotonic() - self.started:.1f} s)")
        table.add_row("human edits and comments", str(human))
        table.add_row("polls (beat, via Celery)", str(self.tally.finished["syncworker.poll"]))
        table.add_row("syncs done", f"{states['sync SUCCESS']} ({retries} retried)")
        table.add_row(
            "queue backlog", f"{self.broker_backlog()} queued, {self.tally.in_flight} in flight"
        )
        table.add_row(
            "API calls",
            f"Salesforce {self.salesforce_server.counters.total}, "
            f"Zenvia {self.zenvia_server.counters.total}",
        )
        return table

    def check(self, mapping: Mapping) -> convergence.ConvergenceReport:
        with session_scope(self.settings.database_url) as session:
            links = [(link.crm_id, link.zenvia_id) for link in repo.all_links(session)]
        return convergence.check(
            mapping,
            crm=convergence.crm_state(self.salesforce),
            zenvia=convergence.zenvia_state(self.zenvia),
            links=links,
        )

    def summary(self, report: convergence.ConvergenceReport) -> Table:
        client = redis_client(self.settings.effective_redis_url)
        propagated = _counts(client, metrics.PROPAGATED)
        conflicts = _counts(client, metrics.CONFLICTS)
        with session_scope(self.settings.database_url) as session:
            dead = repo.count_dead_letters(session, status="open")
        done = self.desks.done

        def both(kind: str) -> str:
            return (
                f"{propagated[(kind, 'crm_to_zenvia')]} Salesforce → Zenvia, "
                f"{propagated[(kind, 'zenvia_to_crm')]} Zenvia → Salesforce"
            )

        def edits(side: Side) -> str:
            return ", ".join(
                f"{n} {key.removeprefix(side + ' ')}"
                for key, n in sorted(done.items())
                if key.startswith(side + " ")
            )

        table = Table(title="summary", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("seeded", f"{done['cases seeded']} cases, {done['tickets seeded']} tickets")
        table.add_row("people in Salesforce", edits("crm") or "-")
        table.add_row("people in Zenvia", edits("zenvia") or "-")
        table.add_row("same field edited on both sides", str(done["both sides"]))
        table.add_row("records created", both("create"))
        table.add_row("fields updated", both("update"))
        table.add_row("comments copied", both("comment"))
        settled = ", ".join(f"{f} by {p}: {n}" for (f, p), n in sorted(conflicts.items()))
        table.add_row(
            "conflicts settled", f"{sum(conflicts.values())}" + (f" ({settled})" if settled else "")
        )
        table.add_row(
            "tasks",
            ", ".join(f"{n} {state}" for state, n in sorted(self.tally.states.items())),
        )
        table.add_row(
            "API calls",
            f"Salesforce {self.salesforce_server.counters.total}, "
            f"Zenvia {self.zenvia_server.counters.total}",
        )
        table.add_row("dead letters", str(dead))
        verdict = "[green]CONVERGED[/]" if report.converged else "[red]NOT CONVERGED[/]"
        table.add_row(
            "convergence",
            f"{verdict}: {report.scope()}"
            + ("" if report.converged else f", {len(report.differences)} difference(s)"),
        )
        table.add_row("wall time", f"{time.monotonic() - self.started:.1f} s")
        return table


def _counts(client: Any, family: metrics.Family) -> collections.Counter[tuple[str, ...]]:
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for raw, value in client.hgetall(family.key).items():
        labels = metrics.parse_label_field(raw, len(family.labels))
        if labels is not None:
            counts[labels] += int(value)
    return counts


def run(options: DemoOptions, console: Console) -> int:
    """Run the demo end to end; 0 when both sides converged, 1 otherwise."""
    if options.keep_db is not None and options.keep_db.exists():
        raise FileExistsError(f"{options.keep_db} exists; the demo starts from an empty database")
    workdir = Path(tempfile.mkdtemp(prefix="syncworker-demo-"))
    db_path = options.keep_db.resolve() if options.keep_db else workdir / "syncworker.sqlite3"
    log_path = db_path.with_suffix(".log") if options.keep_db else workdir / "worker.log"
    converged = False
    with ExitStack() as stack:
        zenvia_token, salesforce_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        salesforce = SalesforceSandbox(
            client_id=SF_CLIENT_ID, client_secret=salesforce_secret, seed=options.seed
        )
        zenvia = ZenviaSandbox(token=zenvia_token, seed=options.seed)
        salesforce_server = stack.enter_context(SandboxServer(salesforce))
        zenvia_server = stack.enter_context(SandboxServer(zenvia))
        env = demo_environment(
            f"sqlite:///{db_path}",
            zenvia_url=zenvia_server.base_url,
            zenvia_token=zenvia_token,
            salesforce_url=salesforce_server.base_url,
            salesforce_secret=salesforce_secret,
        )
        settings, set_aside = stack.enter_context(embedded_settings(env))
        if set_aside:
            console.print(
                f"The demo is self-contained: ignoring {', '.join(set_aside)} from the environment."
            )
        log_file = stack.enter_context(logging_into(log_path, settings))
        migrate.upgrade(settings.database_url)
        get_runtime()  # built once here, before the worker's threads all want it
        demo = Demo(
            options=options,
            settings=settings,
            salesforce=salesforce,
            salesforce_server=salesforce_server,
            zenvia=zenvia,
            zenvia_server=zenvia_server,
            desks=Desks(salesforce, zenvia, options.seed),
            tally=TaskTally(listing_lag=zenvia.listing_lag.total_seconds()),
        )
        stack.enter_context(demo.tally.listening())
        # The worker's start sets logging up again (our setup_logging receiver, on stderr).
        with contextlib.redirect_stderr(log_file):
            stack.enter_context(
                start_worker(
                    celery_app,
                    pool="threads",
                    concurrency=options.concurrency,
                    perform_ping_check=False,
                    queues=list(QUEUES),
                    loglevel=settings.log_level,
                    shutdown_timeout=30.0,
                )
            )
        converged = _play(demo, console)
    if converged or options.keep_db:
        shutil.rmtree(workdir, ignore_errors=True)  # with --keep-db nothing was written there
    if options.keep_db or not converged:
        console.print(f"mapping database: {db_path}\nworker log: {log_path}", highlight=False)
    return 0 if converged else 1


def _play(demo: Demo, console: Console) -> bool:
    options = demo.options
    with Live(demo.progress(), console=console, refresh_per_second=4) as live:
        demo.phase = "seeding"
        demo.desks.seed(options.cases, options.tickets)
        demo.tally.changed()
        demo.phase = "initial sync"
        demo.settle(live)
        for round_no in range(1, options.rounds + 1):
            demo.phase = f"round {round_no}/{options.rounds}"
            demo.desks.work(round_no, demo.linked_pairs())
            demo.tally.changed()
            demo.run_for(options.round_seconds, live)
        demo.phase = "settling"
        settled = demo.settle(live)
        demo.phase = "reconcile"
        demo.tally.changed()
        reconcile.delay()
        settled = demo.settle(live) and settled
        demo.phase = "done" if settled else "gave up waiting"
        live.update(demo.progress())
    report = demo.check(get_runtime().mapping)
    console.print()
    console.print(demo.summary(report))
    if not settled:
        console.print(
            f"[yellow]The sync was still busy after {options.settle_timeout:.0f} s of waiting.[/]"
        )
    if not report.converged:
        for difference in report.differences:
            console.print(f"  - {difference}", markup=False, highlight=False)
    return report.converged and settled


__all__ = ["DemoOptions", "TaskTally", "demo_environment", "embedded_settings", "run"]
