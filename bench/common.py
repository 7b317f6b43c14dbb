"""What every benchmark shares: isolation, the stack, fast seeding, counters, JSON output.

Isolation: the broker and the bench's Redis database come from `SYNCWORKER_TEST_BROKER_URL`
and `SYNCWORKER_TEST_REDIS_URL` (defaults: databases 6 and 5, never the ones the integration
tests use), and every run gets a throw-away Postgres database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("SYNCWORKER_TEST_BROKER_URL", "redis://127.0.0.1:6379/6")
os.environ.setdefault("SYNCWORKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")

import psycopg
import redis

from syncworker import metrics
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.connectors.zenvia import ZenviaConnector, _ticket_body
from syncworker.model import RemoteRecord
from syncworker.sandbox.server import Request, Response, SandboxServer
from syncworker.store.db import reset_engines
from syncworker.sync.commit import sweep_after_listing
from tests.conftest import create_throwaway_database, drop_database
from tests.stack import BROKER_URL, Stack, Worker, running_stack

REDIS_URL = os.environ["SYNCWORKER_TEST_REDIS_URL"]
LOCK_KEY = "bench:running"
ROOT = Path(__file__).resolve().parents[1]
OWNERS = tuple(f"00500000000000{n}AAA" for n in range(1, 6))
STATUSES = ("New", "Working", "Escalated")  # not On Hold: bench.efficiency sets it
PRIORITIES = ("High", "Medium", "Low")
TYPES = ("Question", "Problem", "Feature Request", None)


# -- run options and output ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    full: bool
    profile_dir: Path | None
    extra: dict[str, Any] = field(default_factory=dict)  # a benchmark's own arguments

    @property
    def mode(self) -> str:
        return "full" if self.full else "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        return full if self.full else quick


def options(
    description: str,
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Options:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument("--full", action="store_true", help="the figures run (default: quick)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="write pyinstrument profiles here (needs `pip install pyinstrument`)",
    )
    parsed = parser.parse_args(argv)
    # A SIGTERM (make interrupted, CI timeout) unwinds normally: workers stopped, DB dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if parsed.profile:
        parsed.profile.mkdir(parents=True, exist_ok=True)
    own = {k: v for k, v in vars(parsed).items() if k not in ("full", "profile")}
    return Options(full=parsed.full, profile_dir=parsed.profile, extra=own)


def machine() -> dict[str, Any]:
    """What else was running: the numbers mean little without it (2 shared cores)."""
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def code_version() -> dict[str, Any]:
    """The commit measured, and the source files changed on top of it (the tree moves)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "syncworker").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_syncworker_files": [path for path in dirty if path],
    }


def goal(value: float, target: float, *, at_most: bool = False) -> dict[str, Any]:
    met = value <= target if at_most else value >= target
    return {"value": value, "goal": f"{'<=' if at_most else '>='} {target}", "met": met}


def report(
    name: str,
    opts: Options,
    *,
    parameters: dict[str, Any],
    figures: dict[str, Any],
    baseline: dict[str, Any],
    ratios: dict[str, Any],
    goals: dict[str, Any],
    load_before: dict[str, Any],
) -> dict[str, Any]:
    """One benchmark's JSON object, always in this shape."""
    return {
        "name": name,
        "mode": opts.mode,
        "parameters": parameters,
        "figures": figures,
        "baseline": baseline,
        "ratios": ratios,
        "goals": goals,
        "goals_met": all(g.get("met", False) for g in goals.values()),
        "machine": {"before": load_before, "after": machine()},
        "code": code_version(),
    }


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, default=str), flush=True)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the stack ----------------------------------------------------------------------------------


