"""Sync runs: when each poll and reconcile started and finished, with its counts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from syncworker.model import Side
from syncworker.store.tables import SyncRun
from syncworker.store.types import utcnow


def start_run(session: Session, *, kind: str, side: Side | None = None) -> SyncRun:
    run = SyncRun(kind=kind, side=side)
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session, *, run_id: int, complete: bool, counts: dict[str, int], error: str | None
) -> None:
    run = session.get(SyncRun, run_id)
    if run is not None:
        run.finished_at, run.complete, run.counts, run.error = utcnow(), complete, counts, error
        session.add(run)


def last_runs(session: Session, *, limit: int = 10) -> Sequence[SyncRun]:
    return session.exec(select(SyncRun).order_by(col(SyncRun.id).desc()).limit(limit)).all()


def last_complete_run(session: Session, *, kind: str, side: Side | None = None) -> SyncRun | None:
    query = (
        select(SyncRun)
        .where(SyncRun.kind == kind, col(SyncRun.complete).is_(True))
        .order_by(col(SyncRun.id).desc())
    )
    if side is not None:
        query = query.where(SyncRun.side == side)
    return session.exec(query).first()
