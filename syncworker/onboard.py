"""Going live on an account with history: a plan of the first sync, then running it.

`survey` reads both sides and the mapping table and says what the first sync will do: pairs
to link (matched by `matching.match`), records to copy to the other side, records left out
(by the mapping's scope, through the engine's own plan), ambiguous matches, and the Zenvia
requests it all takes (`sync.zenvia_cost` of each engine plan, plus the first reads a
sync makes). `run` links the pairs — a link with both ids and no baselines, which the first
sync merges (a half link a sync left is completed; comments copied by hand are paired) — and
queues the syncs. A second run finds the links the first made (never synced yet) and queues
those again, so an interrupted run continues; a sync queued twice writes once (DESIGN
invariant 5).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import time as clock
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TypeVar, cast
from zoneinfo import ZoneInfo

import httpx

from syncworker import engine, matching
from syncworker.connectors.base import RequestGate, Unreadable
from syncworker.connectors.errors import NotFoundError, RateLimitedError
from syncworker.connectors.zenvia import MAX_PAGE_SIZE
from syncworker.context import Runtime
from syncworker.model import SIDES, RemoteComment, RemoteRecord, Side, other_side
from syncworker.ratelimit import SharedGate
from syncworker.runtime import build_connectors
from syncworker.settings import Settings
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link
from syncworker.sync import zenvia_cost

EARLIER = "linked before, never synced"
PATIENCE = 5  # 429s a person's command waits out before it gives up
T = TypeVar("T")


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


def _patiently(read: Callable[[], T], pause: Callable[[float], None]) -> T:
    """`read` again after each 429's stated wait, up to PATIENCE times (a person is waiting;
    a worker never does this: its task is retried later)."""
    for _ in range(PATIENCE):
        try:
            return read()
        except RateLimitedError as limited:
            pause(limited.retry_after)
    return read()


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
        zenvia_cost(plan),
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
    result.steps.append(Step(side, record.id, None, "copy", zenvia_cost(plan), reads, creates=1))


class PatientGate:
    """The shared budget for a person's command: wait until it has room instead of failing
    (a worker never waits; its task is retried later). Delegates everything else."""

    def __init__(
        self,
        gate: RequestGate,
        *,
        sleep: Callable[[float], None] = clock.sleep,
        on_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._gate = gate
        self._sleep = sleep
        self._on_wait = on_wait

    def before_request(self, endpoint: str) -> None:
        while True:
            try:
                self._gate.before_request(endpoint)
                return
            except RateLimitedError as limited:
                self._on_wait(limited.retry_after)
                self._sleep(limited.retry_after)

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        self._gate.after_response(endpoint, response)


def patient(rt: Runtime, *, on_wait: Callable[[float], None]) -> Runtime:
    """The runtime with connectors of their own whose requests wait for the shared budget
    (a survey in business hours reads more than one window holds). Close its connectors."""
    gates = {side: PatientGate(gate, on_wait=on_wait) for side, gate in rt.gates.items()}
    # build_connectors only hands each gate to its connector, which takes any RequestGate
    connectors = build_connectors(
        rt.settings,
        cast(dict[Side, SharedGate], gates),
        crm_fields=rt.mapping.lookup_fields("crm"),
    )
    return dataclasses.replace(rt, connectors=connectors)


# -- running it ---------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    linked: int = 0
    already_linked: list[str] = field(default_factory=list)
    queued: int = 0


def run(rt: Runtime, plan: Survey, *, on_step: Callable[[], None] = lambda: None) -> RunOutcome:
    """Link the new pairs (the unique constraints refuse a record linked meanwhile), then
    queue every step's sync (ids only)."""
    outcome = RunOutcome()
    refused: set[tuple[str, str]] = set()
    for pair in plan.new_links:
        with session_scope(rt.database_url) as session:
            try:
                repo.pair_records(
                    session, crm_system=rt.crm_system, crm_id=pair.crm_id, zenvia_id=pair.zenvia_id
                )
                outcome.linked += 1
            except repo.DuplicateLinkError as refusal:
                outcome.already_linked.append(str(refusal))
                refused.add((pair.crm_id, pair.zenvia_id))
        on_step()
    for step in plan.steps:
        if (step.record_id, step.other_id) not in refused:
            _link_same_comments(rt, step)
            rt.enqueue_sync(step.side, step.record_id)
            outcome.queued += 1
        on_step()
    return outcome