def bench_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@contextlib.contextmanager
def bench_stack(name: str, **overrides: str) -> Iterator[Stack]:
    """A running stack on a throw-away database; locks, budgets and metrics in the bench's
    own Redis database (emptied first)."""
    client = bench_redis()
    # Benchmarks empty the broker and this Redis database: one at a time, or they'd lose each
    # other's queued syncs and counters.
    owner = f"{os.getpid()}:{name}"
    if not client.set(LOCK_KEY, owner, nx=True, ex=7200):
        holder = cast(bytes | None, client.get(LOCK_KEY)) or b"?"
        client.close()
        raise RuntimeError(
            f"another benchmark ({holder.decode()}) is using {REDIS_URL} and {BROKER_URL}; "
            f"wait for it, or delete the key {LOCK_KEY} if it died"
        )
    db_name: str | None = None
    tmp = Path(tempfile.mkdtemp(prefix=f"syncworker-bench-{name}-"))
    settings = {
        "SYNCWORKER_REDIS_URL": REDIS_URL,
        "SYNCWORKER_LOG_LEVEL": "INFO",
        # production's: the test stack's 1-s sweep would list every seeded ticket's comments
        # all through a benchmark
        "SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS": "300",
        **overrides,
    }
    try:
        client.flushdb()
        client.set(LOCK_KEY, owner, ex=7200)
        db_name, url = create_throwaway_database(f"syncworker_bench_{name}")
        with running_stack(url, tmp, catalogue=None, **settings) as stack:
            yield stack
    finally:
        reset_engines()
        if db_name is not None:
            drop_database(db_name)
        if os.environ.get("BENCH_KEEP_LOGS"):
            shutil.copytree(tmp, os.environ["BENCH_KEEP_LOGS"], dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if client.get(LOCK_KEY) == owner.encode():
            client.delete(LOCK_KEY)
        client.close()


def start_worker(
    stack: Stack,
    *,
    concurrency: int,
    queues: str = "poll,sync,reconcile",
    profile_dir: Path | None = None,
) -> Worker:
    """A stack worker running `bench.worker_app`: the syncworker app plus the baseline no-op
    task and optional per-child pyinstrument profiles."""
    return stack.start_worker(
        concurrency=concurrency,
        queues=queues,
        app="bench.worker_app",
        name_prefix="bench",
        env={"BENCH_PROFILE_DIR": str(profile_dir)} if profile_dir is not None else None,
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU used so far by this process (sandboxes, polls) and by the live worker processes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = 0.0
    for worker in stack.workers:
        if worker.process.poll() is None:
            for pid in [worker.process.pid, *_children(worker.process.pid)]:
                with contextlib.suppress(OSError):
                    workers += _cpu_seconds(pid)
    return {"bench_process": usage.ru_utime + usage.ru_stime, "workers": workers}


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before.get(key, 0.0), 2) for key in after}


def queues_empty(names: Sequence[str] = ("sync", "poll", "reconcile")) -> bool:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        return all(client.llen(queue) == 0 for queue in names)
    finally:
        client.close()


def drained(stack: Stack) -> bool:
    return stack.backlog() == 0 and queues_empty()


@dataclass
class Progress:
    """Propagated writes counted from a starting point; when the count last moved."""

    start: int = field(default_factory=lambda: propagated())
    count: int = 0
    last_change: float = field(default_factory=time.monotonic)

    def update(self) -> int:
        now = propagated() - self.start
        if now != self.count:
            self.count, self.last_change = now, time.monotonic()
        return now


def wait_for_propagation(
    stack: Stack, progress: Progress, expected: int, *, timeout: float, quiet: float = 5.0
) -> bool:
    """Until `expected` writes were propagated (True), or nothing is left to do: no backlog,
    empty queues and no progress for `quiet` seconds (False: some changes were never synced)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if progress.update() >= expected:
            return True
        if time.monotonic() - progress.last_change > quiet and drained(stack):
            return False
        time.sleep(0.02)
    return False


def propagated() -> int:
    """Writes the workers made to the other side (creates, updates, comments), all kinds."""
    client = bench_redis()
    try:
        values = cast(dict[bytes, bytes], client.hgetall(metrics.PROPAGATED.key))
        return sum(int(v) for v in values.values())
    finally:
        client.close()


def sync_log_events(worker: Worker) -> Counter[str]:
    """Sync task outcomes in a worker's JSON log: synced, deferred (busy/rate), failed."""
    found: Counter[str] = Counter()
    for line in worker.log().splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line).get("event", "")
        except ValueError:
            continue
        if event.startswith("synced link"):
            found["synced"] += 1
            if event.endswith(" 0 writes"):
                found["synced_without_writes"] += 1
        elif event.startswith("sync deferred"):
            found["deferred_rate" if "deferred, pair busy" not in event else "deferred_busy"] += 1
        elif event.startswith(("sync failed", "sync gave up", "sync will retry")):
            found["failed"] += 1
    return found


def sync_events(stack: Stack) -> Counter[str]:
    total: Counter[str] = Counter()
    for worker in stack.workers:
        total.update(sync_log_events(worker))
    return total


# -- remote request accounting ------------------------------------------------------------------


def requests_by_endpoint(server: SandboxServer) -> Counter[str]:
    return Counter(server.counters.by_endpoint)


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in sorted(after) if after[k] - before[k]}


def is_write(label: str) -> bool:
    return not label.startswith("GET") and "oauth2" not in label


@dataclass
class Served:
    """Requests a sandbox served (2xx or a vendor error from a handler), with their times."""

    events: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def between(self, start: float, end: float) -> list[tuple[float, str]]:
        with self.lock:
            return [(t, label) for t, label in self.events if start <= t <= end]


