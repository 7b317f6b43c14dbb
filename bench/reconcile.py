"""Reconcile at scale: N linked pairs with no divergence, N small then large (linear?).

Pairs are seeded fast (sandboxes' in-process APIs, links/baselines/observations by COPY, see
`bench.common.seed_pairs`). `sync.reconcile` then runs in a process of its own, so its
wall time and peak RSS (`getrusage`) are its own, not the sandboxes'; the sandboxes count the
requests. Goals at the large N (100k in --full): <= 60 s, <= 300 MB, requests = listing pages
only, no writes, nothing queued. Baseline, same run and same child setup: listing both sides
through the connectors alone (no database), the floor a reconcile cannot go below.

    python -m bench.reconcile [--full] [--profile DIR]
    python -m bench.reconcile --child reconcile|list [--profile DIR]   (internal)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Options,
    bench_stack,
    check_in_sync,
    delta,
    emit,
    goal,
    is_write,
    log,
    machine,
    options,
    report,
    requests_by_endpoint,
    rounded,
    seed_pairs,
)
from tests.stack import Stack

ZENVIA_PAGE = 100
SALESFORCE_BATCH = 2000


def _rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident set of this process, in MiB.

    Not `getrusage().ru_maxrss`: Linux keeps it across fork + exec, so a child started by
    the bench would report the bench's own size (the sandboxes' 100k records) as its peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, profile_dir: Path | None) -> None:
    """Run in a fresh process with the stack's environment; print one JSON line."""
    from syncworker import sync
    from syncworker.tasks import get_runtime

    rt = get_runtime()
    profiler: Any = None
    if profile_dir is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
    rss_before = _rss_mb("VmRSS")
    started = time.monotonic()
    if profiler:
        profiler.start()
    outcome: dict[str, Any] = {}
    if kind == "reconcile":
        result = sync.reconcile(rt)
        outcome = {
            "seen": result.seen,
            "enqueued": result.enqueued,
            "orphans": result.orphans,
            "complete": result.complete,
        }
    else:
        outcome = {
            "seen": {side: sum(1 for _ in rt.connectors[side].iter_all()) for side in rt.connectors}
        }
    seconds = time.monotonic() - started
    if profiler:
        profiler.stop()
        assert profile_dir is not None
        seen = sum(outcome["seen"].values())
        (profile_dir / f"{kind}-{seen}.txt").write_text(profiler.output_text(unicode=True))
    requests = {side: dict(rt.connectors[side].requests.by_endpoint) for side in rt.connectors}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb_before": rss_before,
                "peak_rss_mb": _rss_mb(),
                "client_requests": requests,
                **outcome,
            }
        ),
        flush=True,
    )


