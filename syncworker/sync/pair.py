"""Syncing one pair, the path every sync takes: resolve the link (`link`), load both sides
(`load`), plan (`engine.plan`, pure), read again a side the plan overwrites, apply the writes
(`apply`, `intents`), commit (`commit`). Also the dry run of a record nobody linked yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncworker import bookkeeping, engine, metrics
from syncworker.connectors.errors import NotFoundError
from syncworker.context import Runtime
from syncworker.locks import Held
from syncworker.model import LinkState, Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.apply import apply, zenvia_cost
from syncworker.sync.commit import commit
from syncworker.sync.errors import Adopted
from syncworker.sync.link import adopt, resolve_link
from syncworker.sync.load import (
    Pair,
    list_crm_comments_for_new_ones,
    load_pair,
    load_side,
    sweep_due,
)


@dataclass
class SyncOutcome:
    """What one sync did, for logs, metrics and `resync --dry-run`."""

    link_id: int | None
    writes: int = 0
    plan_lines: list[str] = field(default_factory=list)
    state: str = LinkState.ACTIVE
    skipped: str | None = None


def sync_record(
    rt: Runtime, side: Side, record_id: str, *, dry_run: bool = False, fresh: bool = False
) -> SyncOutcome:
    """Bring the pair that `record_id` on `side` belongs to into agreement.

    Safe to run twice and concurrently with itself: the pair's lock makes the second run wait
    (LockBusy → retry) and, once it runs, it finds nothing to do. `fresh` reads both sides
    again instead of trusting the last poll (operators' resyncs); a dry run writes nothing,
    not even a link.
    """
    resolved = resolve_link(rt, side, record_id, create=not dry_run)
    if resolved is None:
        return _dry_run_unlinked(rt, side, record_id)
    link_id, ours = resolved
    with rt.locks.hold(f"link:{link_id}") as lock:
        if ours and not dry_run:
            adopt(rt, link_id, side, record_id)
        try:
            outcome = sync_link(rt, link_id, lock, dry_run=dry_run, fresh=fresh or dry_run)
        except Adopted:
            outcome = sync_link(rt, link_id, lock, dry_run=dry_run, fresh=fresh)
    if outcome.skipped and not dry_run:
        with session_scope(rt.database_url) as session:
            repo.clear_queued(session, side=side, remote_id=record_id)
    return outcome


def _dry_run_unlinked(rt: Runtime, side: Side, record_id: str) -> SyncOutcome:
    """What the first sync of a record nobody linked yet would do."""
    try:
        record = rt.connectors[side].get(record_id)
    except NotFoundError:
        return SyncOutcome(link_id=None, skipped=f"{side} record {record_id} does not exist")
    comments = rt.connectors[side].list_comments(record_id)
    plan = engine.plan(
        rt.mapping,
        link=None,
        crm=record if side == "crm" else None,
        zenvia=record if side == "zenvia" else None,
        crm_comments=comments if side == "crm" else (),
        zenvia_comments=comments if side == "zenvia" else (),
    )
    return SyncOutcome(link_id=None, plan_lines=plan.describe(), state=plan.link_state)


def sync_link(
    rt: Runtime,
    link_id: int,
    lock: Held,
    *,
    dry_run: bool,
    fresh: bool = False,
    resolutions: dict[str, Side] | None = None,
) -> SyncOutcome:
    """Sync one link, its `lock` held by the caller: load both sides, plan, read again a side
    the plan overwrites, apply the writes (each only while the lock is still ours), commit.
    `resolutions` name the side that wins each field parked in a manual conflict (an
    operator's)."""
    with session_scope(rt.database_url) as session:
        rows = repo.load_pair(session, link_id=link_id)
    if rows is None:
        return SyncOutcome(link_id=link_id, skipped="link no longer exists")
    pairs = [
        engine.CommentPair(
            c.crm_comment_id, c.zenvia_comment_id, "crm" if c.origin == "crm" else "zenvia"
        )
        for c in rows.comment_links
    ]
    # The sweep's listing goes at the sweep's priority, or waits for a later sync (`load`);
    # the sync itself goes at a sync's: a ticket's sweep is due most of the business day, and
    # a change must not wait until the budget has room for the sweep.
    sweep = sweep_due(rt, rows.link)
    pair = load_pair(rt, rows.link, rows.observations, trust_observations=not fresh, sweep=sweep)
    if sweep:
        list_crm_comments_for_new_ones(rt, pair, pairs)
    plan = _plan(rt, pair, pairs, resolutions)
    stale = _overwritten(plan) & pair.observed
    # The re-read of a stale Zenvia side is paid with the plan's writes, all or nothing: a sync
    # that must wait for the budget has spent nothing, and its retry reads again anyway.
    reserved = 0 if dry_run else zenvia_cost(plan, rt.connectors["zenvia"]) + int("zenvia" in stale)
    with rt.gates["zenvia"].reserve(reserved):
        while stale:  # never overwrite a side judged from a poll's read or from the last sync
            for side in stale:
                load_side(
                    rt,
                    pair,
                    side,
                    rows.observations.get(side),
                    trust_observation=False,
                    every_comment=side in pair.listed,
                )
            plan = _plan(rt, pair, pairs, resolutions)
            stale = _overwritten(plan) & pair.observed
        outcome = SyncOutcome(link_id=link_id, plan_lines=plan.describe(), state=plan.link_state)
        if dry_run:
            return outcome
        for conflict in plan.conflicts:
            metrics.count_conflict(rt.redis, conflict.field, conflict.policy)
        outcome.writes = apply(rt, pair, plan, lock)
    commit(rt, pair, plan, rows.observations)
    return outcome


def _overwritten(plan: engine.Plan) -> set[Side]:
    return {op.side for op in plan.operations if isinstance(op, engine.UpdateFields)}


def _plan(
    rt: Runtime,
    pair: Pair,
    comment_pairs: list[engine.CommentPair],
    resolutions: dict[str, Side] | None,
) -> engine.Plan:
    return engine.plan(
        rt.mapping,
        link=_snapshot(rt, pair),
        crm=pair.records["crm"],
        zenvia=pair.records["zenvia"],
        crm_comments=pair.comments["crm"],
        zenvia_comments=pair.comments["zenvia"],
        comment_links=comment_pairs,
        resolutions=resolutions or {},
    )


def _snapshot(rt: Runtime, pair: Pair) -> engine.LinkSnapshot:
    """The link as the engine plans from it: what landed of an update whose bookkeeping was
    lost is folded into its baselines (`bookkeeping.fold_in_flight`)."""
    link = pair.link
    baselines = bookkeeping.fold_in_flight(
        rt.mapping,
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        link.write_in_flight,
        {side: record.fields if record else None for side, record in pair.records.items()},
    )
    return engine.LinkSnapshot(
        crm_id=link.crm_id,
        zenvia_id=link.zenvia_id,
        crm_baseline=baselines["crm"],
        zenvia_baseline=baselines["zenvia"],
        state=LinkState(link.state),
    )
