"""Replaying a dead letter: the one way every entry point (the CLI's `dead-letters retry`, the
`syncworker.replay` task) sends a parked record through the normal sync path again."""

from __future__ import annotations

from collections.abc import Callable

from syncworker.model import Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetterStatus

__all__ = ["replay"]


def replay(
    database_url: str, letter_id: int, enqueue_sync: Callable[[Side, str], None]
) -> tuple[Side, str]:
    """Mark the letter replayed and queue its record's sync; the (side, record id) queued.

    The mark is committed only once the sync is queued, so a queue that refuses leaves the
    letter open; a sync that fails again re-opens it (`repo.record_dead_letter`). Raises
    LookupError for an unknown id.
    """
    with session_scope(database_url) as session:
        letter = repo.get_dead_letter(session, letter_id)
        if letter is None:
            raise LookupError(f"no dead letter with id {letter_id}")
        side: Side = "crm" if letter.side == "crm" else "zenvia"
        repo.close_dead_letter(session, letter_id=letter_id, status=DeadLetterStatus.REPLAYED)
        enqueue_sync(side, letter.record_id)
        return side, letter.record_id