def _link_same_comments(rt: Runtime, step: Step) -> None:
    if not step.same_comments:
        return
    with session_scope(rt.database_url) as session:
        link = repo.find_link(
            session, side=step.side, remote_id=step.record_id, crm_system=rt.crm_system
        )
        if link is None or link.id is None:
            raise LookupError(f"no link for {step.side} record {step.record_id}")
        for crm_comment_id, zenvia_comment_id in step.same_comments:
            repo.link_comments(
                session,
                link_id=link.id,
                crm_comment_id=crm_comment_id,
                zenvia_comment_id=zenvia_comment_id,
                origin="crm",  # copied by hand: which one came first is not known
            )


def finished(rt: Runtime, plan: Survey, *, since: datetime) -> tuple[int, int]:
    """How many of the plan's syncs finished since `since`, and how many of those failed."""
    ids = {side: [step.record_id for step in plan.steps if step.side == side] for side in SIDES}
    with session_scope(rt.database_url) as session:
        return repo.count_finished(
            session,
            crm_system=rt.crm_system,
            crm_ids=ids["crm"],
            zenvia_ids=ids["zenvia"],
            since=since,
        )


# -- the Zenvia budget --------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetTime:
    """How long `requests` take within the Zenvia budget, and when the unlimited night is."""

    requests: int
    business_hours_seconds: float  # all of them at the business-hours rate
    limited_now: bool
    night_starts: datetime | None  # None: the limit applies all day
    night_ends: datetime | None


def budget_time(settings: Settings, requests: int, now: datetime) -> BudgetTime:
    rate = settings.zenvia_rate_limit / settings.zenvia_rate_window_seconds
    hours = settings.business_hours
    seconds = requests / rate
    if hours is None:
        return BudgetTime(requests, seconds, True, None, None)
    local = now.astimezone(ZoneInfo(settings.zenvia_timezone))
    start, end = hours
    limited = start <= local.time() < end
    night_starts = _next(local, end) if limited else local
    return BudgetTime(requests, seconds, limited, night_starts, _next(night_starts, start))


def _next(after: datetime, at: time) -> datetime:
    """The first moment at or after `after` whose local time is `at`."""
    candidate = after.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate >= after else candidate + timedelta(days=1)


def describe_budget(budget: BudgetTime, now: datetime) -> list[str]:
    lines = [f"{budget.requests} Zenvia requests"]
    in_hours = _duration(budget.business_hours_seconds)
    if budget.night_starts is None:
        return [*lines, f"the limit applies all day: about {in_hours}"]
    lines.append(
        f"in business hours: about {in_hours}, spending the whole budget (live syncs wait)"
    )
    if budget.limited_now:
        wait = _duration((budget.night_starts - now).total_seconds())
        lines.append(
            f"unlimited at night, from {budget.night_starts:%H:%M %Z} (in {wait}) "
            f"until {budget.night_ends:%H:%M %Z}: run it then"
        )
    else:
        lines.append(f"now is night (no limit) until {budget.night_ends:%H:%M %Z}: run it now")
    return lines


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def lines(plan: Survey) -> Iterable[str]:
    """The survey for people; `as_json` is the same for machines."""
    made = plan.creates()
    yield f"pairs already synced: {plan.already_synced}"
    for rule, count in sorted(plan.links_by_rule().items()):
        yield f"pairs to link and merge ({rule}): {count}"
    yield f"records to create: {made['zenvia']} Zenvia tickets, {made['crm']} CRM cases"
    for side in SIDES:
        for why, count in sorted(plan.left_out[side].items()):
            if count:
                yield f"{side} records left out ({why}): {count}"
    for side, written in plan.overwrites().items():
        if written:
            fields = ", ".join(f"{name} ({count})" for name, count in sorted(written.items()))
            yield f"the merges overwrite on {side}: {fields}"
    for entry in plan.ambiguous:
        yield (
            f"ambiguous ({entry.rule}): {entry.side} {entry.record_id} matches "
            f"{', '.join(entry.candidates)}; pair it with `syncworker links import`"
        )
    for side, count in plan.unreadable.items():
        if count:
            yield f"{side} records unreadable (see the dead letters after a reconcile): {count}"
    costs = plan.zenvia_requests()
    yield (
        f"Zenvia requests: {costs['total']} ({costs['writes']} writes, "
        f"{costs['first_reads']} first reads); this survey used {plan.survey_zenvia_requests}"
    )


