"""Gates as the runtime wires them, for tests of the shared budget."""

from __future__ import annotations

from syncworker.ratelimit import SharedGate
from syncworker.runtime import CRMS
from syncworker.settings import Settings


def salesforce_gate(redis_url: str) -> SharedGate:
    """The Salesforce budget exactly as `runtime.CRMS` builds it (a daily quota, 10 % kept)."""
    return CRMS["salesforce"].gate(Settings(), redis_url)
