"""The survey: what the first sync will do, read from both sides and the mapping table,
through the engine's own plans; writing nothing."""

from __future__ import annotations

import math
import time as clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from syncworker import engine, matching
from syncworker.connectors.base import Unreadable
from syncworker.connectors.zenvia import MAX_PAGE_SIZE
from syncworker.context import Runtime
from syncworker.model import SIDES, RemoteComment, RemoteRecord, Side, other_side
from syncworker.onboard.patience import _patiently
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link
from syncworker.sync import zenvia_cost

EARLIER = "linked before, never synced"


@dataclass(frozen=True)
class Step:
    """One sync the onboarding queues, and the Zenvia requests it takes."""

    side: Side  # the sync is queued for this side's record
    record_id: str
    other_id: str | None  # the paired record, for a link; None for a copy
    rule: str  # the matching rule, EARLIER, or "copy"
    zenvia_writes: int
    zenvia_reads: int
    creates: int = 0  # records this step creates on the other side
    # comments copied by hand, (crm id, zenvia id): linked before the sync, never copied again
    same_comments: tuple[tuple[str, str], ...] = ()
    overwrites: tuple[tuple[Side, str], ...] = ()  # (side, native field) a merge writes


@dataclass
class Survey:
    """What the first sync will do; `run` carries out `new_links` and `steps`."""

    new_links: list[matching.Match] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    left_out: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter[str]() for side in SIDES}
    )
    ambiguous: tuple[matching.Ambiguous, ...] = ()
    unreadable: dict[Side, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    already_synced: int = 0
    survey_zenvia_requests: int = 0

    def links_by_rule(self) -> Counter[str]:
        return Counter(step.rule for step in self.steps if step.other_id is not None)

    def creates(self) -> dict[Side, int]:
        """Records the first sync creates on each side."""
        made = dict.fromkeys(SIDES, 0)
        for step in self.steps:
            made[other_side(step.side)] += step.creates
        return made

    def overwrites(self) -> dict[Side, Counter[str]]:
        """Native fields the merges overwrite, per side: where hand copies disagree."""
        written: dict[Side, Counter[str]] = {side: Counter() for side in SIDES}
        for step in self.steps:
            for side, name in step.overwrites:
                written[side][name] += 1
        return written

    def zenvia_requests(self) -> dict[str, int]:
        writes = sum(step.zenvia_writes for step in self.steps)
        reads = sum(step.zenvia_reads for step in self.steps)
        return {"writes": writes, "first_reads": reads, "total": writes + reads}


# The Zenvia reads a sync makes before it writes (sync.sync_record on a record no poll
# observed): a ticket's GET plus its actions pages; an unlinked ticket's actions are listed
# once more first, to tell whether our own create made it. A case copied to Zenvia reads
# nothing there. Kept beside the survey so the onboarding test catches any drift.
def _ticket_reads(comments: int) -> int:
    return 1 + _pages(comments)


def _unlinked_ticket_reads(comments: int) -> int:
    return _pages(comments) + _ticket_reads(comments)


def _pages(comments: int) -> int:
    return max(1, math.ceil(comments / MAX_PAGE_SIZE))


def survey(
    rt: Runtime,
    *,
    on_record: Callable[[], None] = lambda: None,
    pause: Callable[[float], None] = clock.sleep,
) -> Survey:
    """Read both sides (every record; the comments of those the first sync will merge or copy
    to Zenvia) and the mapping table: the first sync's plan, writing nothing. A remote that
    answers 429 (Zenvia locks an account out for a while) is waited for, then read again
    from the start: a survey has nothing to undo."""
    return _patiently(lambda: _survey(rt, on_record), pause)


def _survey(rt: Runtime, on_record: Callable[[], None]) -> Survey:
    before = rt.connectors["zenvia"].requests.total
    result = Survey()
    links = _links(rt)
    whole = [link for link in links if link.crm_id and link.zenvia_id]
    linked = {side: {_id(link, side) for link in whole} for side in SIDES}
    # a half link (a record a poll saw, nothing created for it yet) may still be paired
    half = {side: {_id(link, side) for link in links} - linked[side] - {None} for side in SIDES}
    records: dict[Side, dict[str, RemoteRecord]] = {side: {} for side in SIDES}
    for side in SIDES:
        for listed in rt.connectors[side].iter_all():
            on_record()
            if isinstance(listed, Unreadable):
                result.unreadable[side] += 1
            elif not listed.deleted:
                records[side][listed.id] = listed
    for link in whole:
        _resume(rt, result, link, records)
    unlinked = {
        side: [r for r in records[side].values() if r.id not in linked[side]] for side in SIDES
    }
    found = matching.match(rt.mapping, unlinked["crm"], unlinked["zenvia"])
    result.ambiguous = found.ambiguous
    held = found.left_out()
    for side in SIDES:
        result.left_out[side]["ambiguous"] = len(held[side])
    paired: dict[Side, set[str]] = {side: set() for side in SIDES}
    for pair in found.pairs:
        paired["crm"].add(pair.crm_id)
        paired["zenvia"].add(pair.zenvia_id)
        _link_step(rt, result, pair, records)
    for side in SIDES:
        for record in unlinked[side]:
            if record.id not in paired[side] | held[side]:
                _copy_step(rt, result, side, record, half_linked=record.id in half[side])
    result.survey_zenvia_requests = rt.connectors["zenvia"].requests.total - before
    return result


def _links(rt: Runtime) -> list[Link]:
    with session_scope(rt.database_url) as session:
        return [link for link in repo.all_links(session) if link.crm_system == rt.crm_system]


def _id(link: Link, side: Side) -> str | None:
    return link.crm_id if side == "crm" else link.zenvia_id


def _resume(
    rt: Runtime, result: Survey, link: Link, records: dict[Side, dict[str, RemoteRecord]]
) -> None:
    """A pair an earlier run (or `links import`) linked, not synced yet, is merged now."""
    if link.last_synced_at is not None:
        result.already_synced += 1
        return
    crm, zenvia = records["crm"].get(link.crm_id or ""), records["zenvia"].get(link.zenvia_id or "")
    if crm is not None and zenvia is not None:
        match = matching.Match(crm.id, zenvia.id, EARLIER)
        result.steps.append(_merge_step(rt, match, crm, zenvia))


def _link_step(
    rt: Runtime,
    result: Survey,
    pair: matching.Match,
    records: dict[Side, dict[str, RemoteRecord]],
) -> None:
    crm, zenvia = records["crm"][pair.crm_id], records["zenvia"][pair.zenvia_id]
    if not (rt.mapping.in_scope("crm", crm.fields) or rt.mapping.in_scope("zenvia", zenvia.fields)):
        for side in SIDES:
            result.left_out[side]["paired, both out of scope"] += 1
        return
    result.new_links.append(pair)
    result.steps.append(_merge_step(rt, pair, crm, zenvia))


def _merge_step(rt: Runtime, pair: matching.Match, crm: RemoteRecord, zenvia: RemoteRecord) -> Step:
    """The first sync of a link with both ids and no baselines: a merge (engine.plan)."""
    comments = {
        "crm": rt.connectors["crm"].list_comments(crm.id),
        "zenvia": rt.connectors["zenvia"].list_comments(zenvia.id),
    }
    same = tuple(matching.same_comments(comments["crm"], comments["zenvia"]))
    plan = engine.plan(
        rt.mapping,
        link=engine.LinkSnapshot(crm_id=crm.id, zenvia_id=zenvia.id),
        crm=crm,
        zenvia=zenvia,
        crm_comments=comments["crm"],
        zenvia_comments=comments["zenvia"],
        comment_links=[engine.CommentPair(*ids, origin="crm") for ids in same],
    )
    reads = _ticket_reads(len(comments["zenvia"]))
    overwrites = tuple(
        (op.side, name)
        for op in plan.operations
        if isinstance(op, engine.UpdateFields)
        for name in op.changes
    )
    return Step(
        "crm",
        crm.id,
        zenvia.id,
        pair.rule,
        zenvia_cost(plan, rt.connectors["zenvia"]),
        reads,
        same_comments=same,
        overwrites=overwrites,
    )


def _copy_step(
    rt: Runtime, result: Survey, side: Side, record: RemoteRecord, *, half_linked: bool
) -> None:
    """A record with no counterpart: copied if the engine's plan creates it, else left out
    (the engine applies the mapping's scope; its misses name why)."""
    comments: list[RemoteComment] = (
        rt.connectors["crm"].list_comments(record.id) if side == "crm" else []
    )
    plan = engine.plan(
        rt.mapping,
        link=None,
        crm=record if side == "crm" else None,
        zenvia=record if side == "zenvia" else None,
        crm_comments=comments,
    )
    if not any(isinstance(op, engine.CreateRecord) for op in plan.operations):
        misses = rt.mapping.scope_misses(side, record.fields)
        # the engine's reason names the record ("Zenvia ticket 7 is canceled; not copied")
        why = f"scope: {', '.join(misses)}" if misses else plan.reason.split(" is ", 1)[-1]
        result.left_out[side][why] += 1
        return
    reads = 0 if side == "crm" else _ticket_reads(0) if half_linked else _unlinked_ticket_reads(0)
    result.steps.append(
        Step(
            side,
            record.id,
            None,
            "copy",
            zenvia_cost(plan, rt.connectors["zenvia"]),
            reads,
            creates=1,
        )
    )
