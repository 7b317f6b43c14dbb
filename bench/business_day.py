"""A support team's business day inside Zenvia's 10 requests a minute, time compressed 20x.

Thousands of linked pairs are seeded (open tickets made the day before, their comment sweep
spread over one sweep interval, as a running deployment leaves them); then, for the business
part, agents change pairs at a steady rate on both sides (comments, status changes, edits,
owner changes), each change on its own pair; then a night part with a few more changes.
Zenvia is limited exactly as in production, 10 requests a window, but the window is WINDOW
seconds standing for a minute: every duration the product knows (poll interval, sweep interval,
overlap, rate window) is scaled by the same factor. Business hours end on the real clock
(settings and sandbox alike), so the gate and the sandbox lift the limit by themselves when the
night starts.

Figures: Zenvia requests per propagated change against the physical minimum (one request per
Zenvia write), what the budget was spent on (by the sandbox's endpoint labels: the listing is
polls, actions listings are comment discovery, other reads are re-reads), propagation lag
(change made -> its write on the other side) by part of the day in real minutes, backlog over
the day, 429s, and a quiet poll's requests.

`--capacity` finds the largest day the product carries with bounded lag: on the same seeded
pairs, business hours become a staircase of rates (changes a minute), 20 minutes a step (60 with
`--full`), then the night as usual. Each step reports its changes, backlog, lag and Zenvia
requests by kind; the capacity is the highest rate up to which every step was carried (`carried`:
the backlog of changes the polls find stops growing, none of them is lost), beside the physical
limit: the budget over the Zenvia writes a change of this mix needs.

    python -m bench.business_day [--full] [--plot FILE.png]
                                 [--per-minute N | --capacity [R1,R2,...]]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from bench.common import (
    OWNERS,
    Options,
    Pair,
    PollLoop,
    bench_stack,
    check_in_sync,
    emit,
    goal,
    is_write,
    log,
    machine,
    on_write,
    options,
    percentile,
    psycopg_url,
    record_served,
    report,
    requests_by_endpoint,
    rounded,
    schedule_sweeps,
    seed_pairs,
    start_worker,
)
from syncworker.sandbox.server import RateLimit, Request
from tests.stack import Stack

LIMIT = 10  # Zenvia's requests per minute in business hours
WINDOW = 3  # seconds standing for one real minute (the gate's windows are whole seconds)
SCALE = 60 / WINDOW  # real seconds per benchmark second
WORKER_PROCESSES = 4
KINDS = ("poll", "comment_discovery", "re_read", "write")
# What agents do to a ticket in a day, and how often (a guess at a typical desk's mix).
CHANGE_MIX = (("comment", 0.35), ("status", 0.25), ("edit", 0.25), ("owner", 0.15))
AGENTS = tuple(f"agent-{n}" for n in range(1, 6))
SIDES = ("crm", "zenvia")  # where an agent makes a change, drawn uniformly (plan_changes)
ZENVIA_WRITES = {"crm": 1, "zenvia": 0}  # Zenvia writes a change needs, by where it was made
ON_HOLD, IN_ATTENDANCE, WAITING_JUSTIFICATION = 3, 2, 11
STAIRCASE = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # `--capacity`'s rates, changes a business minute
SETTLE = 0.5  # share of a step before its backlog slope is fitted
SLOPE_TOLERANCE = 0.1  # a step's backlog may grow by this share of its rate and be carried


@dataclass(frozen=True)
class Day:
    """The simulated day, in real minutes and changes."""

    pairs: int
    business_minutes: float
    night_minutes: float
    day_changes: int
    night_changes: int
    # A staircase (`--capacity`): changes a business minute in equal steps, climbing. Empty:
    # day_changes spread over the whole business part.
    steps: tuple[float, ...] = ()

    @property
    def step_minutes(self) -> float:
        return self.business_minutes / len(self.steps)


QUICK = Day(pairs=3000, business_minutes=60, night_minutes=30, day_changes=180, night_changes=20)
FULL = Day(pairs=3000, business_minutes=720, night_minutes=60, day_changes=1400, night_changes=100)


@dataclass
class Change:
    n: int
    pair: Pair
    side: str  # where the agent made it: "crm" (Salesforce) or "zenvia"
    kind: str
    part: str  # "business" or "night"
    offset: float  # benchmark seconds after the business part starts
    made_at: float | None = None


def _kind(label: str) -> str:
    if is_write(label):
        return "write"
    if label == "GET /v2/tickets":
        return "poll"
    if label.endswith("/actions"):
        return "comment_discovery"
    return "re_read"


def plan_changes(day: Day, pairs: list[Pair], seed: int = 5) -> list[Change]:
    """Each change on its own pair (none coalesce: the minimum is exact), sides drawn from
    SIDES, kinds by CHANGE_MIX, times uniform within their part of the day (their step)."""
    rng = random.Random(seed)
    chosen = rng.sample(pairs, day.day_changes + day.night_changes)
    business = day.business_minutes * 60 / SCALE
    night = day.night_minutes * 60 / SCALE
    slots = business_slots(day) + [(business, business + night)] * day.night_changes
    kinds, weights = zip(*CHANGE_MIX, strict=True)
    changes = []
    for n, (pair, (begin, end)) in enumerate(zip(chosen, slots, strict=True)):
        part = "business" if n < day.day_changes else "night"
        offset = rng.uniform(begin, end)
        side = rng.choice(SIDES)
        changes.append(Change(n, pair, side, rng.choices(kinds, weights)[0], part, offset))
    return sorted(changes, key=lambda c: c.offset)


def business_slots(day: Day) -> list[tuple[float, float]]:
    """Where each business change may fall (benchmark seconds): anywhere in business hours,
    or within its step of a staircase, so each step runs at its own rate."""
    business = day.business_minutes * 60 / SCALE
    if not day.steps:
        return [(0.0, business)] * day.day_changes
    length = business / len(day.steps)
    return [
        (k * length, (k + 1) * length)
        for k, count in enumerate(step_changes(day))
        for _ in range(count)
    ]


def step_changes(day: Day) -> list[int]:
    return [round(rate * day.step_minutes) for rate in day.steps]


def staircase(day: Day, rates: tuple[float, ...], step_minutes: float) -> Day:
    """`day` with its business part a staircase of `rates`, `step_minutes` each (night as is)."""
    stepped = dataclasses.replace(day, business_minutes=len(rates) * step_minutes, steps=rates)
    return dataclasses.replace(stepped, day_changes=sum(step_changes(stepped)))


def swept(change: Change) -> bool:
    """A comment added in Zenvia: no listing shows it (adding an action does not move the
    ticket's updatedAt), so only the comment sweep finds it, at the sweep's own pace (its
    share of the budget over every open ticket), whatever the day's rate."""
    return change.side == "zenvia" and change.kind == "comment"


def make_change(stack: Stack, change: Change) -> None:
    """What an agent does in the UI (the sandboxes' in-process agent desks)."""
    pair, n = change.pair, change.n
    if change.side == "crm":
        desk = stack.salesforce.agent
        case = desk.case(pair.case_id)
        if change.kind == "comment":
            desk.add_comment(pair.case_id, f"Day note {n}")
        elif change.kind == "status":
            desk.edit(pair.case_id, Status="Working" if case["Status"] == "On Hold" else "On Hold")
        elif change.kind == "edit":
            desk.edit(pair.case_id, Subject=f"Day case {n}")
        else:
            desk.edit(pair.case_id, OwnerId=_other(OWNERS, case["OwnerId"], n))
        return
    zenvia = stack.zenvia.agent
    ticket = stack.zenvia.ticket(pair.ticket_id)
    if change.kind == "comment":
        zenvia.add_action(pair.ticket_id, f"Nota do dia {n}")
    elif change.kind == "status":
        if ticket["status"]["id"] == ON_HOLD:
            zenvia.set_status(pair.ticket_id, IN_ATTENDANCE)
        else:
            zenvia.set_status(pair.ticket_id, ON_HOLD, WAITING_JUSTIFICATION)
    elif change.kind == "edit":
        zenvia.edit(pair.ticket_id, "subject", {"subject": f"Chamado do dia {n}"})
    else:
        zenvia.edit(pair.ticket_id, "owner", {"ownerId": _other(AGENTS, ticket["ownerId"], n)})


def _other(values: tuple[str, ...], current: str | None, n: int) -> str:
    choices = [v for v in values if v != current]
    return choices[n % len(choices)]


class Arrivals:
    """When each record was written to by the product: (side, record id) -> write times."""

    def __init__(self, stack: Stack) -> None:
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        for side, server in (("crm", stack.salesforce_server), ("zenvia", stack.zenvia_server)):
            for route in list(server.app.routes):
                if is_write(route.label):
                    on_write(server, route.label, lambda r, s=side: self._note(s, r))

    def _note(self, side: str, request: Request) -> None:
        at = time.monotonic()
        ids = set(request.params.values())
        with contextlib.suppress(ValueError):
            ids.update(_ids(json.loads(request.body or b"{}")))
        with self.lock:
            for record_id in ids:
                self.times[(side, record_id)].append(at)

    def arrival(self, change: Change) -> float | None:
        """The first write to the change's counterpart after it was made."""
        if change.made_at is None:
            return None
        pair = change.pair
        target = ("zenvia", pair.ticket_id) if change.side == "crm" else ("crm", pair.case_id)
        with self.lock:
            later = [t for t in self.times.get(target, ()) if t >= change.made_at]
        return min(later, default=None)


def _ids(body: Any) -> Iterator[str]:
    """Record ids named in a write's body (a CaseComment's ParentId, a collection's Ids)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("Id", "id", "ParentId") and isinstance(value, str):
                yield value
            else:
                yield from _ids(value)
    elif isinstance(body, list):
        for item in body:
            yield from _ids(item)


@dataclass
class Timeline:
    """Sampled every window: pending changes (made, not yet written across; those only the
    comment sweep finds apart), the product's own backlog (observations queued), 429s so far."""

    samples: list[dict[str, float]] = field(default_factory=list)


def sample_timeline(
    stack: Stack, changes: list[Change], arrivals: Arrivals, start: float, stop: threading.Event
) -> Timeline:
    timeline = Timeline()

    def run() -> None:
        while not stop.is_set():
            now = time.monotonic()
            pending = [c for c in changes if c.made_at is not None and arrivals.arrival(c) is None]
            timeline.samples.append(
                {
                    "t": now - start,
                    "pending": len(pending),
                    "pending_swept": sum(map(swept, pending)),
                    "queued": stack.backlog(),
                    "throttled": stack.zenvia_server.counters.throttled,
                }
            )
            stop.wait(WINDOW)

    threading.Thread(target=run, name="bench-timeline", daemon=True).start()
    return timeline


def business_hours_until(end: datetime, now: datetime | None = None) -> tuple[str, str]:
    """Settings (hours, timezone) whose business hours end at `end` on the real clock: in a
    fixed-offset zone where it is about midday now, so the hours never cross midnight."""
    offset = 12 - (now or datetime.now(UTC)).hour  # -11 … +12 hours
    zone = f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3
    local_end = end.astimezone(ZoneInfo(zone)).time().replace(microsecond=0)
    return f"00:00:00-{local_end.isoformat()}", zone


def seed_yesterday(stack: Stack, count: int) -> list[Pair]:
    """Linked pairs whose tickets were made yesterday, as a team's open tickets mostly were.

    Made today, they would all match today's `createdAt` listing and the morning's first poll
    would page through every one of them. Then, as a deployment that has been polling all
    along leaves them: the Zenvia cursor at now, and each open ticket's next comment sweep
    spread over one sweep interval (the seed makes them all due one interval on).
    """
    today = stack.zenvia.clock
    stack.zenvia.clock = lambda: today() - timedelta(days=1)
    try:
        pairs = seed_pairs(stack, count)
    finally:
        stack.zenvia.clock = today
    with psycopg.connect(psycopg_url(stack)) as connection:
        connection.execute("UPDATE cursors SET watermark = now() WHERE side = 'zenvia'")
    schedule_sweeps(stack, over_seconds=stack.settings.zenvia_comment_sweep_seconds)
    return pairs


def quiet_poll(stack: Stack) -> dict[str, int]:
    """Requests one poll of both sides makes when nothing changed (no workers running), in a
    fresh window (the seed's dry-run syncs spent the last one)."""
    time.sleep(WINDOW)
    before = {
        "zenvia": requests_by_endpoint(stack.zenvia_server),
        "salesforce": requests_by_endpoint(stack.salesforce_server),
    }
    stack.poll()
    return {
        "zenvia": (requests_by_endpoint(stack.zenvia_server) - before["zenvia"]).total(),
        "salesforce": (
            requests_by_endpoint(stack.salesforce_server) - before["salesforce"]
        ).total(),
    }


def lag_summary(lags: list[float]) -> dict[str, Any]:
    """Lags in real minutes (benchmark seconds * SCALE / 60)."""
    return minutes_summary([lag * SCALE / 60 for lag in lags])


def minutes_summary(minutes: list[float]) -> dict[str, Any]:
    return {
        "samples": len(minutes),
        "p50_minutes": rounded(percentile(minutes, 0.5), 2),
        "p99_minutes": rounded(percentile(minutes, 0.99), 2),
        "max_minutes": rounded(max(minutes), 2) if minutes else float("nan"),
    }


def zenvia_writes_per_change() -> float:
    """The mix's average, as plan_changes draws the sides: uniformly from SIDES."""
    return sum(ZENVIA_WRITES[side] for side in SIDES) / len(SIDES)


def physical_limit() -> float:
    """Changes a business minute the budget carries if it is spent on the writes alone."""
    return LIMIT / zenvia_writes_per_change()


@dataclass(frozen=True)
class Step:
    """One step of the staircase, as the capacity judgement sees it (real minutes)."""

    rate: float  # changes made a business minute
    minutes: float  # the step's length
    backlog: tuple[tuple[float, float], ...]  # (minutes into the step, changes pending)
    lags: tuple[float, ...]  # of the changes made in it; inf: never written across


def slope(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares changes a minute: one poll's batch moves it less than it moves the ends.
    NaN when the samples cannot give one."""
    try:
        return statistics.linear_regression([m for m, _ in samples], [n for _, n in samples]).slope
    except statistics.StatisticsError:
        return math.nan


def settled_slope(step: Step) -> float:
    """The slope once the backlog had SETTLE of the step to rise to its new level: a higher
    rate means more changes in flight even when none is left behind."""
    return slope([(m, n) for m, n in step.backlog if m >= SETTLE * step.minutes])


def carried(step: Step) -> bool:
    """The backlog does not grow (beyond SLOPE_TOLERANCE of the rate: a poll's batch grows
    with the rate) and every change made in the step was written across: at a steady rate a
    bounded backlog is a bounded lag (Little's law). An unmeasurable slope is not carried."""
    bounded = all(map(math.isfinite, step.lags))
    return bounded and settled_slope(step) <= SLOPE_TOLERANCE * step.rate


def capacity(steps: Sequence[Step]) -> float:
    """The highest rate carried with every lower step carried too (0: not even the first).
    A step carried after one that was not says nothing more: it starts on a backlog."""
    best = 0.0
    for step in steps:
        if not carried(step):
            break
        best = step.rate
    return best


# What a step's backlog counts: which of its changes, and how many of them a timeline sample
# has pending. Only the comment sweep finds a comment added in Zenvia (`swept`).
BACKLOGS: dict[str, tuple[Callable[[Change], bool], Callable[[dict[str, float]], float]]] = {
    "found_by_polls": (lambda c: not swept(c), lambda s: s["pending"] - s["pending_swept"]),
    "swept_comments": (swept, lambda s: s["pending_swept"]),
    "all": (lambda c: True, lambda s: s["pending"]),
}


def staircase_steps(
    day: Day, made: list[Change], lags: dict[int, float], samples: list[dict[str, float]]
) -> list[dict[str, Step]]:
    """Each step of the day's staircase, once for each of BACKLOGS."""
    length = day.step_minutes * 60 / SCALE
    steps = []
    for k, rate in enumerate(day.steps):
        begin, end = k * length, (k + 1) * length
        window = [((s["t"] - begin) * SCALE / 60, s) for s in samples if begin <= s["t"] < end]
        mine = [c for c in made if c.part == "business" and begin <= c.offset < end]
        steps.append(
            {
                name: Step(
                    rate,
                    day.step_minutes,
                    tuple((m, pending(s)) for m, s in window),
                    tuple(lags.get(c.n, math.inf) * SCALE / 60 for c in mine if counts(c)),
                )
                for name, (counts, pending) in BACKLOGS.items()
            }
        )
    return steps


def step_figures(step: Step) -> dict[str, Any]:
    ends = (step.backlog[0][1], step.backlog[-1][1]) if step.backlog else (math.nan, math.nan)
    arrived = [lag for lag in step.lags if math.isfinite(lag)]
    return {
        "changes_made": len(step.lags),
        "changes_propagated": len(arrived),
        "backlog": {
            "start": ends[0],
            "end": ends[1],
            "slope_per_minute": rounded(settled_slope(step), 2),
        },
        "lag": minutes_summary(arrived),
    }


def capacity_report(
    day: Day,
    made: list[Change],
    lags: dict[int, float],
    samples: list[dict[str, float]],
    requests: list[tuple[float, str]],
) -> dict[str, dict[str, Any]]:
    """The staircase's steps and the capacity, as sections of the day's report. Judged on the
    changes the polls find; those only the comment sweep finds are reported beside: their lag
    is the sweep's cycle over every open ticket whatever the rate, longer than a step."""
    steps = staircase_steps(day, made, lags, samples)
    length = day.step_minutes * 60 / SCALE
    figures = [
        {
            "rate_per_minute": step["all"].rate,
            "found_by_polls": step_figures(step["found_by_polls"]),
            "swept_comments": step_figures(step["swept_comments"]),
            "zenvia_requests_by_kind": dict(
                Counter(_kind(label) for t, label in requests if k * length <= t < (k + 1) * length)
            ),
            "carried": carried(step["found_by_polls"]),
        }
        for k, step in enumerate(steps)
    ]
    judged = [step["found_by_polls"] for step in steps]
    found, limit = capacity(judged), physical_limit()
    ratio = rounded(found / limit, 3)
    return {
        "parameters": {
            "capacity_steps_per_minute": list(day.steps),
            "capacity_step_minutes_real": day.step_minutes,
            "capacity_settle_share": SETTLE,
            "capacity_slope_tolerance_share_of_rate": SLOPE_TOLERANCE,
        },
        "figures": {
            "capacity": {
                "steps": figures,
                "changes_per_minute": found,
                "at_least": all(map(carried, judged)),
                "changes_per_minute_counting_swept_comments": capacity(
                    [step["all"] for step in steps]
                ),
            }
        },
        "baseline": {
            "zenvia_writes_per_change": zenvia_writes_per_change(),
            "physical_limit_changes_per_minute": limit,
        },
        "ratios": {"capacity_vs_physical_limit": ratio},
        "goals": {"capacity_vs_physical_limit": goal(ratio, 0.9)},
    }


def run_day(opts: Options, day: Day, plot: Path | None) -> dict[str, Any]:
    business = day.business_minutes * 60 / SCALE
    night = day.night_minutes * 60 / SCALE
    seed_allowance = 30 + day.pairs * 0.02
    # A whole second: the business hours handed to the gate and the sandbox end on one, and
    # the requests counted as business hours must end with them.
    business_end = (datetime.now(UTC) + timedelta(seconds=seed_allowance + business)).replace(
        microsecond=0
    )
    hours, zone = business_hours_until(business_end)
    overrides = {
        "SYNCWORKER_ZENVIA_RATE_LIMIT": str(LIMIT),
        # Production's 61 s (a second of margin) would be 3.05 s here; the gate's windows are
        # whole seconds, so at this scale its window is the sandbox's, without the margin.
        "SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS": str(WINDOW),
        "SYNCWORKER_ZENVIA_BUSINESS_HOURS": hours,
        "SYNCWORKER_ZENVIA_TIMEZONE": zone,
        "SYNCWORKER_POLL_INTERVAL_SECONDS": str(30 / SCALE),
        "SYNCWORKER_POLL_OVERLAP_SECONDS": str(120 / SCALE),
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": str(300 / SCALE),
    }
    with bench_stack("businessday", **overrides) as stack:
        log(f"business day: seeding {day.pairs} linked pairs")
        pairs = seed_yesterday(stack, day.pairs)
        problems = check_in_sync(stack, pairs)
        stack.zenvia_server.faults.rate_limit = RateLimit(
            requests=LIMIT,
            window_seconds=WINDOW,
            business_hours=(clock_time(0), clock_time.fromisoformat(hours.split("-")[1])),
            timezone=zone,
        )
        quiet = quiet_poll(stack)
        changes = plan_changes(day, pairs)
        arrivals = Arrivals(stack)
        served = record_served(stack.zenvia_server)
        start_worker(stack, concurrency=WORKER_PROCESSES)
        wait = (business_end - datetime.now(UTC)).total_seconds() - business
        if wait < 0:
            raise RuntimeError(f"seeding took {-wait:.0f} s longer than its allowance")
        time.sleep(wait)
        throttled_before = stack.zenvia_server.counters.throttled
        start = time.monotonic()
        log(f"business day: {business:.0f} s of business hours, then {night:.0f} s of night")
        stop = threading.Event()
        timeline = sample_timeline(stack, changes, arrivals, start, stop)
        beat = PollLoop(stack, 30 / SCALE)
        beat.start()
        failed: Counter[str] = Counter()
        for change in changes:
            time.sleep(max(0.0, start + change.offset - time.monotonic()))
            change.made_at = time.monotonic()
            try:
                make_change(stack, change)
            except Exception as error:  # a refused agent action is a figure, not a crash
                failed[f"{change.side} {change.kind}: {error}"[:120]] += 1
                change.made_at = None
        time.sleep(max(0.0, start + business + night - time.monotonic()))
        drain_limit = opts.pick(120.0, 600.0)
        drained_by = time.monotonic() + drain_limit
        made = [c for c in changes if c.made_at is not None]
        while time.monotonic() < drained_by and any(arrivals.arrival(c) is None for c in made):
            time.sleep(0.2)
        end = time.monotonic()
        beat.stop()
        stop.set()
        throttled = stack.zenvia_server.counters.throttled - throttled_before
        backlog_at_end = stack.backlog()
        stack.stop_workers()
    lags = {c.n: a - c.made_at for c in made if (a := arrivals.arrival(c)) and c.made_at}
    events = served.between(start, end)
    in_business = [label for t, label in events if t - start < business]
    by_kind = {k: Counter(_kind(label) for label in in_business)[k] for k in KINDS}
    total = len(events)
    minimum = sum(ZENVIA_WRITES[c.side] for c in made)
    # In business hours every request is paid for out of the budget; at night none is.
    business_minimum = sum(ZENVIA_WRITES[c.side] for c in made if c.part == "business")
    business_ratio = rounded(len(in_business) / max(1, business_minimum), 2)
    windows = business / WINDOW
    budget = windows * LIMIT

    def lags_of(**match: str) -> list[float]:
        return [
            lags[c.n]
            for c in made
            if c.n in lags and all(getattr(c, k) == v for k, v in match.items())
        ]

    peak = max((s["pending"] for s in timeline.samples), default=0)
    figures = {
        "changes_made": len(made),
        "changes_refused_by_sandbox": dict(failed),
        "changes_propagated": len(lags),
        "unpropagated_at_end": len(made) - len(lags),
        "seed_problems": problems,
        "zenvia_requests": total,
        "zenvia_requests_business": len(in_business),
        "zenvia_requests_night": total - len(in_business),
        "zenvia_requests_per_propagated_change": rounded(total / max(1, len(lags))),
        "minimum_requests_per_change": rounded(minimum / max(1, len(made))),
        "business_budget": int(budget),
        "business_requests_by_kind": by_kind,
        "business_budget_share": {k: rounded(v / budget) for k, v in by_kind.items()}
        | {"unused": rounded(1 - len(in_business) / budget)},
        "night_requests_by_kind": dict(
            Counter(_kind(label) for t, label in events if t - start >= business)
        ),
        "requests_by_endpoint": dict(Counter(label for _, label in events)),
        "lag_business": lag_summary(lags_of(part="business")),
        "lag_night": lag_summary(lags_of(part="night")),
        "lag_business_by_change": {
            f"{side}_{kind}": lag_summary(lags_of(part="business", side=side, kind=kind))
            for side in ("crm", "zenvia")
            for kind, _ in CHANGE_MIX
        },
        "backlog_peak_changes": peak,
        "backlog_at_end_changes": len(made) - len(lags),
        "backlog_at_end_queued_observations": backlog_at_end,
        "responses_429": throttled,
        "quiet_poll_requests": quiet,
        "drain_after_night_seconds": rounded(end - start - business - night, 1),
        "polls": len(beat.durations),
        "polls_stopped_early": len(beat.incomplete),
        "timeline": [
            {"minute": rounded(s["t"] * SCALE / 60, 1), **{k: v for k, v in s.items() if k != "t"}}
            for s in timeline.samples[:: max(1, len(timeline.samples) // 60)]
        ],
    }
    if plot is not None:
        from bench.business_day_plot import Trace, draw

        def minute(t: float) -> float:
            return (t - start) * SCALE / 60

        draw(
            plot,
            Trace(
                requests=[(minute(t), _kind(label)) for t, label in events],
                backlog=[(s["t"] * SCALE / 60, s["pending"]) for s in timeline.samples],
                lags=[
                    (c.offset * SCALE / 60, lags[c.n] * SCALE / 60, c.side)
                    for c in made
                    if c.n in lags
                ],
                business_minutes=day.business_minutes,
                end_minutes=minute(end),
                limit_per_minute=LIMIT,
                staircase=[(k * day.step_minutes, rate) for k, rate in enumerate(day.steps)],
            ),
        )
    case: dict[str, dict[str, Any]] = {
        "parameters": {
            "linked_pairs": day.pairs,
            "business_minutes_real": day.business_minutes,
            "night_minutes_real": day.night_minutes,
            "changes_business": day.day_changes,
            "changes_night": day.night_changes,
            "change_mix": dict(CHANGE_MIX),
            "limit_per_window": LIMIT,
            "window_seconds": WINDOW,
            "time_scale": SCALE,
            "poll_every_seconds": 30 / SCALE,
            "comment_sweep_seconds": 300 / SCALE,
            "worker_processes": WORKER_PROCESSES,
        },
        "figures": figures,
        "baseline": {
            "minimum_zenvia_requests": minimum,
            "minimum_zenvia_requests_business": business_minimum,
            "physical_limit_changes_per_business_day": int(budget),
        },
        "ratios": {
            "business_requests_vs_minimum": business_ratio,
            "day_and_night_requests_vs_minimum": rounded(total / max(1, minimum), 2),
        },
        "goals": {
            "responses_429": goal(throttled, 0, at_most=True),
            "no_stall_backlog_back_to_0": goal(int(len(lags) == len(made)), 1),
            "business_requests_vs_minimum": goal(business_ratio, 1.5, at_most=True),
            "quiet_poll_zenvia_requests": goal(quiet["zenvia"], 1, at_most=True),
            "quiet_poll_salesforce_requests": goal(quiet["salesforce"], 1, at_most=True),
        },
    }
    if day.steps:
        requests = [(t - start, label) for t, label in events]
        for section, values in capacity_report(day, made, lags, timeline.samples, requests).items():
            case[section] |= values
    return case


def positive_rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 100:
        raise argparse.ArgumentTypeError(f"{value}: changes a minute, a number in (0, 100]")
    return rate


def climbing_rates(value: str) -> tuple[float, ...]:
    """`--capacity`'s rates: climbing, so the steps carried are the first ones."""
    rates = tuple(positive_rate(part) for part in value.split(","))
    if any(later <= earlier for earlier, later in itertools.pairwise(rates)):
        raise argparse.ArgumentTypeError(f"{value}: the steps climb, each rate above the last")
    return rates


def at_rate(day: Day, per_minute: float | None) -> Day:
    """`day` with `per_minute` changes a business minute (night scaled alike), or as it is."""
    if per_minute is None:
        return day
    factor = per_minute * day.business_minutes / day.day_changes
    return dataclasses.replace(
        day,
        day_changes=round(day.day_changes * factor),
        night_changes=round(day.night_changes * factor),
    )


def plot_path(value: str) -> Path:
    """`--plot`'s argument, refused before the day runs rather than after it."""
    path = Path(value)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{value}: the plot is a PNG file (FILE.png)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no directory {path.parent}")
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise argparse.ArgumentTypeError(
            "--plot needs matplotlib, a bench extra: .venv/bin/pip install -e '.[bench]'"
        ) from error
    return path


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--plot", type=plot_path, metavar="FILE.png", help="draw the day (needs matplotlib)"
        )
        rate = parser.add_mutually_exclusive_group()
        rate.add_argument(
            "--per-minute",
            type=positive_rate,
            metavar="N",
            help="changes a business-hours minute (default: 3 quick, ~1.9 full)",
        )
        rate.add_argument(
            "--capacity",
            type=climbing_rates,
            nargs="?",
            const=STAIRCASE,
            metavar="R1,R2,...",
            help="business hours as steps at these rates, 20 minutes each (60 with --full), "
            f"to find the capacity (default: {','.join(f'{r:g}' for r in STAIRCASE)})",
        )

    opts = options(__doc__ or "", add_arguments=add_arguments)
    load_before = machine()
    day = opts.pick(QUICK, FULL)
    rates = opts.extra["capacity"]
    day = (
        staircase(day, rates, opts.pick(20, 60))
        if rates
        else at_rate(day, opts.extra["per_minute"])
    )
    if (changes := day.day_changes + day.night_changes) > day.pairs:
        raise SystemExit(f"{changes} changes, each on its own pair of {day.pairs}: lower the rate")
    case = run_day(opts, day, opts.extra["plot"])
    emit(report("business_day", opts, load_before=load_before, **case))


if __name__ == "__main__":
    main()
