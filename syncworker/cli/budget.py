"""An operator command within the remotes' request budgets: a spent window is waited out, and
a command a remote stops says how far it got and when to run it again."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from syncworker.cli.common import console
from syncworker.connectors.errors import RateLimitedError, RemoteError
from syncworker.model import Side
from syncworker.ratelimit import SharedGate

if TYPE_CHECKING:
    from syncworker.context import Runtime


def _stopped(error: RemoteError, progress: str) -> str:
    """The line that ends a command a remote stopped: how far it got, when to run it again."""
    line = f"stopped by {error.describe()} {progress}"
    if isinstance(error, RateLimitedError):
        again = datetime.now(UTC) + timedelta(seconds=error.retry_after)
        line += f"; run the same command again after {again:%H:%M:%S} UTC"
        if error.remote == "zenvia":
            line += " or after Zenvia's business hours, when it does not limit"
        line += " (a record synced twice is not harmed)"
    return line


class _WaitingGate(SharedGate):
    """The shared gate for an operator's command: a spent window is waited out (a line says
    so) instead of ending the command; a longer wait (a 429's block, a daily quota) still
    raises. Workers never wait: this gate exists only in the command's process."""

    longest_wait = 0.0

    def before_request(self, endpoint: str) -> None:
        while True:
            try:
                super().before_request(endpoint)
            except RateLimitedError as error:
                if error.retry_after > self.longest_wait:
                    raise
                console.print(
                    f"{self.remote} request budget spent ({error.describe()}): "
                    f"waiting {error.retry_after:.0f} s",
                    style="yellow",
                )
                time.sleep(error.retry_after)
            else:
                return


def _waiting_runtime(rt: Runtime) -> Runtime:
    """`rt` with gates that wait out one budget window (`_WaitingGate`)."""
    from syncworker.runtime import _closed_zenvia, build_connectors

    gates: dict[Side, SharedGate] = {}
    for side, gate in rt.gates.items():
        waiting = _WaitingGate(
            remote=gate.remote,
            redis_url=rt.settings.effective_redis_url,
            window=gate.window,
            quota=gate.quota,
            clock=gate.clock,
        )
        waiting.longest_wait = rt.settings.zenvia_rate_window_seconds + 1
        gates[side] = waiting
    connectors = build_connectors(
        rt.settings,
        gates,
        zenvia_closed=_closed_zenvia(rt.mapping),
        crm_fields=rt.mapping.lookup_fields("crm"),
    )
    return dataclasses.replace(rt, gates=gates, connectors=connectors)