def as_json(plan: Survey, budget: BudgetTime) -> dict[str, object]:
    return {
        "already_synced": plan.already_synced,
        "links": dict(plan.links_by_rule()),
        "creates": plan.creates(),
        "left_out": {side: dict(plan.left_out[side]) for side in SIDES},
        "overwrites": {side: dict(written) for side, written in plan.overwrites().items()},
        "ambiguous": [
            {"side": a.side, "id": a.record_id, "candidates": list(a.candidates), "rule": a.rule}
            for a in plan.ambiguous
        ],
        "unreadable": plan.unreadable,
        "zenvia_requests": plan.zenvia_requests(),
        "survey_zenvia_requests": plan.survey_zenvia_requests,
        "budget": {
            "business_hours_seconds": round(budget.business_hours_seconds),
            "limited_now": budget.limited_now,
            "night_starts": budget.night_starts.isoformat() if budget.night_starts else None,
            "night_ends": budget.night_ends.isoformat() if budget.night_ends else None,
        },
    }


# -- pairs from a file --------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePair:
    line: int
    crm_id: str
    zenvia_id: str


def parse_pairs(text: str) -> tuple[list[FilePair], list[str]]:
    """`case id, ticket id` per line (a first line naming the columns is skipped); 15-character
    case ids become 18. Returns the pairs and one error per bad line, naming the line."""
    pairs: list[FilePair] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and "case" in cells[0].lower()):
            continue
        if len(cells) != 2 or not all(cells):
            errors.append(f"line {number}: expected `case id, ticket id`; got {row!r}")
            continue
        crm_id = matching.case_id18(cells[0])
        if crm_id is None:
            errors.append(
                f"line {number}: {cells[0]!r} is not a Salesforce id (15 or 18 letters and digits)"
            )
            continue
        for key in (f"crm:{crm_id}", f"zenvia:{cells[1]}"):
            if key in seen:
                errors.append(f"line {number}: {key} was already given on line {seen[key]}")
                break
        else:
            seen |= {f"crm:{crm_id}": number, f"zenvia:{cells[1]}": number}
            pairs.append(FilePair(number, crm_id, cells[1]))
    return pairs, errors


def import_pairs(
    rt: Runtime,
    pairs: list[FilePair],
    *,
    dry_run: bool,
    pause: Callable[[float], None] = clock.sleep,
) -> tuple[int, list[str]]:
    """Link each pair whose records both exist (a typo must not pair a real case with nothing)
    and neither of which is linked elsewhere (the unique constraints refuse it). Cases are
    read one by one; tickets are looked up in one listing of them all, because Zenvia locks
    an account out after a few failed requests, and a ticket id that does not exist is one."""
    tickets = _patiently(lambda: _ticket_ids(rt), pause)
    errors: list[str] = []
    linked = 0
    for pair in pairs:
        missing = [
            f"{side} record {record_id} does not exist"
            for side, record_id, exists in (
                ("crm", pair.crm_id, _case_exists(rt, pair.crm_id, pause)),
                ("zenvia", pair.zenvia_id, pair.zenvia_id in tickets),
            )
            if not exists
        ]
        if missing:
            errors.append(f"line {pair.line}: {'; '.join(missing)}")
            continue
        with session_scope(rt.database_url) as session:
            try:
                repo.pair_records(
                    session, crm_system=rt.crm_system, crm_id=pair.crm_id, zenvia_id=pair.zenvia_id
                )
            except repo.DuplicateLinkError as refusal:
                errors.append(f"line {pair.line}: {refusal}")
                continue
            if dry_run:
                session.rollback()
        linked += 1
    return linked, errors


def _ticket_ids(rt: Runtime) -> set[str]:
    return {listed.id for listed in rt.connectors["zenvia"].iter_all()}


def _case_exists(rt: Runtime, case_id: str, pause: Callable[[float], None]) -> bool:
    try:
        _patiently(functools.partial(rt.connectors["crm"].get, case_id), pause)
    except NotFoundError:
        return False
    return True