def record_served(server: SandboxServer) -> Served:
    """Wrap every route of a sandbox to note (monotonic time, route label) when it is served."""
    served = Served()
    for route in server.app.routes:
        original = route.handler

        def handler(
            request: Request, _original: Callable[[Request], Response] = original, _r: Any = route
        ) -> Response:
            response = _original(request)
            with served.lock:
                served.events.append((time.monotonic(), _r.label))
            return response

        route.handler = handler
    return served


def on_write(server: SandboxServer, label: str, callback: Callable[[Request], None]) -> None:
    """Call `callback(request)` after the sandbox applied a request to `label`."""
    route = next(r for r in server.app.routes if r.label == label)
    original = route.handler

    def handler(request: Request) -> Response:
        response = original(request)
        callback(request)
        return response

    route.handler = handler


# -- a beat in miniature ------------------------------------------------------------------------


class PollLoop(threading.Thread):
    """Call `stack.poll()` every `interval` seconds (fixed rate, like beat) until stopped."""

    def __init__(self, stack: Stack, interval: float) -> None:
        super().__init__(name="bench-poll-loop", daemon=True)
        self.stack = stack
        self.interval = interval
        self.stopping = threading.Event()
        self.durations: list[float] = []
        self.enqueued = 0
        self.incomplete: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                outcomes = self.stack.poll()
            except Exception as error:  # keep beating, as beat would; report it
                self.errors.append(repr(error))
            else:
                self.enqueued += sum(o.enqueued for o in outcomes)
                self.incomplete += [f"{o.side}: {o.stopped_by}" for o in outcomes if not o.complete]
            self.durations.append(time.monotonic() - started)
            next_at += self.interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


# -- seeding linked pairs fast ------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    link_id: int
    case_id: str
    ticket_id: str


def _case_values(rng: random.Random, n: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "Subject": f"Bench case {n}",
        "Status": rng.choice(STATUSES),
        "Priority": rng.choice(PRIORITIES),
        "Origin": "Web",
        "OwnerId": rng.choice(OWNERS),
    }
    kind = rng.choice(TYPES)
    if kind is not None:
        values["Type"] = kind
    return values


def psycopg_url(stack: Stack) -> str:
    return stack.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def schedule_sweeps(
    stack: Stack, *, over_seconds: float, tickets: Sequence[str] | None = None
) -> None:
    """Every open ticket's comment sweep (or only `tickets`') due within `over_seconds` from
    now, at random (0: all due now): as a deployment sweeping all along leaves them, or as a
    night's gap does."""
    with psycopg.connect(psycopg_url(stack)) as connection:
        connection.execute(
            "UPDATE links SET comments_due_at = now() + random() * %s * interval '1 second' "
            "WHERE comments_due_at IS NOT NULL AND (%s::text[] IS NULL OR zenvia_id = ANY(%s))",
            (over_seconds, tickets, tickets),
        )


