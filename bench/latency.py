"""Propagation latency: from an edit on one side to its write arriving on the other.

A beat in miniature polls both sides every P seconds while edits arrive at a steady rate,
alternating cases and tickets, each on its own pair; the sandboxes note when each edit's
value is written on the other side. Baseline, same run: the pipeline alone (an edit, then a
poll at once, then the sync), i.e. the latency without the wait for the next poll.
Goal: p99 <= P + 1 s, sandboxes unthrottled.

    python -m bench.latency [--full]
"""

from __future__ import annotations

import json
import re
import threading
import time
from functools import partial
from typing import Any

from bench.common import (
    Options,
    Pair,
    PollLoop,
    bench_stack,
    emit,
    goal,
    log,
    machine,
    on_write,
    options,
    percentile,
    report,
    rounded,
    seed_pairs,
    start_worker,
)
from syncworker.sandbox.server import Request
from tests.stack import Stack, wait_until

TOKEN = re.compile(r"lat-(\d+)")
SALESFORCE_PATCH = "PATCH /services/data/{version}/sobjects/Case/{record_id}"
ZENVIA_PATCH = "PATCH /v2/tickets/{ticket_id}/attributes/subject"


class Arrivals:
    """When each `lat-<n>` value was first written to either sandbox."""

    def __init__(self, stack: Stack) -> None:
        self.times: dict[int, float] = {}
        self.lock = threading.Lock()
        on_write(stack.salesforce_server, SALESFORCE_PATCH, self._note)
        on_write(stack.zenvia_server, ZENVIA_PATCH, self._note)

    def _note(self, request: Request) -> None:
        arrived = time.monotonic()
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return
        text = str(body.get("Subject") or body.get("subject") or "")
        found = TOKEN.search(text)
        if found:
            with self.lock:
                self.times.setdefault(int(found.group(1)), arrived)

    def arrived(self, n: int) -> bool:
        with self.lock:
            return n in self.times


def edit(stack: Stack, pair: Pair, n: int) -> None:
    if n % 2 == 0:
        stack.salesforce.agent.edit(pair.case_id, Subject=f"lat-{n}")
    else:
        stack.zenvia.agent.edit(pair.ticket_id, "subject", {"subject": f"lat-{n}"})


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "samples": len(latencies),
        "p50": rounded(percentile(latencies, 0.5)),
        "p90": rounded(percentile(latencies, 0.9)),
        "p99": rounded(percentile(latencies, 0.99)),
        "max": rounded(max(latencies)) if latencies else float("nan"),
    }


def run_case(opts: Options, poll_every: float) -> dict[str, Any]:
    rate = opts.pick(3.0, 5.0)
    seconds = opts.pick(20.0, 60.0 if poll_every <= 2 else 40.0)
    pipeline_samples = opts.pick(10, 30)
    edits = int(rate * seconds)
    overrides = {"SYNCWORKER_POLL_INTERVAL_SECONDS": str(poll_every)}
    load_before = machine()
    with bench_stack("latency", **overrides) as stack:
        pairs = seed_pairs(stack, edits + pipeline_samples)
        arrivals = Arrivals(stack)
        start_worker(stack, concurrency=2)
        stack.settle(timeout=120)
        log(f"latency: pipeline baseline ({pipeline_samples} edits, poll at once)")
        pipeline: list[float] = []
        for k in range(pipeline_samples):
            n = 1_000_000 + k
            edited = time.monotonic()
            edit(stack, pairs[edits + k], n)
            stack.poll()
            wait_until(partial(arrivals.arrived, n), timeout=60, interval=0.005)
            pipeline.append(arrivals.times[n] - edited)
        log(f"latency: {edits} edits over {seconds:.0f} s, poll every {poll_every} s")
        edited_at: dict[int, float] = {}
        beat = PollLoop(stack, poll_every)
        beat.start()
        started = time.monotonic()
        for n in range(edits):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            edited_at[n] = time.monotonic()
            edit(stack, pairs[n], n)
        deadline = time.monotonic() + 10 * poll_every + 30
        while time.monotonic() < deadline and not all(arrivals.arrived(n) for n in edited_at):
            time.sleep(0.05)
        beat.stop()
        stack.stop_workers()
    latencies = [arrivals.times[n] - edited_at[n] for n in edited_at if n in arrivals.times]
    figures = summary(latencies)
    by_direction = {
        "case_to_ticket": summary(
            [
                arrivals.times[n] - t
                for n, t in edited_at.items()
                if n % 2 == 0 and n in arrivals.times
            ]
        ),
        "ticket_to_case": summary(
            [arrivals.times[n] - t for n, t in edited_at.items() if n % 2 and n in arrivals.times]
        ),
    }
    base = summary(pipeline)
    return report(
        "latency",
        opts,
        parameters={
            "poll_every_seconds": poll_every,
            "edits": edits,
            "edits_per_second": rate,
            "worker_processes": 2,
        },
        figures={
            "latency_seconds": figures,
            "by_direction": by_direction,
            "lost": edits - len(latencies),
            "poll_seconds": {
                "mean": rounded(sum(beat.durations) / max(1, len(beat.durations))),
                "max": rounded(max(beat.durations, default=0.0)),
            },
            "poll_errors": beat.errors[:3],
        },
        baseline={"pipeline_latency_seconds": base},
        ratios={
            "p99_vs_poll_interval_plus_1s": rounded(figures["p99"] / (poll_every + 1)),
            "p50_minus_pipeline_p50_vs_half_interval": rounded(
                (figures["p50"] - base["p50"]) / (poll_every / 2)
            ),
        },
        goals={
            "p99_seconds": goal(figures["p99"], poll_every + 1, at_most=True),
            "nothing_lost": goal(edits - len(latencies), 0, at_most=True),
        },
        load_before=load_before,
    )


def main() -> None:
    opts = options(__doc__ or "")
    for poll_every in opts.pick((2.0,), (2.0, 5.0)):
        emit(run_case(opts, poll_every))


if __name__ == "__main__":
    main()
