"""bench.business_day's own logic: the day's plan, the business-hours settings, `--plot`."""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

_UNSET = [
    k for k in ("SYNCWORKER_TEST_BROKER_URL", "SYNCWORKER_TEST_REDIS_URL") if k not in os.environ
]
from bench import business_day  # noqa: E402 - bench.common sets benchmark defaults on import
from bench.business_day import Step  # noqa: E402
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


@pytest.mark.parametrize("staircase", [[], [(0.0, 1.0), (1.0, 3.0)]])
def test_the_plot_draws_a_png(tmp_path: Path, staircase: list[tuple[float, float]]) -> None:
    pytest.importorskip("matplotlib")
    from bench.business_day_plot import Trace, draw

    trace = Trace(
        requests=[(0.5, "poll"), (1.2, "write"), (1.3, "comment_discovery"), (2.0, "re_read")],
        backlog=[(0.0, 0), (1.0, 2), (2.0, 0)],
        lags=[(0.2, 1.0, "crm"), (0.4, 3.5, "zenvia")],
        business_minutes=2.0,
        end_minutes=3.0,
        limit_per_minute=10,
        staircase=staircase,
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


def _step(rate: float, backlog: Callable[[float], float], lags: tuple[float, ...] = (1.0,)) -> Step:
    """A 20-minute step sampled every minute, its backlog a function of the minute."""
    return Step(rate, 20, tuple((m, backlog(m)) for m in range(20)), lags)


def test_the_slope_is_fitted_to_every_sample_and_needs_two() -> None:
    assert business_day.slope([(0, 1), (1, 4), (2, 5), (3, 8)]) == pytest.approx(2.2)
    assert math.isnan(business_day.slope([(3, 8)]))


def test_a_backlog_that_rises_to_the_new_rate_then_stays_flat_is_carried() -> None:
    assert business_day.carried(_step(4, lambda m: min(m, 8) * 3))


@pytest.mark.parametrize(("growth", "carried"), [(0.39, True), (0.41, False), (1.0, False)])
def test_a_backlog_growing_by_more_than_a_tenth_of_the_rate_is_not_carried(
    growth: float, carried: bool
) -> None:
    assert business_day.carried(_step(4, lambda m: 5 + growth * m)) is carried


def test_a_step_with_a_change_never_written_across_is_not_carried() -> None:
    assert not business_day.carried(_step(4, lambda m: 5, lags=(1.0, math.inf)))


def test_a_step_too_short_to_fit_a_slope_is_not_carried() -> None:
    assert not business_day.carried(Step(4, 20, ((0, 5), (19, 5)), (1.0,)))


def test_the_capacity_is_the_last_rate_of_the_carried_steps_from_the_first() -> None:
    flat, growing = (lambda m: 5.0), (lambda m: 5.0 + m)
    steps = [_step(r, flat) for r in (1, 2, 3)] + [_step(4, growing), _step(6, flat)]
    assert business_day.capacity(steps) == 3
    assert business_day.capacity([_step(1, growing), _step(2, flat)]) == 0
    assert business_day.capacity([_step(1, flat), _step(2, flat)]) == 2


def test_the_physical_limit_follows_the_sides_the_plan_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = business_day.Day(
        pairs=300, business_minutes=60, night_minutes=30, day_changes=150, night_changes=20
    )
    pairs = [Pair(n, f"case-{n}", f"ticket-{n}") for n in range(day.pairs)]
    assert business_day.physical_limit() == 2 * business_day.LIMIT
    monkeypatch.setattr(business_day, "SIDES", ("crm", "crm", "zenvia"))
    assert business_day.physical_limit() == pytest.approx(1.5 * business_day.LIMIT)
    monkeypatch.setattr(business_day, "SIDES", ("crm",))
    assert business_day.physical_limit() == business_day.LIMIT
    assert {c.side for c in business_day.plan_changes(day, pairs)} == {"crm"}


def test_a_staircase_makes_each_step_s_changes_at_its_rate_within_the_step() -> None:
    day = business_day.staircase(business_day.QUICK, (1, 2.5, 4), 20)
    assert (day.business_minutes, day.day_changes, day.night_changes) == (60, 150, 20)
    pairs = [Pair(n, f"case-{n}", f"ticket-{n}") for n in range(day.pairs)]
    changes = business_day.plan_changes(day, pairs)
    length = 20 * 60 / business_day.SCALE
    per_step = Counter(int(c.offset // length) for c in changes if c.part == "business")
    assert per_step == {0: 20, 1: 50, 2: 80}
    assert sum(c.part == "night" for c in changes) == 20


def test_the_report_judges_the_changes_polls_find_and_shows_the_swept_comments_beside() -> None:
    day = business_day.staircase(business_day.QUICK, (1, 2), 20)
    pairs = [Pair(n, f"case-{n}", f"ticket-{n}") for n in range(day.pairs)]
    made = business_day.plan_changes(day, pairs)
    lags = {c.n: 1.0 for c in made}
    # Sampled every window (a minute): 4 changes in flight, and swept comments piling up by
    # half a change a minute all day.
    samples = [
        {"t": t, "pending": 4 + t / 6, "pending_swept": t / 6}
        for t in range(0, int(day.business_minutes * 60 / business_day.SCALE), 3)
    ]
    sections = business_day.capacity_report(day, made, lags, samples, [(1.0, "GET /v2/tickets")])
    capacity = sections["figures"]["capacity"]
    assert capacity["changes_per_minute"] == 2
    assert capacity["at_least"] is True
    assert capacity["changes_per_minute_counting_swept_comments"] == 0
    first = capacity["steps"][0]
    assert first["found_by_polls"]["backlog"]["slope_per_minute"] == 0
    assert first["swept_comments"]["backlog"]["slope_per_minute"] == 0.5
    assert first["found_by_polls"]["changes_made"] + first["swept_comments"]["changes_made"] == 20
    assert first["zenvia_requests_by_kind"] == {"poll": 1}
    assert sections["ratios"]["capacity_vs_physical_limit"] == 0.1
    assert sections["goals"]["capacity_vs_physical_limit"]["met"] is False


def test_the_staircase_climbs_and_a_bad_rate_is_refused() -> None:
    assert business_day.climbing_rates("1,2,4.5") == (1, 2, 4.5)
    with pytest.raises(argparse.ArgumentTypeError, match="the steps climb"):
        business_day.climbing_rates("1,3,3")
    with pytest.raises(argparse.ArgumentTypeError, match="changes a minute"):
        business_day.climbing_rates("1,,3")
