"""What the worker did, told by Celery's signals in the worker's threads: tasks published and
finished, and how quiet the last polls were."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.signals import after_task_publish, task_postrun, task_prerun

from syncworker.model import SIDES


class TaskTally:
    """Counts our tasks as they are published and finish, and how quiet the last polls were.

    A poll counts as quiet only when it started `listing_lag` seconds after the last change:
    Zenvia's date listings show a change only that long after it was made."""

    def __init__(self, listing_lag: float = 0.0) -> None:
        self.listing_lag = listing_lag
        self._lock = threading.Lock()
        self.published: collections.Counter[str] = collections.Counter()
        self.finished: collections.Counter[str] = collections.Counter()
        self.states: collections.Counter[str] = collections.Counter()
        self._poll_started: dict[str, float] = {}
        self._changed_at = 0.0
        self.quiet_polls: dict[str, int] = dict.fromkeys(SIDES, 0)

    @contextmanager
    def listening(self) -> Iterator[TaskTally]:
        receivers: list[tuple[Any, Callable[..., None]]] = [
            (after_task_publish, self._on_publish),
            (task_prerun, self._on_prerun),
            (task_postrun, self._on_postrun),
        ]
        for signal, receiver in receivers:
            signal.connect(receiver, weak=False)
        try:
            yield self
        finally:
            for signal, receiver in receivers:
                signal.disconnect(receiver)

    @property
    def in_flight(self) -> int:
        """Published and not finished: queued, reserved, running or waiting for a retry."""
        with self._lock:
            return sum(self.published.values()) - sum(self.finished.values())

    def changed(self) -> None:
        """Records changed now: only polls that start later can say the sides are quiet."""
        with self._lock:
            self._changed_at = time.monotonic()
            self.quiet_polls = dict.fromkeys(SIDES, 0)

    def _on_publish(self, sender: str | None = None, **_: Any) -> None:
        if sender and sender.startswith("syncworker."):
            with self._lock:
                self.published[sender] += 1

    def _on_prerun(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        if task is not None and task.name == "syncworker.poll":
            with self._lock:
                self._poll_started[task_id] = time.monotonic()

    def _on_postrun(
        self, task_id: str = "", task: Any = None, retval: Any = None, state: str = "", **_: Any
    ) -> None:
        if task is None or not task.name.startswith("syncworker."):
            return
        with self._lock:
            self.finished[task.name] += 1
            self.states[f"{task.name.removeprefix('syncworker.')} {state}"] += 1
            started = self._poll_started.pop(task_id, None)
            if started is None or not isinstance(retval, dict) or "side" not in retval:
                return
            side = retval["side"]
            if retval.get("enqueued") == 0 and started >= self._changed_at + self.listing_lag:
                self.quiet_polls[side] += 1
            elif retval.get("enqueued"):
                self.quiet_polls[side] = 0
