"""Dead letters: operations that failed for good, kept for an operator."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, tuple_, update
from sqlmodel import Session, col, select

from syncworker.model import Side
from syncworker.store.tables import DeadLetter, DeadLetterStatus
from syncworker.store.types import utcnow


def record_dead_letter(
    session: Session,
    *,
    link_id: int | None,
    side: Side,
    record_id: str,
    operation: str,
    error_class: str,
    message: str,
    remote_status: int | None = None,
    remote_code: str | None = None,
    details: Sequence[str] = (),
) -> DeadLetter:
    """Open (or re-open, counting attempts) the dead letter for this operation on this record."""
    query = select(DeadLetter).where(
        DeadLetter.side == side,
        DeadLetter.record_id == record_id,
        DeadLetter.operation == operation,
    )
    letter = session.exec(query).first()
    now = utcnow()
    if letter is None:
        letter = DeadLetter(
            link_id=link_id,
            side=side,
            record_id=record_id,
            operation=operation,
            error_class=error_class,
            message=message,
            details=list(details),
            remote_status=remote_status,
            remote_code=remote_code,
        )
    else:
        letter.attempts += 1
        letter.last_seen = now
        letter.status = DeadLetterStatus.OPEN
        letter.error_class, letter.message, letter.details = error_class, message, list(details)
        letter.remote_status, letter.remote_code = remote_status, remote_code
    session.add(letter)
    session.flush()
    return letter


def list_dead_letters(session: Session, *, status: str | None = None) -> Sequence[DeadLetter]:
    query = select(DeadLetter).order_by(col(DeadLetter.id))
    if status:
        query = query.where(DeadLetter.status == status)
    return session.exec(query).all()


def count_dead_letters(session: Session, *, status: str) -> int:
    query = select(func.count()).where(DeadLetter.status == status)
    return session.exec(query).one()


def get_dead_letter(session: Session, letter_id: int) -> DeadLetter | None:
    return session.get(DeadLetter, letter_id)


def close_dead_letter(session: Session, *, letter_id: int, status: DeadLetterStatus) -> None:
    letter = session.get(DeadLetter, letter_id)
    if letter is not None:
        letter.status = status
        letter.replayed_at = utcnow() if status == DeadLetterStatus.REPLAYED else None
        session.add(letter)


def replay_dead_letters_of(session: Session, *, records: Sequence[tuple[Side, str]]) -> None:
    """Mark the open dead letters of these (side, record id)s replayed, in one statement."""
    if records:
        session.execute(
            update(DeadLetter)
            .where(
                col(DeadLetter.status) == DeadLetterStatus.OPEN,
                tuple_(col(DeadLetter.side), col(DeadLetter.record_id)).in_(records),
            )
            .values(status=DeadLetterStatus.REPLAYED, replayed_at=utcnow())
        )


def newest_dead_letters(session: Session, *, limit: int) -> Sequence[DeadLetter]:
    """The dead letters that failed most recently, newest first, whatever their status."""
    query = select(DeadLetter).order_by(col(DeadLetter.last_seen).desc(), col(DeadLetter.id).desc())
    return session.exec(query.limit(limit)).all()
