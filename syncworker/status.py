"""What `syncworker status` and the metrics exporter report: read-only views of the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from syncworker.model import SIDES, Side
from syncworker.ratelimit import SharedGate
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetter, DeadLetterStatus

LAST_ERRORS = 5


@dataclass
class Status:
    links: dict[str, int]
    backlog: int
    cursor_lag_seconds: dict[str, float | None]
    last_complete_poll: dict[str, datetime | None]
    dead_letters_open: int
    last_runs: list[dict[str, Any]]
    # Linked open tickets on Zenvia's comment sweep: how many, how many are due, and how long
    # the oldest due one has waited (a comment added in Zenvia waits for its ticket's turn).
    comment_sweep: dict[str, Any] = field(default_factory=dict)
    rate_budget: dict[str, Any] = field(default_factory=dict)
    # The newest failures with the remote's own message (open, replayed or discarded).
    last_errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_status(database_url: str, *, now: datetime, gates: dict[Side, SharedGate]) -> Status:
    with session_scope(database_url) as session:
        lag: dict[str, float | None] = {}
        polled: dict[str, datetime | None] = {}
        for side in SIDES:
            cursor = repo.get_cursor(session, side=side)
            lag[side] = (now - cursor.watermark).total_seconds() if cursor else None
            poll = repo.last_complete_run(session, kind="poll", side=side)
            polled[side] = poll.finished_at if poll else None
        runs = [
            {
                "kind": run.kind,
                "side": run.side,
                "started_at": run.started_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "complete": run.complete,
                "counts": run.counts,
                "error": run.error,
            }
            for run in repo.last_runs(session, limit=6)
        ]
        on_sweep, due, oldest_due = repo.comment_sweep(session, now=now)
        status = Status(
            links=repo.count_links_by_state(session),
            backlog=repo.backlog(session),
            cursor_lag_seconds=lag,
            last_complete_poll=polled,
            dead_letters_open=repo.count_dead_letters(session, status=DeadLetterStatus.OPEN),
            last_runs=runs,
            comment_sweep={
                "open_tickets": on_sweep,
                "due": due,
                "oldest_due_seconds": (now - oldest_due).total_seconds() if oldest_due else None,
            },
            last_errors=[
                _error(letter) for letter in repo.newest_dead_letters(session, limit=LAST_ERRORS)
            ],
        )
    for name, gate in gates.items():
        status.rate_budget[name] = {"remaining": gate.remaining(), "quota": gate.quota_used()}
    return status


def _error(letter: DeadLetter) -> dict[str, Any]:
    return {
        "dead_letter": letter.id,
        "status": letter.status,
        "side": letter.side,
        "record_id": letter.record_id,
        "link_id": letter.link_id,
        "last_seen": letter.last_seen.isoformat(),
        "attempts": letter.attempts,
        "message": letter.message,
    }
