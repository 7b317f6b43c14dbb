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

from syncworker.sandbox.demo.embedded import demo_environment, embedded_settings
from syncworker.sandbox.demo.play import run
from syncworker.sandbox.demo.stage import DemoOptions
from syncworker.sandbox.demo.tally import TaskTally

__all__ = ["DemoOptions", "TaskTally", "demo_environment", "embedded_settings", "run"]
