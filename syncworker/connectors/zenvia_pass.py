"""Where a poll's pass over Zenvia's date listings stands, so a poll the budget stops resumes.

Zenvia lists tickets in an undocumented order, so a pass must read every page of each
listing (`updatedAt` and `createdAt` for each date the pass covers). Within a day a date's
listing only grows: a ticket changed today joins it and stays, so pages shift later and a
pass that goes on from its next page misses nothing the listing held when the pass began
(what joined earlier in the order is the next pass's). Only a past date's `updatedAt` listing
shrinks, when one of its tickets changes again: a listing whose total shrank is read again
from its first page, at most `MAX_RESTARTS` times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

MAX_RESTARTS = 2


@dataclass(frozen=True)
class ListingPass:
    """The listings a pass reads (`[stamp, date]`; `["", ""]` lists every ticket), the next
    page to read, and the total the current listing last stated."""

    listings: tuple[tuple[str, str], ...]
    index: int = 0
    page: int = 1
    total: int | None = None
    restarts: int = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.listings)

    def params(self) -> dict[str, str]:
        stamp, day = self.listings[self.index]
        return {stamp: day} if stamp else {}

    def after(self, *, items: int, total: int | None, page_size: int) -> ListingPass:
        """The position after reading the current page (`items` long, stating `total`)."""
        if (
            self.total is not None
            and total is not None
            and total < self.total
            and self.restarts < MAX_RESTARTS
        ):
            return replace(self, page=1, total=total, restarts=self.restarts + 1)
        if items < page_size or (total is not None and self.page * page_size >= total):
            return ListingPass(self.listings, self.index + 1)
        return replace(self, page=self.page + 1, total=total)

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, raw: object) -> ListingPass | None:
        """A stored position, or None when it does not read as one (a pass then starts over:
        the cursor has not moved, so nothing is skipped)."""
        if not isinstance(raw, dict):
            return None
        try:
            total = raw["total"]
            return cls(
                tuple((str(stamp), str(day)) for stamp, day in raw["listings"]),
                index=int(raw["index"]),
                page=int(raw["page"]),
                total=None if total is None else int(total),
                restarts=int(raw["restarts"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
