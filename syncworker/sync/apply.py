"""Applying a plan: its writes in order (creates and comments through write-ahead intents,
`intents`; each update recorded on the link before it is sent), each request that landed
folded into both baselines at once; and what a plan's
writes cost in Zenvia requests (`zenvia_cost`), reserved before they are sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from syncworker import bookkeeping, engine, metrics
from syncworker.connectors.base import Connector
from syncworker.connectors.errors import (
    MalformedResponseError,
    NotFoundError,
    PermanentError,
    RemoteError,
    TransientError,
)
from syncworker.context import Runtime
from syncworker.locks import Held
from syncworker.model import NativeFields, Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.errors import StaleLink
from syncworker.sync.intents import add_comment, create
from syncworker.sync.load import Pair, id_on
from syncworker.sync.records import has_ended

log = logging.getLogger(__name__)


def zenvia_cost(plan: engine.Plan, zenvia: Connector) -> int:
    """Zenvia requests the plan's writes take: what `zenvia` sends for each update, one per
    comment and create, and a create's client lookup."""
    cost = 0
    for operation in plan.operations:
        if operation.side != "zenvia":
            continue
        if isinstance(operation, engine.UpdateFields):
            cost += zenvia.requests_to_update(operation.changes)
        else:
            cost += 1
        if isinstance(operation, engine.CreateRecord) and operation.client_email:
            cost += 1
    return cost


def apply(rt: Runtime, pair: Pair, plan: engine.Plan, lock: Held) -> int:
    """Run the plan's writes in order; creates and comments go through write-ahead intents.

    Each write goes only while the pair's lock is still ours: a Redis restart forgets every
    lock, and a second sync of the pair may then have read and written meanwhile; this
    sync's reads are stale, so it stops and is retried (what landed is already folded)."""
    writes = 0
    last = len(plan.operations) - 1
    for index, operation in enumerate(plan.operations):
        if not lock.owned():
            raise StaleLink(
                f"link {pair.link.id} lost its lock (Redis restarted, or the sync outlived "
                "the lock's TTL): it stopped before its next write and is retried"
            )
        kind: metrics.Kind
        try:
            if isinstance(operation, engine.CreateRecord):
                kind, written = "create", create(rt, pair, plan, operation)
            elif isinstance(operation, engine.UpdateFields):
                _update(rt, pair, plan, operation, final=index == last)
                kind, written = "update", True
            else:
                kind, written = "comment", add_comment(rt, pair, operation)
        except PermanentError as refused:
            if not isinstance(refused, NotFoundError | MalformedResponseError):
                _replan_if_ended_meanwhile(rt, pair, operation.side, refused)
            raise
        if written:
            writes += 1
            metrics.count_propagated(rt.redis, kind, metrics.towards(operation.side))
    return writes


def _replan_if_ended_meanwhile(
    rt: Runtime, pair: Pair, side: Side, refused: PermanentError
) -> None:
    """A write refused because a person closed or canceled the record after we read it (a
    CLOSED Zenvia ticket takes nothing) is a race, not a defect: the fresh read is recorded
    and the pair planned again, where the ended record waits, instead of a dead letter. Any
    other refusal stands (one GET, only on this path)."""
    planned = pair.records.get(side)
    if planned is None or has_ended(rt, side, planned.fields):
        return
    fetched_at = rt.clock()
    try:
        current = rt.connectors[side].get(planned.id)
    except RemoteError:
        return
    if not has_ended(rt, side, current.fields):
        return
    with session_scope(rt.database_url) as session:  # flagged: durable until a sync reads it
        repo.observe(session, side=side, record=current, fetched_at=fetched_at)
        repo.mark_queued(session, side=side, remote_ids=[current.id])
    raise StaleLink(
        f"{side} record {planned.id} ended while this sync wrote to it "
        f"({refused.describe()}): planned again"
    ) from refused


def _update(
    rt: Runtime, pair: Pair, plan: engine.Plan, operation: engine.UpdateFields, *, final: bool
) -> None:
    """Write one side's changes, folding each request that landed into the baselines at once.

    A Zenvia update is one PATCH per attribute: when the second fails, the first stays
    applied. The plan's very last request is folded by the commit, which follows at once.
    When a request's reply is lost, the record is read again to learn what it holds. The
    update is recorded on the link before it is sent, so a retry folds what landed of it
    when none of this bookkeeping could be stored (`bookkeeping.fold_in_flight`).
    """
    target = operation.side
    record_id = id_on(pair, target) or operation.record_id
    unsent = dict(operation.changes)
    _record_in_flight(rt, pair, plan, target, operation.changes)

    def landed(fields: NativeFields) -> None:
        for native in fields:
            unsent.pop(native, None)
        if unsent or not final:
            _keep_written(rt, pair, plan, target, fields)

    try:
        rt.connectors[target].update(record_id, dict(operation.changes), landed=landed)
    except TransientError:
        _keep_what_landed(rt, pair, plan, target, record_id, unsent)
        raise


def _keep_what_landed(
    rt: Runtime,
    pair: Pair,
    plan: engine.Plan,
    target: Side,
    record_id: str,
    attempted: NativeFields,
) -> None:
    """After a write whose outcome is unknown (its reply lost), fold the values the record
    turns out to hold: left unfolded, a landed write reads as a human change on the retry and
    can beat a newer edit on the other side. If the read fails too, the retry decides."""
    try:
        current = rt.connectors[target].get(record_id).fields
    except RemoteError as exc:
        log.info("could not tell which writes to %s %s landed: %s", target, record_id, exc)
        return
    held = {name: value for name, value in attempted.items() if current.get(name) == value}
    _keep_written(rt, pair, plan, target, held, settled=True)


def _record_in_flight(
    rt: Runtime, pair: Pair, plan: engine.Plan, target: Side, changes: NativeFields
) -> None:
    """Store the update about to be sent (`bookkeeping.write_in_flight`); a link without
    baselines has nothing to fold it into (its first merge is judged by the commit)."""
    link = pair.link
    if link.crm_baseline is None or link.zenvia_baseline is None:
        return
    planned: bookkeeping.Baselines = {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline}
    record = pair.records.get(target)
    read = record.fields if record else {}
    in_flight = bookkeeping.write_in_flight(planned, target, changes, read)
    _save(rt, pair, {"write_in_flight": in_flight})


def _keep_written(
    rt: Runtime,
    pair: Pair,
    plan: engine.Plan,
    target: Side,
    written: Iterable[str],
    *,
    settled: bool = False,
) -> None:
    """Fold written fields into both stored baselines at once (`bookkeeping.fold_written`),
    fenced by revision; `settled`: a read told what landed of the write in flight, so its
    record is cleared."""
    link = pair.link
    new = bookkeeping.fold_written(
        rt.mapping,
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
        target,
        written,
    )
    if new is None:
        return
    values: dict[str, object] = {
        "crm_baseline": new["crm"],
        "zenvia_baseline": new["zenvia"],
        # moves the observations' freshness fence: one read before this write would look like
        # its side undoing it
        "last_synced_at": rt.clock(),
    }
    if settled:
        values["write_in_flight"] = None
    _save(rt, pair, values)


def _save(rt: Runtime, pair: Pair, values: dict[str, object]) -> None:
    """Store `values` on the pair's link, fenced by its revision, and keep `pair.link` current."""
    link = pair.link
    assert link.id is not None
    with session_scope(rt.database_url) as session:
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link.id} changed while its plan was being applied")
    pair.link = link.model_copy(update={**values, "revision": link.revision + 1})
