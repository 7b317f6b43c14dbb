"""Scenario settings that would make a chaos run meaningless are refused with a reason."""

from __future__ import annotations

import pytest

from syncworker.sandbox.salesforce import VisibilityDelay
from tests.chaos.scenarios import DelayedVisibility


def test_a_visibility_delay_not_below_the_poll_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match=r"120(\.0)? s\): polls could never see the late writes"):
        DelayedVisibility(VisibilityDelay(0.05, 120.0))


def test_the_delayed_visibility_scenario_restores_the_products_poll_overlap() -> None:
    scenario = DelayedVisibility()

    assert scenario.delay.seconds < scenario.overlap
    assert scenario.overrides() == {"SYNCWORKER_POLL_OVERLAP_SECONDS": "120.0"}
