"""The commit that ends a sync: baselines, versions, state, the next comment sweep and the
link's history in one transaction, fenced by the link's revision.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from syncworker import engine, history
from syncworker.context import Runtime
from syncworker.model import SIDES, LinkState, NativeFields, Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Observation
from syncworker.sync.errors import StaleLink
from syncworker.sync.load import Pair, id_on
from syncworker.sync.records import has_ended, settle_margin


def commit(
    rt: Runtime, pair: Pair, plan: engine.Plan, observations: dict[Side, Observation]
) -> None:
    """Baselines, versions and state fenced by revision, in one transaction; the queued flags
    of the sides read are cleared (`observations`: as the sync found them, to skip the ones
    with nothing to record)."""
    link = pair.link
    assert link.id is not None
    read = {side: record.version for side, record in pair.records.items() if record is not None}
    versions = {
        side: repo.boundary_version(version, pair.read_at.get(side), settle_margin(rt, side))
        for side, version in read.items()
    }
    with session_scope(rt.database_url) as session:
        for comment_pair in plan.comment_pairs:
            repo.link_comments(
                session,
                link_id=link.id,
                crm_comment_id=comment_pair.crm_comment_id,
                zenvia_comment_id=comment_pair.zenvia_comment_id,
                origin=comment_pair.origin,
            )
        values = {
            "crm_baseline": plan.crm_baseline,
            "zenvia_baseline": plan.zenvia_baseline,
            "crm_version": versions.get("crm", link.crm_version),
            "zenvia_version": versions.get("zenvia", link.zenvia_version),
            "state": plan.link_state,
            "conflict_fields": sorted({c.field for c in plan.conflicts if c.winner is None}),
            "state_reason": _conflict_reason(plan),
            "last_synced_at": rt.clock(),
            "comments_due_at": _next_sweep(rt, pair, plan),
            "write_in_flight": None,
        }
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link.id} was committed by another sync meanwhile")
        history.record_sync(
            session,
            link_id=link.id,
            plan=plan,
            records=pair.records,
            record_ids={side: id_on(pair, side) for side in SIDES},
            previous_state=link.state,
            at=rt.clock(),
        )
        again = [
            (side, record_id)
            for side, version in read.items()
            if (record_id := id_on(pair, side))
            and _unfinished(observations.get(side), versions[side])
            and repo.finish_sync(
                session, side=side, remote_id=record_id, version=version, synced=versions[side]
            )
        ]
        if link.state in (LinkState.ERROR, LinkState.MISSING):
            _close_dead_letters(session, pair)
    for side, record_id in again:
        rt.enqueue_sync(side, record_id)


def _next_sweep(rt: Runtime, pair: Pair, plan: engine.Plan) -> datetime | None:
    """When the sweep lists this ticket's comments again: one interval after this sync listed
    them (`sweep_after_listing`); unchanged if it did not."""
    listed_again = sweep_after_listing(rt, plan.zenvia_baseline or {})
    due = pair.link.comments_due_at
    if listed_again is None or pair.link.zenvia_id is None:
        return None
    return listed_again if "zenvia" in pair.listed or due is None else due


def sweep_after_listing(rt: Runtime, ticket: NativeFields) -> datetime | None:
    """When the sweep lists a ticket's comments again after a sync listed them: one interval
    on; never for a ticket that is closed or canceled (a closed ticket takes no comment) or an
    account whose actions move updatedAt."""
    if rt.settings.zenvia_actions_move_updated_at or has_ended(rt, "zenvia", ticket):
        return None
    return rt.clock() + timedelta(seconds=rt.settings.zenvia_comment_sweep_seconds)


def _conflict_reason(plan: engine.Plan) -> str | None:
    open_conflicts = [c.field for c in plan.conflicts if c.winner is None]
    if not open_conflicts:
        return None
    return "manual conflict on " + ", ".join(sorted(open_conflicts))


def _unfinished(seen: Observation | None, version: datetime) -> bool:
    """Whether the observation has anything for `finish_sync` to record: a queued flag, or a
    synced version behind `version` (a row first written during this sync is not in `seen`)."""
    return (
        seen is None
        or seen.sync_queued_at is not None
        or seen.synced_version is None
        or version > seen.synced_version
    )


def _close_dead_letters(session: Session, pair: Pair) -> None:
    """A sync that went through heals the record's earlier failures. Only a link flagged in
    error or missing has any (`dead_letter` flags it), so other commits skip the statement."""
    records = [(side, record_id) for side in SIDES if (record_id := id_on(pair, side))]
    repo.replay_dead_letters_of(session, records=records)