def seed_pairs(
    stack: Stack, count: int, *, seed: int = 11, past_overlap: bool = True
) -> list[Pair]:
    """`count` linked, fully synced pairs, made without HTTP and without workers.

    Records go in through the sandboxes' in-process APIs (the ticket is what a sync would have
    created from the case: `Mapping.create_fields`); links, baselines (`Mapping.project`),
    observations (synced) and cursors go in with COPY, exactly as a finished sync leaves them
    (each open ticket's comment sweep due one sweep interval on).
    With `past_overlap`, return only once the next poll's window (cursor minus overlap) no
    longer holds the seeded records: one overlap after the newest seeded version (Salesforce
    stamps whole seconds, so many records share a stamp, none ahead of the clock).

    Each ticket is what a sync would create from its case (`Mapping.create_fields`), so it
    meets the Zenvia sandbox's rules (catalogue dependencies, clients) exactly when the
    product's creates do. People editing them must keep to those rules too: use
    `syncworker.sandbox.people`, as the demo and the chaos suite do.
    """
    rng = random.Random(seed)
    mapping = stack.mapping
    zenvia_connector = cast(ZenviaConnector, stack.runtime.connectors["zenvia"])
    crm_connector = cast(SalesforceConnector, stack.runtime.connectors["crm"])
    external = stack.settings.salesforce_external_id_field
    salesforce, zenvia = stack.salesforce, stack.zenvia
    case_ids: list[str] = []
    ticket_ids: list[str] = []
    # The sandbox checks the external id's uniqueness by scanning every Case (O(n) a create);
    # the ids given here are unique by construction.
    salesforce.external_id_unique = False
    try:
        for n in range(count):
            values = _case_values(rng, n)
            body = _ticket_body(mapping.create_fields("zenvia", values))
            ticket = zenvia.call("POST", "/v2/tickets", body)
            ticket_id = str(ticket["id"])
            case_ids.append(
                salesforce.as_user(values["OwnerId"]).create_case(**values, **{external: ticket_id})
            )
            ticket_ids.append(ticket_id)
    finally:
        salesforce.external_id_unique = True
    wanted_cases, wanted_tickets = set(case_ids), set(ticket_ids)
    columns = crm_connector._fields
    cases = {
        row["Id"]: crm_connector._record({name: row.get(name) for name in columns})
        for row in salesforce.cases(include_deleted=False)
        if row["Id"] in wanted_cases
    }
    tickets = {
        record.id: record
        for record in (zenvia_connector._record(raw) for raw in zenvia.tickets())
        if record.id in wanted_tickets
    }
    now = datetime.now(UTC)
    with psycopg.connect(psycopg_url(stack)) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY links (crm_system, crm_id, zenvia_id, crm_baseline, zenvia_baseline, "
            "crm_version, zenvia_version, state, conflict_fields, revision, created_at, "
            "updated_at, last_synced_at, comments_due_at) FROM STDIN"
        ) as copy:
            for case_id, ticket_id in zip(case_ids, ticket_ids, strict=True):
                case, ticket = cases[case_id], tickets[ticket_id]
                ticket_baseline = mapping.project("zenvia", ticket.fields)
                copy.write_row(
                    (
                        mapping.crm_system,
                        case_id,
                        ticket_id,
                        json.dumps(mapping.project("crm", case.fields)),
                        json.dumps(ticket_baseline),
                        case.version,
                        ticket.version,
                        "active",
                        "[]",
                        1,
                        now,
                        now,
                        now,
                        sweep_after_listing(stack.runtime, ticket_baseline),
                    )
                )
        with cursor.copy(
            "COPY observations (side, remote_id, version, payload, deleted, observed_at, "
            "synced_version) FROM STDIN"
        ) as copy:
            for side, records in (("crm", cases), ("zenvia", tickets)):
                for record in records.values():
                    copy.write_row(_observation(side, record, now))
        # With `past_overlap`, the cursors start one overlap past the seed, so the next poll's
        # window (cursor minus overlap) holds only what changes after seeding: otherwise the
        # seed would be observed again and look freshly read (its observations trusted).
        skip = timedelta(seconds=stack.settings.poll_overlap_seconds, milliseconds=1)
        for side, records in (("crm", cases), ("zenvia", tickets)):
            newest = max(records.values(), key=lambda r: (r.version, r.id))
            watermark = newest.version + skip if past_overlap else newest.version
            cursor.execute(
                "INSERT INTO cursors (side, watermark, last_id, updated_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (side) DO UPDATE SET "
                "watermark = excluded.watermark, last_id = excluded.last_id",
                (side, watermark, newest.id, now),
            )
        cursor.execute("SELECT id, crm_id FROM links WHERE crm_id IS NOT NULL")
        link_of = {crm_id: link_id for link_id, crm_id in cursor.fetchall()}
        connection.commit()
        connection.autocommit = True
        cursor.execute("ANALYZE links")
        cursor.execute("ANALYZE observations")
    if past_overlap:
        latest = max(r.version for r in [*cases.values(), *tickets.values()])
        outside = latest + timedelta(seconds=stack.settings.poll_overlap_seconds + 0.2)
        time.sleep(max(0.0, (outside - datetime.now(UTC)).total_seconds()))
    return [
        Pair(link_of[case_id], case_id, ticket_id)
        for case_id, ticket_id in zip(case_ids, ticket_ids, strict=True)
    ]


def _observation(side: str, record: RemoteRecord, now: datetime) -> tuple[Any, ...]:
    return (
        side,
        record.id,
        record.version,
        json.dumps(record.fields),
        record.deleted,
        now,
        record.version,
    )


def check_in_sync(stack: Stack, pairs: Sequence[Pair], sample: int = 5) -> list[str]:
    """Dry-run syncs of a few seeded pairs: each must plan nothing (the seed is faithful)."""
    from syncworker import sync

    problems = []
    for pair in pairs[:: max(1, len(pairs) // sample)][:sample]:
        outcome = sync.sync_record(stack.runtime, "crm", pair.case_id, dry_run=True)
        if outcome.plan_lines != ["nothing to do"]:
            problems.append(f"link {pair.link_id}: {outcome.plan_lines}")
    return problems


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: the p99 of 100 samples is the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def write_profile_report(directory: Path, name: str) -> Path | None:
    """Combine the workers' pyinstrument sessions into one text report `<name>.txt`."""
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    sessions = [Session.load(path) for path in sorted(directory.glob("worker-*.pyisession"))]
    if not sessions:
        return None
    combined = sessions[0]
    for other in sessions[1:]:
        combined = Session.combine(combined, other)
    for path in directory.glob("worker-*.pyisession"):
        path.unlink()
    report = directory / f"{name}.txt"
    renderer = ConsoleRenderer(unicode=True, color=False, show_all=False, short_mode=False)
    report.write_text(renderer.render(combined))
    return report


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits)
