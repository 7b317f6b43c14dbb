"""What every use case is handed: the process's settings, mapping, connectors, gates, locks,
and the way to queue a sync. Only the protocols: the wiring that builds one is `runtime`, the
process that owns one is `tasks`, so the use cases import neither."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

from syncworker.connectors.base import Connector
from syncworker.locks import Locks
from syncworker.mapping import Mapping
from syncworker.model import Side
from syncworker.ratelimit import SharedGate
from syncworker.settings import Settings

Enqueue = Callable[[Side, str], None]


@dataclass
class Runtime:
    """Everything a use case needs, passed explicitly (no globals inside the service)."""

    settings: Settings
    mapping: Mapping
    connectors: dict[Side, Connector]
    gates: dict[Side, SharedGate]
    locks: Locks
    redis: redis.Redis
    enqueue_sync: Enqueue
    syncs_waiting: Callable[[], int]  # sync messages waiting in the broker's queue
    clock: Callable[[], datetime]

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def crm_system(self) -> str:
        return self.mapping.crm_system

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
