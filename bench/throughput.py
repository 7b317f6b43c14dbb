"""Throughput: propagated changes per second, both directions, 2 worker processes.

Pairs are seeded fully synced; one edit is then made on each pair (field edits and comments,
on cases and on tickets, mixed) before polling starts; polls (a beat in miniature) and the
workers drain them. A comment added to a ticket does not move its updatedAt (the sandbox's
default), so only the comment sweep finds it: every ticket's sweep is due as the drain
starts, as after a gap in polling, and the sweep lists all of them. Baseline, same broker
and worker setup, same run: a burst of no-op tasks.

    python -m bench.throughput [--full] [--profile DIR]
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any, cast

from bench.common import (
    Options,
    Pair,
    PollLoop,
    Progress,
    bench_redis,
    bench_stack,
    check_in_sync,
    cpu_delta,
    cpu_seconds,
    delta,
    drained,
    emit,
    goal,
    log,
    machine,
    options,
    queues_empty,
    report,
    requests_by_endpoint,
    rounded,
    schedule_sweeps,
    seed_pairs,
    start_worker,
    sync_events,
    wait_for_propagation,
    write_profile_report,
)
from bench.worker_app import NOOP_COUNTER, NOOP_QUEUE, noop
from tests.stack import Stack, wait_until

GOAL_CHANGES_PER_SECOND = 250.0
CONCURRENCY = 2


def noop_rate(stack: Stack, count: int) -> dict[str, Any]:
    """No-op tasks per second through the same broker and the same kind of worker."""
    worker = start_worker(stack, concurrency=CONCURRENCY, queues=NOOP_QUEUE)
    client = bench_redis()
    client.delete(NOOP_COUNTER)
    cpu_before = cpu_seconds(stack)
    started = time.monotonic()
    for _ in range(count):
        noop.apply_async(queue=NOOP_QUEUE)
    sent = time.monotonic()

    def done() -> bool:
        return int(cast(bytes | None, client.get(NOOP_COUNTER)) or 0) >= count

    wait_until(done, timeout=300, interval=0.01, what="the no-op burst")
    finished = time.monotonic()
    cpu = cpu_delta(cpu_seconds(stack), cpu_before)
    worker.stop()
    client.close()
    return {
        "tasks": count,
        "worker_cpu_ms_per_task": rounded(cpu["workers"] * 1000 / count, 2),
        "seconds": rounded(finished - started),
        "tasks_per_second": rounded(count / (finished - started), 1),
        "enqueue_per_second": rounded(count / (sent - started), 1),
    }


def make_edits(stack: Stack, pairs: list[Pair], *, seed: int = 5) -> Counter[str]:
    """One human edit per pair: 45 % case field, 45 % ticket field, 10 % ticket comment.

    No comment on a case alone: a poll never queues it (see bench.efficiency, case_comment).
    """
    rng = random.Random(seed)
    kinds: Counter[str] = Counter()
    for n, pair in enumerate(pairs):
        roll = rng.random()
        if roll < 0.45:
            stack.salesforce.agent.edit(pair.case_id, Subject=f"Edited case {n}")
            kinds["case_field"] += 1
        elif roll < 0.9:
            stack.zenvia.agent.edit(pair.ticket_id, "subject", {"subject": f"Edited ticket {n}"})
            kinds["ticket_field"] += 1
        else:
            stack.zenvia.agent.add_action(pair.ticket_id, f"Nota do chamado {n}")
            kinds["ticket_comment"] += 1
    return kinds


def run(opts: Options) -> dict[str, Any]:
    pair_count = opts.pick(300, 2000)
    noop_count = opts.pick(2000, 10000)
    poll_every = 2.0
    overrides = {
        "SYNCWORKER_POLL_INTERVAL_SECONDS": "30",  # production's
        "SYNCWORKER_POLL_OVERLAP_SECONDS": "1",
    }
    load_before = machine()
    with bench_stack("throughput", **overrides) as stack:
        log(f"throughput: no-op baseline ({noop_count} tasks)")
        baseline = noop_rate(stack, noop_count)
        log(f"throughput: seeding {pair_count} pairs")
        pairs = seed_pairs(stack, pair_count)
        unfaithful = check_in_sync(stack, pairs)
        kinds = make_edits(stack, pairs)
        changes = sum(kinds.values())
        schedule_sweeps(stack, over_seconds=0)
        start_worker(stack, concurrency=CONCURRENCY, profile_dir=opts.profile_dir)
        before = {
            "zenvia": requests_by_endpoint(stack.zenvia_server),
            "salesforce": requests_by_endpoint(stack.salesforce_server),
        }
        progress = Progress()
        cpu_before = cpu_seconds(stack)
        log(f"throughput: draining {changes} changes")
        started = time.monotonic()
        beat = PollLoop(stack, poll_every)
        beat.start()
        complete = wait_for_propagation(stack, progress, changes, timeout=900)
        all_propagated = progress.last_change
        wait_until(lambda: drained(stack), timeout=300, interval=0.05, what="the echo syncs")
        beat.stop()
        stack.settle(timeout=300)
        settled = time.monotonic()
        cpu = cpu_delta(cpu_seconds(stack), cpu_before)
        events = sync_events(stack)
        after = {
            "zenvia": requests_by_endpoint(stack.zenvia_server),
            "salesforce": requests_by_endpoint(stack.salesforce_server),
        }
        stack.stop_workers()
        profile = (
            write_profile_report(opts.profile_dir, "throughput-workers")
            if opts.profile_dir
            else None
        )
        assert queues_empty()
    seconds = all_propagated - started
    rate = progress.count / seconds
    syncs = events["synced"]
    requests = {side: delta(after[side], before[side]) for side in after}
    return report(
        "throughput",
        opts,
        parameters={
            "pairs": pair_count,
            "changes": changes,
            "change_mix": dict(kinds),
            "worker_processes": CONCURRENCY,
            "poll_every_seconds": poll_every,
            "sandboxes": "unthrottled, no latency",
        },
        figures={
            "changes_per_second": rounded(rate, 1),
            "changes_propagated": progress.count,
            "all_propagated": complete,
            "seconds_to_propagate_all": rounded(seconds),
            "seconds_to_settle_incl_echo_syncs": rounded(settled - started),
            "first_poll_seconds": rounded(beat.durations[0]) if beat.durations else None,
            "sync_tasks_run": syncs,
            "sync_tasks_without_writes": events["synced_without_writes"],
            "sync_tasks_deferred_busy": events["deferred_busy"],
            "sync_tasks_per_second": rounded(syncs / (settled - started), 1),
            "requests_per_change": {
                side: rounded(sum(counts.values()) / changes, 2)
                for side, counts in requests.items()
            },
            "requests": requests,
            "cpu_seconds_while_draining": cpu,
            "cpu_ms_per_change": {k: rounded(v * 1000 / changes, 1) for k, v in cpu.items()},
            "worker_cpu_ms_per_sync_task": rounded(cpu["workers"] * 1000 / max(1, syncs), 1),
            "seed_faithful": not unfaithful,
            "seed_problems": unfaithful,
            "profile": str(profile) if profile else None,
        },
        baseline={"noop_task": baseline},
        ratios={
            "changes_per_second_vs_noop_tasks_per_second": rounded(
                rate / baseline["tasks_per_second"]
            ),
            "sync_tasks_per_change": rounded(syncs / changes, 2),
        },
        goals={"changes_per_second": goal(rounded(rate, 1), GOAL_CHANGES_PER_SECOND)},
        load_before=load_before,
    )


def main() -> None:
    emit(run(options(__doc__ or "")))


if __name__ == "__main__":
    main()