def run_child(stack: Stack, kind: str, profile_dir: Path | None) -> dict[str, Any]:
    before = {
        "zenvia": requests_by_endpoint(stack.zenvia_server),
        "salesforce": requests_by_endpoint(stack.salesforce_server),
    }
    command = [sys.executable, "-m", "bench.reconcile", "--child", kind]
    if profile_dir is not None:
        command += ["--profile", str(profile_dir)]
    done = subprocess.run(
        command,
        env={**os.environ, **stack.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reconcile child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_requests"] = {
        "zenvia": delta(requests_by_endpoint(stack.zenvia_server), before["zenvia"]),
        "salesforce": delta(requests_by_endpoint(stack.salesforce_server), before["salesforce"]),
    }
    return result


def _count(requests: dict[str, dict[str, int]], *, writes: bool) -> int:
    return sum(
        n
        for counts in requests.values()
        for label, n in counts.items()
        if "oauth2" not in label and is_write(label) == writes
    )


def measure(stack: Stack, pairs: int, profile_dir: Path | None) -> dict[str, Any]:
    listing = run_child(stack, "list", None)
    result = run_child(stack, "reconcile", profile_dir)
    # Salesforce: the Case pages, then one CaseComment listing (a page even when empty) whose
    # newest stamps the connector folds into the case versions.
    comments = len(stack.salesforce.comments())
    pages = (
        math.ceil(pairs / ZENVIA_PAGE)
        + math.ceil(pairs / SALESFORCE_BATCH)
        + max(1, math.ceil(comments / SALESFORCE_BATCH))
    )
    reads = _count(result["server_requests"], writes=False)
    return {
        "pairs": pairs,
        "seconds": rounded(result["seconds"]),
        "ms_per_pair": rounded(result["seconds"] * 1000 / pairs, 3),
        "peak_rss_mb": rounded(result["peak_rss_mb"], 1),
        "rss_mb_before": rounded(result["rss_mb_before"], 1),
        "remote_reads": reads,
        "listing_pages": pages,
        "remote_writes": _count(result["server_requests"], writes=True),
        "enqueued": result["enqueued"],
        "orphans": result["orphans"],
        "complete": result["complete"],
        "seen": result["seen"],
        "requests": result["server_requests"],
        "listing_only": {
            "seconds": rounded(listing["seconds"]),
            "peak_rss_mb": rounded(listing["peak_rss_mb"], 1),
            "remote_reads": _count(listing["server_requests"], writes=False),
        },
    }


def run(opts: Options) -> dict[str, Any]:
    small, large = opts.pick((1000, 5000), (10_000, 100_000))
    overrides = {"SYNCWORKER_LOG_LEVEL": "WARNING"}
    load_before = machine()
    results: dict[int, dict[str, Any]] = {}
    faithful: list[str] = []
    with bench_stack("reconcile", **overrides) as stack:
        seeded = 0
        for size in (small, large):
            log(f"reconcile: seeding up to {size} pairs")
            started = time.monotonic()
            pairs = seed_pairs(stack, size - seeded, seed=size, past_overlap=False)
            seed_seconds = time.monotonic() - started
            seeded = size
            faithful += check_in_sync(stack, pairs, sample=3)
            log(f"reconcile: {size} pairs (seeded in {seed_seconds:.0f} s)")
            results[size] = measure(stack, size, opts.profile_dir)
            results[size]["seed_seconds"] = rounded(seed_seconds, 1)
    big, little = results[large], results[small]
    return report(
        "reconcile",
        opts,
        parameters={"pairs": [small, large], "divergence": "none"},
        figures={str(size): figures for size, figures in results.items()},
        baseline={
            "listing_only_seconds": {
                str(size): figures["listing_only"]["seconds"] for size, figures in results.items()
            },
            "seed_faithful": not faithful,
            "seed_problems": faithful[:3],
        },
        ratios={
            "ms_per_pair_large_vs_small": rounded(big["ms_per_pair"] / little["ms_per_pair"], 2),
            "rss_growth_mb_per_10k_pairs": rounded(
                (big["peak_rss_mb"] - little["peak_rss_mb"]) / ((large - small) / 10_000), 1
            ),
            "reconcile_vs_listing_only_seconds": rounded(
                big["seconds"] / max(0.001, big["listing_only"]["seconds"]), 2
            ),
            "requests_vs_pages": rounded(big["remote_reads"] / big["listing_pages"], 2),
        },
        goals={
            f"seconds_at_{large}": goal(big["seconds"], 60.0 * large / 100_000, at_most=True),
            f"peak_rss_mb_at_{large}": goal(big["peak_rss_mb"], 300.0, at_most=True),
            "requests_are_pages_only": goal(
                big["remote_reads"], big["listing_pages"], at_most=True
            ),
            "zero_writes": goal(big["remote_writes"], 0, at_most=True),
            "nothing_enqueued": goal(big["enqueued"] + big["orphans"], 0, at_most=True),
            "linear": goal(big["ms_per_pair"] / little["ms_per_pair"], 1.5, at_most=True),
        },
        load_before=load_before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--child", choices=("reconcile", "list"))
    known, rest = parser.parse_known_args()
    if known.child:
        profile = Path(rest[rest.index("--profile") + 1]) if "--profile" in rest else None
        child(known.child, profile)
        return
    emit(run(options(__doc__ or "", rest)))


if __name__ == "__main__":
    main()
