"""The demo end to end: start the sandboxes, the embedded stack and a worker in a thread, play
the seeding and rounds, settle, reconcile, and say whether both sides converged."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from celery.contrib.testing.worker import start_worker
from rich.console import Console
from rich.live import Live

from syncworker.celery_app import app as celery_app
from syncworker.sandbox.demo.desks import Desks
from syncworker.sandbox.demo.embedded import (
    QUEUES,
    SF_CLIENT_ID,
    demo_environment,
    embedded_settings,
    logging_into,
)
from syncworker.sandbox.demo.stage import Demo, DemoOptions
from syncworker.sandbox.demo.tally import TaskTally
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.store import migrate
from syncworker.tasks import get_runtime, reconcile


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
