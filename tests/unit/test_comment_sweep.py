"""How many tickets one poll sweeps: the budget's share in business hours, a batch at night."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from syncworker.ratelimit import WindowBudget
from syncworker.settings import load_settings
from syncworker.sync.polling import _sweep_batch

BUSINESS_HOURS = WindowBudget(requests=10, window_seconds=61, poll_reserve=2)


@dataclass
class Gate:
    """The two questions `_sweep_batch` asks the shared gate."""

    left: int | None
    window: WindowBudget | None = BUSINESS_HOURS

    def remaining(self) -> int | None:
        return self.left


def runtime(left: int | None, **settings: str) -> Any:
    return SimpleNamespace(settings=load_settings(settings), gates={"zenvia": Gate(left)})


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        pytest.param(None, 50, id="night-a-whole-batch"),
        pytest.param(10, 1, id="day-its-share-of-a-poll-interval"),
        pytest.param(2, 0, id="day-never-the-last-requests-the-syncs-need"),
    ],
)
def test_the_sweep_takes_its_share_of_the_budget(left: int | None, expected: int) -> None:
    assert _sweep_batch(runtime(left)) == expected


def test_a_larger_share_and_a_slower_poll_sweep_more_by_day() -> None:
    rt = runtime(10, SYNCWORKER_ZENVIA_SWEEP_SHARE="0.5", SYNCWORKER_POLL_INTERVAL_SECONDS="61")
    assert _sweep_batch(rt) == 5
