"""Operators' commands: the records a resync names, settling fields parked in a manual
conflict, and restoring a link orphaned or marked missing by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from syncworker.context import Runtime
from syncworker.model import SIDES, LinkState, Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.errors import RecordMissing, StaleLink
from syncworker.sync.failures import dead_letter
from syncworker.sync.pair import SyncOutcome, sync_link


def resolve_conflict(
    rt: Runtime, link_id: int, resolutions: dict[str, Side], *, dry_run: bool = False
) -> SyncOutcome:
    """An operator settles fields parked in a `manual` conflict: the named side wins."""
    with rt.locks.hold(f"link:{link_id}") as lock:
        return sync_link(rt, link_id, lock, dry_run=dry_run, resolutions=resolutions)


def restore_link(rt: Runtime, link_id: int) -> SyncOutcome:
    """An operator puts back a link that was orphaned or marked missing by mistake: it is
    active again and synced at once, reading both sides. A record that still cannot be read
    marks it missing again (NotFoundError); one confirmed deleted orphans it again."""
    with rt.locks.hold(f"link:{link_id}") as lock:
        with session_scope(rt.database_url) as session:
            link = repo.get_link(session, link_id)
            if link is None:
                raise LookupError(f"no link with id {link_id}")
            values = {"state": LinkState.ACTIVE, "state_reason": None}
            if not repo.save_link_state(
                session, link_id=link_id, expected_revision=link.revision, values=values
            ):
                raise StaleLink(f"link {link_id} changed while it was being restored")
        try:
            return sync_link(rt, link_id, lock, dry_run=False, fresh=True)
        except RecordMissing as missing:
            dead_letter(rt, missing.side, missing.record_id, missing, operation="sync")
            raise


def resync_targets(
    rt: Runtime,
    *,
    crm_id: str | None = None,
    zenvia_id: str | None = None,
    since: datetime | None = None,
    everything: bool = False,
) -> Iterator[tuple[Side, str]]:
    """The records an operator's resync names, as (side, id) pairs, each as soon as its
    listing shows it (a long resync queues page by page while it lists)."""
    if crm_id:
        yield "crm", crm_id
    elif zenvia_id:
        yield "zenvia", zenvia_id
    elif since or everything:
        for side in SIDES:
            connector = rt.connectors[side]
            for record in connector.changed_since(since) if since else connector.iter_all():
                yield side, record.id
