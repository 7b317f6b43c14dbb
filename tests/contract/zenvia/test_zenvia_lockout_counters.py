"""The sandbox counts its lockouts and the requests they refused, for the chaos report."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract


def test_lockouts_and_the_requests_they_refuse_are_counted(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    assert (sandbox.lockouts, sandbox.lockout_refusals) == (0, 0)
    for _ in range(3):
        assert raw.get("/tickets/999").status_code == 404
    for _ in range(2):
        assert raw.get("/tickets").status_code == 429
    clock.advance(seconds=60)
    assert raw.get("/tickets").status_code == 200

    assert (sandbox.lockouts, sandbox.lockout_refusals) == (1, 2)
