"""Remote-call efficiency: requests to each remote per propagated change, against the minimum.

Each scenario edits `pairs` fresh, fully synced pairs the same way, then:
- poll: one poll of both sides (its requests are counted alone: the syncs it queues are held
  back until it ends, then sent);
- sync: the workers drain those syncs;
- echo: polls until quiet: the syncs our own writes trigger when the next poll sees them.
The minimum is what the change needs written: one Zenvia PATCH per changed attribute (status
and its justification share one), one request per comment, one Salesforce PATCH per case.
Also: a poll when nothing changed (goal: one list request per side) and 5 edits to one case
between polls (goal: one sync, one write).

    python -m bench.efficiency [--full]
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import (
    PRIORITIES,
    Options,
    Pair,
    bench_stack,
    delta,
    drained,
    emit,
    goal,
    is_write,
    log,
    machine,
    options,
    report,
    requests_by_endpoint,
    rounded,
    schedule_sweeps,
    seed_pairs,
    start_worker,
    sync_events,
)
from syncworker.model import Side
from tests.stack import Stack, wait_until

SIDE_SERVERS = ("zenvia", "salesforce")


@dataclass(frozen=True)
class Scenario:
    name: str
    edit: Callable[[Stack, Pair, int], None]
    minimum: dict[str, int]  # writes needed per change, by remote


def _case(**fields: Any) -> Callable[[Stack, Pair, int], None]:
    """Edit a case; `Subject` gets a unique suffix, `Priority="next"` the next priority."""

    def edit(stack: Stack, pair: Pair, n: int) -> None:
        values = {k: (f"{v} {n}" if k == "Subject" else v) for k, v in fields.items()}
        if values.get("Priority") == "next":
            current = stack.salesforce.agent.case(pair.case_id)["Priority"]
            values["Priority"] = PRIORITIES[(PRIORITIES.index(current) + 1) % len(PRIORITIES)]
        stack.salesforce.agent.edit(pair.case_id, **values)

    return edit


def _ticket(*edits: tuple[str, dict[str, Any]]) -> Callable[[Stack, Pair, int], None]:
    def edit(stack: Stack, pair: Pair, n: int) -> None:
        for attr, body in edits:
            value = {k: (f"{v} {n}" if k == "subject" else v) for k, v in body.items()}
            stack.zenvia.agent.edit(pair.ticket_id, attr, value)

    return edit


def _ticket_subject_and_owner(stack: Stack, pair: Pair, n: int) -> None:
    """Two ticket fields: the subject and the owner, handed to the next agent (always a
    change Zenvia accepts; the urgencies a ticket takes depend on its category)."""
    stack.zenvia.agent.edit(pair.ticket_id, "subject", {"subject": f"Ticket {n}"})
    agents = [agent.id for agent in stack.zenvia.catalogue.agents]
    current = stack.zenvia.ticket(pair.ticket_id)["ownerId"]
    following = (
        agents[(agents.index(current) + 1) % len(agents)] if current in agents else agents[0]
    )
    stack.zenvia.agent.edit(pair.ticket_id, "owner", {"ownerId": following})


def _case_comment(stack: Stack, pair: Pair, n: int) -> None:
    stack.salesforce.agent.add_comment(pair.case_id, f"Case note {n}")


def _ticket_comment(stack: Stack, pair: Pair, n: int) -> None:
    """A comment added in Zenvia, which only the ticket's comment sweep finds (the sandbox's
    actions leave updatedAt alone): the ticket's sweep comes due, as one sweep interval after
    the last listing."""
    stack.zenvia.agent.add_action(pair.ticket_id, f"Nota {n}")
    schedule_sweeps(stack, over_seconds=0, tickets=[pair.ticket_id])


def _five_case_edits(stack: Stack, pair: Pair, n: int) -> None:
    for k in range(5):
        stack.salesforce.agent.edit(pair.case_id, Subject=f"Coalesced {n}.{k}")


SCENARIOS = (
    Scenario("case_field", _case(Subject="Case subject"), {"zenvia": 1, "salesforce": 0}),
    Scenario(
        "case_two_fields",
        _case(Subject="Case subject", Priority="next"),
        {"zenvia": 2, "salesforce": 0},
    ),
    Scenario("case_status_on_hold", _case(Status="On Hold"), {"zenvia": 1, "salesforce": 0}),
    Scenario("case_comment", _case_comment, {"zenvia": 1, "salesforce": 0}),
    Scenario(
        "ticket_field", _ticket(("subject", {"subject": "Ticket"})), {"zenvia": 0, "salesforce": 1}
    ),
    Scenario("ticket_two_fields", _ticket_subject_and_owner, {"zenvia": 0, "salesforce": 1}),
    Scenario("ticket_comment", _ticket_comment, {"zenvia": 0, "salesforce": 1}),
    Scenario("coalesced_5_case_edits", _five_case_edits, {"zenvia": 1, "salesforce": 0}),
)


def _counters(stack: Stack) -> dict[str, Counter[str]]:
    return {
        "zenvia": requests_by_endpoint(stack.zenvia_server),
        "salesforce": requests_by_endpoint(stack.salesforce_server),
    }


def _diff(after: dict[str, Counter[str]], before: dict[str, Counter[str]]) -> dict[str, Any]:
    return {side: delta(after[side], before[side]) for side in SIDE_SERVERS}


def _total(requests: dict[str, dict[str, int]], side: str, *, writes: bool = False) -> int:
    return sum(n for label, n in requests[side].items() if not writes or is_write(label))


def held_poll(stack: Stack) -> tuple[dict[str, Any], list[tuple[Side, str]]]:
    """One poll of both sides; the syncs it queues are returned, not sent (see `send`)."""
    held: list[tuple[Side, str]] = []
    send = stack.runtime.enqueue_sync
    stack.runtime.enqueue_sync = lambda side, record_id: held.append((side, record_id))
    before = _counters(stack)
    try:
        stack.poll()
    finally:
        stack.runtime.enqueue_sync = send
    return _diff(_counters(stack), before), held


def send(stack: Stack, held: list[tuple[Side, str]]) -> None:
    for side, record_id in held:
        stack.runtime.enqueue_sync(side, record_id)


def wait_drained(stack: Stack) -> None:
    wait_until(lambda: drained(stack), timeout=300, interval=0.05, what="the syncs to drain")


def run_scenario(stack: Stack, scenario: Scenario, pairs: list[Pair]) -> dict[str, Any]:
    for n, pair in enumerate(pairs):
        scenario.edit(stack, pair, n)
    count = len(pairs)
    events = sync_events(stack)
    poll_requests, held = held_poll(stack)
    before = _counters(stack)
    send(stack, held)
    wait_drained(stack)
    time.sleep(0.3)  # the last task's log line
    mid, mid_events = _counters(stack), sync_events(stack)
    stack.settle(timeout=300)
    time.sleep(0.3)
    after, after_events = _counters(stack), sync_events(stack)
    sync_requests, echo_requests = _diff(mid, before), _diff(after, mid)
    per_change: dict[str, Any] = {}
    for side in SIDE_SERVERS:
        sync_total = _total(sync_requests, side)
        echo_total = _total(echo_requests, side)
        poll_total = _total(poll_requests, side)
        per_change[side] = {
            "total": rounded((sync_total + echo_total + poll_total) / count, 2),
            "sync": rounded(sync_total / count, 2),
            "echo": rounded(echo_total / count, 2),
            "poll_share": rounded(poll_total / count, 2),
            "writes": rounded(_total(sync_requests, side, writes=True) / count, 2),
            "minimum_writes": scenario.minimum[side],
        }
    minimum = sum(scenario.minimum.values())
    total = sum(per_change[side]["total"] for side in SIDE_SERVERS)
    return {
        "pairs": count,
        "syncs_queued_by_poll_per_change": rounded(len(held) / count, 2),
        "sync_tasks_per_change": rounded((mid_events["synced"] - events["synced"]) / count, 2),
        "echo_sync_tasks_per_change": rounded(
            (after_events["synced"] - mid_events["synced"]) / count, 2
        ),
        "requests_per_change": per_change,
        "requests_vs_minimum": rounded(total / minimum, 2) if minimum else None,
        "requests": {"poll": poll_requests, "sync": sync_requests, "echo": echo_requests},
    }


def quiet_poll(stack: Stack) -> dict[str, Any]:
    stack.settle(timeout=300)
    time.sleep(1.2)  # past the overlap: nothing changed within it either
    requests, held = held_poll(stack)
    send(stack, held)
    return {
        "requests": requests,
        "per_side": {side: _total(requests, side) for side in SIDE_SERVERS},
        "syncs_queued": len(held),
        "tickets_updated_today": len(stack.zenvia.tickets()),
    }


def run(opts: Options) -> dict[str, Any]:
    per_scenario = opts.pick(8, 40)
    overrides = {
        "SYNCWORKER_POLL_INTERVAL_SECONDS": "30",  # production's
        "SYNCWORKER_POLL_OVERLAP_SECONDS": "1",
        # a scenario makes the sweep of a ticket it comments on due itself; no other ticket's
        # comes due however long the run takes
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": "86400",
    }
    load_before = machine()
    with bench_stack("efficiency", **overrides) as stack:
        pairs = seed_pairs(stack, per_scenario * len(SCENARIOS))
        start_worker(stack, concurrency=2)
        quiet_before = quiet_poll(stack)
        results: dict[str, Any] = {}
        for index, scenario in enumerate(SCENARIOS):
            log(f"efficiency: {scenario.name}")
            chunk = pairs[index * per_scenario : (index + 1) * per_scenario]
            results[scenario.name] = run_scenario(stack, scenario, chunk)
            time.sleep(1.2)  # the next scenario's first poll sees only its own edits
        quiet = quiet_poll(stack)
        busy_day = opts.pick(500, 3000)
        log(f"efficiency: quiet poll after {busy_day} more tickets updated today")
        seed_pairs(stack, busy_day, seed=99)
        quiet_busy_day = quiet_poll(stack)
    coalesced = results["coalesced_5_case_edits"]
    goals: dict[str, Any] = {
        "quiet_poll_requests_zenvia": goal(quiet["per_side"]["zenvia"], 1, at_most=True),
        "quiet_poll_requests_salesforce": goal(quiet["per_side"]["salesforce"], 1, at_most=True),
        "coalesced_5_edits_sync_tasks": goal(coalesced["sync_tasks_per_change"], 1, at_most=True),
        "coalesced_5_edits_zenvia_writes": goal(
            coalesced["requests_per_change"]["zenvia"]["writes"], 1, at_most=True
        ),
    }
    for name, result in results.items():
        for side in SIDE_SERVERS:
            figures = result["requests_per_change"][side]
            if figures["minimum_writes"]:
                goals[f"{name}_{side}_writes_at_minimum"] = goal(
                    figures["writes"], figures["minimum_writes"], at_most=True
                )
    return report(
        "efficiency",
        opts,
        parameters={"pairs_per_scenario": per_scenario, "worker_processes": 2},
        figures={
            "scenarios": results,
            "quiet_poll": quiet,
            "quiet_poll_at_start": quiet_before,
            "quiet_poll_busy_day": quiet_busy_day,
        },
        baseline={
            "minimum_writes_per_change": {s.name: s.minimum for s in SCENARIOS},
            "quiet_poll_minimum": {"zenvia": 1, "salesforce": 1},
        },
        ratios={
            f"{name}_requests_vs_minimum": result["requests_vs_minimum"]
            for name, result in results.items()
        },
        goals=goals,
        load_before=load_before,
    )


def main() -> None:
    emit(run(options(__doc__ or "")))


if __name__ == "__main__":
    main()
