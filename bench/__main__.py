"""Run every benchmark, one process each, and pass their JSON lines through.

    python -m bench [--full] [NAME ...]      (from the repository root; `make bench`)

Exits non-zero only when a benchmark crashed; missed goals are figures, reported in the
JSON (`goals_met`), never a failure: CI runs this as a smoke test of the benchmarks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import ROOT

BENCHMARKS = ("throughput", "efficiency", "rate_budget", "latency", "reconcile", "business_day")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    crashed = []
    for name in args.names or BENCHMARKS:
        started = time.monotonic()
        command = [sys.executable, "-m", f"bench.{name}", *(["--full"] if args.full else [])]
        done = subprocess.run(command, cwd=ROOT, check=False)
        print(
            f"[bench] {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if done.returncode != 0:
            crashed.append(name)
    if crashed:
        print(f"[bench] crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
