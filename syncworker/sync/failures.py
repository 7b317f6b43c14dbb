"""Dead letters: a record whose sync failed for good is parked with the remote's words, and its
link flagged (missing, for a 404: kept, never closed on it); everything else keeps going.
"""

from __future__ import annotations

from syncworker import history
from syncworker.connectors.errors import NotFoundError, RemoteError
from syncworker.context import Runtime
from syncworker.model import LinkState, Side
from syncworker.store import repo
from syncworker.store.db import session_scope


def dead_letter(
    rt: Runtime, side: Side, record_id: str, error: RemoteError | Exception, *, operation: str
) -> None:
    """Park a record whose sync failed for good; flag its link (missing, for a 404: kept, never
    closed on it); everything else keeps going."""
    remote = error if isinstance(error, RemoteError) else None
    with session_scope(rt.database_url) as session:
        link = repo.find_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        letter = repo.record_dead_letter(
            session,
            link_id=link.id if link else None,
            side=side,
            record_id=record_id,
            operation=operation,
            error_class=type(error).__name__,
            message=remote.describe() if remote else str(error),
            remote_status=remote.status if remote else None,
            remote_code=remote.code if remote else None,
            details=remote.details if remote else [],
        )
        repo.give_up_version(session, side=side, remote_id=record_id)
        if link is not None and link.id is not None:
            while not repo.save_link_state(
                session,
                link_id=link.id,
                expected_revision=link.revision,
                values={
                    "state": LinkState.MISSING
                    if isinstance(error, NotFoundError)
                    else LinkState.ERROR,
                    "state_reason": str(error)[:500],
                },
            ):
                session.refresh(link)  # another sync committed it meanwhile: flag it as it is
            history.record_dead_letter(session, link_id=link.id, letter=letter, at=rt.clock())
