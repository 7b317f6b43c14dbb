"""A person's onboarding command waits for the remotes' budgets (a worker never does): a read
is tried again after each 429's stated wait, and connectors of its own wait for room."""

from __future__ import annotations

import dataclasses
import time as clock
from collections.abc import Callable
from typing import TypeVar, cast

import httpx

from syncworker.connectors.base import RequestGate
from syncworker.connectors.errors import RateLimitedError
from syncworker.context import Runtime
from syncworker.model import Side
from syncworker.ratelimit import SharedGate
from syncworker.runtime import build_connectors

PATIENCE = 5  # 429s a person's command waits out before it gives up
T = TypeVar("T")


def _patiently(read: Callable[[], T], pause: Callable[[float], None]) -> T:
    """`read` again after each 429's stated wait, up to PATIENCE times (a person is waiting;
    a worker never does this: its task is retried later)."""
    for _ in range(PATIENCE):
        try:
            return read()
        except RateLimitedError as limited:
            pause(limited.retry_after)
    return read()


class PatientGate:
    """The shared budget for a person's command: wait until it has room instead of failing
    (a worker never waits; its task is retried later). Delegates everything else."""

    def __init__(
        self,
        gate: RequestGate,
        *,
        sleep: Callable[[float], None] = clock.sleep,
        on_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._gate = gate
        self._sleep = sleep
        self._on_wait = on_wait

    def before_request(self, endpoint: str) -> None:
        while True:
            try:
                self._gate.before_request(endpoint)
                return
            except RateLimitedError as limited:
                self._on_wait(limited.retry_after)
                self._sleep(limited.retry_after)

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        self._gate.after_response(endpoint, response)


def patient(rt: Runtime, *, on_wait: Callable[[float], None]) -> Runtime:
    """The runtime with connectors of their own whose requests wait for the shared budget
    (a survey in business hours reads more than one window holds). Close its connectors."""
    gates = {side: PatientGate(gate, on_wait=on_wait) for side, gate in rt.gates.items()}
    # build_connectors only hands each gate to its connector, which takes any RequestGate
    connectors = build_connectors(
        rt.settings,
        cast(dict[Side, SharedGate], gates),
        crm_fields=rt.mapping.lookup_fields("crm"),
    )
    return dataclasses.replace(rt, connectors=connectors)
