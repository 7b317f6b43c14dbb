"""The syncworker Celery app as the benchmarks' workers run it: plus a no-op baseline task,
and, when `BENCH_PROFILE_DIR` is set, a pyinstrument profile of every task in each child.

`celery -A bench.worker_app worker …` (from the repository root) serves the usual queues and
`bench_noop`. The no-op task goes through the very same configuration (broker, acks late,
prefetch, events, result backend) as a sync; it only counts itself, one INCR, so the bench can
tell when a burst of them is done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun, worker_process_shutdown

import syncworker.tasks  # noqa: F401 - registers the real tasks on the app
from syncworker.celery_app import app
from syncworker.settings import get_settings

NOOP_QUEUE = "bench_noop"
NOOP_COUNTER = "bench:noop:done"

_client: redis.Redis | None = None


def _noop(self: Any) -> None:
    """Nothing but counting itself (the bench waits for the count)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(get_settings().effective_redis_url)
    _client.incr(NOOP_COUNTER)


noop: Any = app.task(name="bench.noop", bind=True)(_noop)


_profile: dict[str, Any] = {}


def _profiler() -> Any:
    if "profiler" not in _profile:
        from pyinstrument import Profiler

        _profile["profiler"] = Profiler(interval=0.0005, async_mode="disabled")
    return _profile["profiler"]


def _start(**_: Any) -> None:
    if os.environ.get("BENCH_PROFILE_DIR"):
        _profiler().start()


def _stop(**_: Any) -> None:
    if os.environ.get("BENCH_PROFILE_DIR") and "profiler" in _profile:
        _profile["profiler"].stop()
        if time.monotonic() - _profile.get("saved", 0.0) > 2.0:
            _save()


def _save(**_: Any) -> None:
    """Write this child's combined session (also every 2 s: a SIGTERM may beat shutdown)."""
    directory = os.environ.get("BENCH_PROFILE_DIR")
    profiler = _profile.get("profiler")
    if directory and profiler is not None and profiler.last_session is not None:
        profiler.last_session.save(Path(directory) / f"worker-{os.getpid()}.pyisession")
        _profile["saved"] = time.monotonic()


task_prerun.connect(_start, weak=False)
task_postrun.connect(_stop, weak=False)
worker_process_shutdown.connect(_save, weak=False)

__all__ = ["NOOP_COUNTER", "NOOP_QUEUE", "app", "noop"]
