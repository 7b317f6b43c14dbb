"""How many tickets one poll sweeps: what the window leaves the sweep in business hours (at
most its share), a batch at night."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from syncworker.ratelimit import Priority
from syncworker.settings import load_settings
from syncworker.sync.polling import _sweep_batch


@dataclass
class Gate:
    """The one question `_sweep_batch` asks the shared gate."""

    spendable_by_sweep: int | None

    def spendable(self, priority: Priority) -> int | None:
        assert priority == "sweep"
        return self.spendable_by_sweep


def runtime(spendable: int | None, **settings: str) -> Any:
    return SimpleNamespace(settings=load_settings(settings), gates={"zenvia": Gate(spendable)})


@pytest.mark.parametrize(
    ("spendable", "expected"),
    [
        pytest.param(None, 50, id="night-a-whole-batch"),
        pytest.param(4, 4, id="day-what-a-quiet-window-leaves"),
        pytest.param(1, 1, id="day-what-a-busy-window-leaves"),
        pytest.param(0, 0, id="day-nothing-beyond-the-reserve"),
        pytest.param(9, 5, id="day-at-most-what-a-poll-interval-gives"),
    ],
)
def test_the_sweep_takes_what_the_window_leaves_it(spendable: int | None, expected: int) -> None:
    assert _sweep_batch(runtime(spendable)) == expected


def test_a_smaller_share_caps_the_sweep_by_day_but_never_below_one() -> None:
    assert _sweep_batch(runtime(4, SYNCWORKER_ZENVIA_SWEEP_SHARE="0.3")) == 1
    assert _sweep_batch(runtime(4, SYNCWORKER_ZENVIA_SWEEP_SHARE="0.01")) == 1
    slower = runtime(9, SYNCWORKER_ZENVIA_SWEEP_SHARE="0.5", SYNCWORKER_POLL_INTERVAL_SECONDS="61")
    assert _sweep_batch(slower) == 5
