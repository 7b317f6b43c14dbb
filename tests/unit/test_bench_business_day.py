"""bench.business_day's own logic: the day's plan, the business-hours settings, `--plot`."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

_UNSET = [
    k for k in ("SYNCWORKER_TEST_BROKER_URL", "SYNCWORKER_TEST_REDIS_URL") if k not in os.environ
]
from bench import business_day  # noqa: E402 - bench.common sets benchmark defaults on import
from bench.common import Pair  # noqa: E402

for _key in _UNSET:  # keep the benchmarks' Redis databases out of this test run
    os.environ.pop(_key, None)

from syncworker.settings import Settings  # noqa: E402


@pytest.mark.parametrize("hour", range(24))
def test_business_hours_end_at_the_given_moment_and_never_cross_midnight(hour: int) -> None:
    now = datetime(2026, 12, 1, hour, 17, 5, tzinfo=UTC)
    end = now + timedelta(hours=11, minutes=30)
    hours, zone = business_day.business_hours_until(end, now)
    start_text, end_text = hours.split("-")
    local_end = datetime.combine(end.astimezone(ZoneInfo(zone)).date(), _time(end_text))
    assert local_end.replace(tzinfo=ZoneInfo(zone)) == end.replace(microsecond=0)
    assert Settings(zenvia_business_hours=hours, zenvia_timezone=zone).business_hours is not None
    assert _time(start_text) <= now.astimezone(ZoneInfo(zone)).time()


def _time(text: str) -> clock_time:
    return clock_time.fromisoformat(text)


def test_each_change_gets_its_own_pair_and_falls_inside_its_part_of_the_day() -> None:
    day = business_day.Day(
        pairs=400, business_minutes=60, night_minutes=30, day_changes=150, night_changes=20
    )
    pairs = [Pair(n, f"case-{n}", f"ticket-{n}") for n in range(day.pairs)]
    changes = business_day.plan_changes(day, pairs)
    business = day.business_minutes * 60 / business_day.SCALE
    night = day.night_minutes * 60 / business_day.SCALE
    assert len({c.pair for c in changes}) == len(changes) == 170
    assert sum(c.part == "night" for c in changes) == 20
    assert all(0 <= c.offset < business for c in changes if c.part == "business")
    assert all(business <= c.offset < business + night for c in changes if c.part == "night")
    assert {c.side for c in changes} == {"crm", "zenvia"}
    assert {c.kind for c in changes} == {kind for kind, _ in business_day.CHANGE_MIX}


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("GET /v2/tickets", "poll"),
        ("GET /v2/tickets/{ticket_id}/actions", "comment_discovery"),
        ("GET /v2/tickets/{ticket_id}", "re_read"),
        ("GET /v2/tickets/{ticket_id}/status-changes", "re_read"),
        ("POST /v2/tickets/{ticket_id}/actions", "write"),
        ("PATCH /v2/tickets/{ticket_id}/attributes/status", "write"),
    ],
)
def test_zenvia_requests_are_told_apart_by_their_endpoint(label: str, kind: str) -> None:
    assert business_day._kind(label) == kind


def test_a_plot_that_is_not_a_png_is_refused_before_the_day_runs() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"day\.svg: the plot is a PNG file"):
        business_day.plot_path("day.svg")


def test_a_plot_in_a_missing_directory_is_refused_before_the_day_runs(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="no directory"):
        business_day.plot_path(str(tmp_path / "missing" / "day.png"))


def test_the_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from bench.business_day_plot import Trace, draw

    trace = Trace(
        requests=[(0.5, "poll"), (1.2, "write"), (1.3, "comment_discovery"), (2.0, "re_read")],
        backlog=[(0.0, 0), (1.0, 2), (2.0, 0)],
        lags=[(0.2, 1.0, "crm"), (0.4, 3.5, "zenvia")],
        business_minutes=2.0,
        end_minutes=3.0,
        limit_per_minute=10,
    )
    path = business_day.plot_path(str(tmp_path / "day.png"))
    draw(path, trace)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_rate_rescales_the_day_and_a_bad_rate_is_refused() -> None:
    day = business_day.at_rate(business_day.QUICK, 1.0)
    assert (day.day_changes, day.night_changes) == (60, 7)
    assert business_day.at_rate(business_day.QUICK, None) == business_day.QUICK
    with pytest.raises(argparse.ArgumentTypeError, match=r"fast: changes a minute"):
        business_day.positive_rate("fast")
    with pytest.raises(argparse.ArgumentTypeError, match="changes a minute"):
        business_day.positive_rate("0")
