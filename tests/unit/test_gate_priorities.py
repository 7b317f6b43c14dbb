"""The shared budget's priorities: syncs before polls, polls before the comment sweep."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncworker.connectors.errors import RateLimitedError
from syncworker.ratelimit import Priority, SharedGate, WindowBudget, background_priority


def gate_with(left: int) -> SharedGate:
    window = WindowBudget(requests=10, window_seconds=60, poll_reserve=2)
    gate = SharedGate(
        remote="zenvia",
        redis_url="memory://priorities",
        window=window,
        clock=lambda: datetime(2026, 12, 1, 12, tzinfo=UTC),
    )
    gate.reset()
    for _ in range(10 - left):
        gate.before_request("GET /tickets/{id}")
    return gate


@pytest.mark.parametrize(
    ("left", "admitted"),
    [
        pytest.param(5, {"sync", "poll", "sweep"}, id="plenty-left"),
        pytest.param(4, {"sync", "poll"}, id="the-sweep-leaves-a-poll-its-request"),
        pytest.param(2, {"sync"}, id="the-last-requests-are-the-syncs"),
    ],
)
def test_background_work_leaves_the_budget_to_what_matters_more(
    left: int, admitted: set[str]
) -> None:
    priorities: tuple[Priority, ...] = ("sync", "poll", "sweep")
    for priority in priorities:
        gate = gate_with(left)
        try:
            if priority == "sync":
                gate.before_request("GET /tickets")
            else:
                with background_priority(priority):
                    gate.before_request("GET /tickets")
        except RateLimitedError:
            assert priority not in admitted
        else:
            assert priority in admitted
