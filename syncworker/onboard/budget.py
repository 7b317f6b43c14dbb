"""How long a number of Zenvia requests takes within its budget, and when the unlimited
night is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from syncworker.settings import Settings


@dataclass(frozen=True)
class BudgetTime:
    """How long `requests` take within the Zenvia budget, and when the unlimited night is."""

    requests: int
    business_hours_seconds: float  # all of them at the business-hours rate
    limited_now: bool
    night_starts: datetime | None  # None: the limit applies all day
    night_ends: datetime | None


def budget_time(settings: Settings, requests: int, now: datetime) -> BudgetTime:
    rate = settings.zenvia_rate_limit / settings.zenvia_rate_window_seconds
    hours = settings.business_hours
    seconds = requests / rate
    if hours is None:
        return BudgetTime(requests, seconds, True, None, None)
    local = now.astimezone(ZoneInfo(settings.zenvia_timezone))
    start, end = hours
    limited = start <= local.time() < end
    night_starts = _next(local, end) if limited else local
    return BudgetTime(requests, seconds, limited, night_starts, _next(night_starts, start))


def _next(after: datetime, at: time) -> datetime:
    """The first moment at or after `after` whose local time is `at`."""
    candidate = after.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate >= after else candidate + timedelta(days=1)


def describe_budget(budget: BudgetTime, now: datetime) -> list[str]:
    lines = [f"{budget.requests} Zenvia requests"]
    in_hours = _duration(budget.business_hours_seconds)
    if budget.night_starts is None:
        return [*lines, f"the limit applies all day: about {in_hours}"]
    lines.append(
        f"in business hours: about {in_hours}, spending the whole budget (live syncs wait)"
    )
    if budget.limited_now:
        wait = _duration((budget.night_starts - now).total_seconds())
        lines.append(
            f"unlimited at night, from {budget.night_starts:%H:%M %Z} (in {wait}) "
            f"until {budget.night_ends:%H:%M %Z}: run it then"
        )
    else:
        lines.append(f"now is night (no limit) until {budget.night_ends:%H:%M %Z}: run it now")
    return lines


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
