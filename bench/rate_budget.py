"""Rate-budget use: a backlog against a Zenvia limited to 10 requests per (short) window.

The sandbox enforces 10 requests per fixed window of `window` seconds; the workers' shared gate
is configured with the same limit and a window of `window + margin` (production: 60 s + 1 s).
A backlog of changes (half case edits, which cost Zenvia writes, half ticket edits, which cost
Zenvia reads) is made, then polls and 4 worker processes drain it. Figures, while the backlog
exists: 429s seen, budget utilisation (requests served / (windows elapsed * limit)), and what
the served requests were (poll listings, sync reads, writes), to show reads never starve writes.
Baseline: the ideal drain time, minimum Zenvia requests / limit * window.

    python -m bench.rate_budget [--full]
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench.common import (
    Options,
    PollLoop,
    Progress,
    bench_stack,
    emit,
    goal,
    is_write,
    log,
    machine,
    options,
    record_served,
    report,
    rounded,
    seed_pairs,
    start_worker,
    sync_events,
    wait_for_propagation,
)
from syncworker.sandbox.server import RateLimit

LIMIT = 10
WORKER_PROCESSES = 4


def _kind(label: str) -> str:
    if is_write(label):
        return "write"
    if label == "GET /v2/tickets":
        return "poll_listing"
    return "sync_read"


def run_case(opts: Options, *, window: int, margin: int, changes: int) -> dict[str, Any]:
    overrides = {
        "SYNCWORKER_ZENVIA_RATE_LIMIT": str(LIMIT),
        "SYNCWORKER_ZENVIA_RATE_WINDOW_SECONDS": str(window + margin),
        "SYNCWORKER_POLL_INTERVAL_SECONDS": "30",
        "SYNCWORKER_POLL_OVERLAP_SECONDS": "1",
    }
    poll_every = window
    with bench_stack("ratebudget", **overrides) as stack:
        pairs = seed_pairs(stack, changes)
        case_edits = 0
        for n, pair in enumerate(pairs):
            if n % 2 == 0:
                stack.salesforce.agent.edit(pair.case_id, Subject=f"Backlog case {n}")
                case_edits += 1
            else:
                stack.zenvia.agent.edit(pair.ticket_id, "subject", {"subject": f"Backlog {n}"})
        stack.zenvia_server.faults.rate_limit = RateLimit(requests=LIMIT, window_seconds=window)
        served = record_served(stack.zenvia_server)
        start_worker(stack, concurrency=WORKER_PROCESSES)
        throttled_before = stack.zenvia_server.counters.throttled
        progress = Progress()
        log(f"rate budget: {changes} changes, window {window} s, gate window {window + margin} s")
        started = time.monotonic()
        beat = PollLoop(stack, poll_every)
        beat.start()
        complete = wait_for_propagation(stack, progress, changes, timeout=1200, quiet=3 * window)
        finished = progress.last_change
        beat.stop()
        throttled = stack.zenvia_server.counters.throttled - throttled_before
        events = sync_events(stack)
        stack.stop_workers()
    during = served.between(started, finished)
    kinds = Counter(_kind(label) for _, label in during)
    by_label = Counter(label for _, label in during)
    elapsed = finished - started
    windows = elapsed / window
    utilisation = len(during) / (windows * LIMIT)
    write_times = [t for t, label in during if is_write(label)]
    # while writes were still pending: from the start to the last write
    gaps = [b - a for a, b in zip([started, *write_times], write_times, strict=False)] or [elapsed]
    minimum_requests = case_edits  # one PATCH per case edit; a ticket edit needs no Zenvia call
    ideal_seconds = minimum_requests / LIMIT * window
    return {
        "parameters": {
            "changes": changes,
            "case_edits": case_edits,
            "ticket_edits": changes - case_edits,
            "limit": LIMIT,
            "sandbox_window_seconds": window,
            "gate_window_seconds": window + margin,
            "poll_every_seconds": poll_every,
            "worker_processes": WORKER_PROCESSES,
        },
        "figures": {
            "all_propagated": complete,
            "changes_propagated": progress.count,
            "drain_seconds": rounded(elapsed),
            "responses_429": throttled,
            "requests_served_while_backlog": len(during),
            "windows_elapsed": rounded(windows, 2),
            "utilisation": rounded(utilisation),
            "utilisation_ceiling_from_margin": rounded(window / (window + margin)),
            "served_by_kind": dict(kinds),
            "served_by_endpoint": dict(by_label),
            "write_share": rounded(kinds["write"] / max(1, len(during))),
            "poll_listing_share": rounded(kinds["poll_listing"] / max(1, len(during))),
            "sync_reads_per_write": rounded(kinds["sync_read"] / max(1, kinds["write"]), 2),
            "longest_gap_between_writes_seconds": rounded(max(gaps)),
            "longest_gap_between_writes_windows": rounded(max(gaps) / window, 2),
            "zenvia_requests_per_change": rounded(len(during) / changes, 2),
            "polls": len(beat.durations),
            "polls_stopped_early": len(beat.incomplete),
            "sync_outcomes": dict(events),
        },
        "baseline": {
            "minimum_zenvia_requests": minimum_requests,
            "ideal_drain_seconds": rounded(ideal_seconds, 1),
        },
        "ratios": {
            "drain_vs_ideal": rounded(elapsed / ideal_seconds, 2),
            "requests_vs_minimum": rounded(len(during) / minimum_requests, 2),
        },
    }


def run(opts: Options) -> list[dict[str, Any]]:
    window = 3
    # (gate margin over the sandbox's window, backlog): matched windows, then production's
    # +1 s margin (full only, a shorter backlog: it shows the utilisation ceiling it sets)
    cases = opts.pick(((0, 60),), ((0, 200), (1, 100)))
    results = []
    for margin, changes in cases:
        load_before = machine()
        case = run_case(opts, window=window, margin=margin, changes=changes)
        figures = case["figures"]
        results.append(
            report(
                "rate_budget",
                opts,
                parameters=case["parameters"],
                figures=figures,
                baseline=case["baseline"],
                ratios=case["ratios"],
                goals={
                    "responses_429": goal(figures["responses_429"], 0, at_most=True),
                    "utilisation": goal(figures["utilisation"], 0.9),
                    "all_writes_done": goal(int(figures["all_propagated"]), 1),
                    "poll_reads_share": goal(figures["poll_listing_share"], 0.2, at_most=True),
                    "longest_gap_between_writes_windows": goal(
                        figures["longest_gap_between_writes_windows"], 2.0, at_most=True
                    ),
                },
                load_before=load_before,
            )
        )
    return results


def main() -> None:
    for result in run(options(__doc__ or "")):
        emit(result)


if __name__ == "__main__":
    main()
