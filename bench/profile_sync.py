"""Where one sync's CPU goes: `sync_record` run in-process under cProfile (thread CPU clock).

Not part of `make bench`: a tool for the hot path. Seeds pairs, edits each once (half cases,
half tickets), polls once (so observations are as a worker finds them), then runs every
queued sync right here, in this thread: the first half unprofiled (CPU and wall ms per sync),
the second under cProfile (heaviest functions, CPU share by package, calls per sync). Then it
polls again and does the same with the syncs that poll queues: the echoes of our own writes.
The sandboxes' threads serve the HTTP requests and are not in the profile (thread CPU clock).

    python -m bench.profile_sync [--full] [--profile DIR]   (DIR gets sync.pstats, echo.pstats)
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

from bench.common import Options, bench_stack, emit, options, rounded, seed_pairs
from syncworker import sync
from syncworker.context import Runtime
from syncworker.store import repo
from syncworker.store.db import session_scope


def _package(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/syncworker/" in filename:
        return "syncworker"
    return "stdlib"


def cpu_by_package(profiler: cProfile.Profile) -> dict[str, float]:
    """Share of the profiled CPU spent in each package's own code (tottime)."""
    totals: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        package = _package(filename)
        totals[package] = totals.get(package, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return {
        name: rounded(value / whole, 3)
        for name, value in sorted(totals.items(), key=lambda item: -item[1])
        if value / whole >= 0.005
    }


# (path suffix, function) → what one call of it is
_COUNTED = {
    ("sqlalchemy/engine/base.py", "_execute_context"): "sql_statements",
    ("postgresql/_psycopg_common.py", "do_ping"): "pool_pre_pings",
    ("sqlalchemy/pool/base.py", "_checkout"): "db_transactions",
    ("httpx/_client.py", "send"): "http_requests",
    ("redis/connection.py", "send_packed_command"): "redis_commands",
}


def calls_per_sync(profiler: cProfile.Profile, syncs: int) -> dict[str, float]:
    counts: dict[str, int] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, ncalls, _tt, _ct, _callers) in stats.items():
        for (suffix, function), label in _COUNTED.items():
            if name == function and filename.endswith(suffix):
                counts[label] = counts.get(label, 0) + ncalls
    return {label: rounded(n / syncs, 2) for label, n in sorted(counts.items())}


Queued = list[tuple[str, str]]


def run_queued(rt: Runtime, queued: Queued, profiler: cProfile.Profile | None = None) -> None:
    if profiler:
        profiler.enable()
    for side, record_id in queued:
        sync.sync_record(rt, "crm" if side == "crm" else "zenvia", record_id)
    if profiler:
        profiler.disable()


def measure(rt: Runtime, queued: Queued, name: str, opts: Options) -> dict[str, Any]:
    """The first half of `queued` unprofiled (clean figures), the second under cProfile."""
    queued = queued[::2] + queued[1::2]  # both halves: cases' and tickets' syncs alike
    half = len(queued) // 2
    cpu, wall = time.thread_time(), time.monotonic()
    run_queued(rt, queued[:half])
    cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
    profiler = cProfile.Profile(timer=time.thread_time)
    run_queued(rt, queued[half:], profiler)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    if opts.profile_dir:
        stats.dump_stats(opts.profile_dir / f"{name}.pstats")
    print(f"== {name} syncs ==", text.getvalue(), sep="\n")
    return {
        "syncs": len(queued),
        "cpu_ms_per_sync_unprofiled": rounded(cpu * 1000 / max(1, half), 2),
        "wall_ms_per_sync_unprofiled": rounded(wall * 1000 / max(1, half), 2),
        "own_cpu_share_by_package": cpu_by_package(profiler),
        "calls_per_sync": calls_per_sync(profiler, max(1, len(queued) - half)),
    }


def main() -> None:
    opts = options(__doc__ or "")
    count = opts.pick(200, 1000)
    overrides = {"SYNCWORKER_POLL_INTERVAL_SECONDS": "300", "SYNCWORKER_POLL_OVERLAP_SECONDS": "1"}
    with bench_stack("profile", **overrides) as stack:
        pairs = seed_pairs(stack, count)
        for n, pair in enumerate(pairs):
            if n % 2:
                stack.salesforce.agent.edit(pair.case_id, Subject=f"Edited case {n}")
            else:
                stack.zenvia.agent.edit(pair.ticket_id, "subject", {"subject": f"Edited {n}"})
        queued: Queued = []
        rt = stack.runtime
        rt.enqueue_sync = lambda side, record_id: queued.append((side, record_id))
        stack.poll()
        first = measure(rt, queued, "sync", opts)
        time.sleep(1.2)  # past the overlap: the next poll lists only what changed since
        queued.clear()
        stack.poll()
        echo = measure(rt, queued, "echo", opts)
        with session_scope(stack.database_url) as session:
            backlog = repo.backlog(session)
    emit({"name": "profile_sync", **first, "echo": echo, "left_queued": backlog})


if __name__ == "__main__":
    main()
