"""One running demo: beat, the quiet test, the live view, the summary and the convergence check."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from syncworker import convergence, metrics
from syncworker.celery_app import app as celery_app
from syncworker.mapping import Mapping
from syncworker.model import SIDES, Side
from syncworker.ratelimit import redis_client
from syncworker.sandbox.demo.desks import Desks
from syncworker.sandbox.demo.embedded import BEAT_INTERVAL, QUEUES
from syncworker.sandbox.demo.tally import TaskTally
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.settings import Settings
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.tasks import poll

REFRESH = 0.2


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
