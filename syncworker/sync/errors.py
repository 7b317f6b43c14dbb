"""How a sync stops short: another sync committed the link first (`StaleLink`: retry and
plan again), a linked record cannot be read (`RecordMissing`), a create found the record an
earlier attempt made (`Adopted`: plan again, as a merge).
"""

from __future__ import annotations

from syncworker.connectors.errors import NotFoundError
from syncworker.model import Side


class StaleLink(Exception):
    """Another sync committed this link while we worked; the task retries and re-plans."""


class RecordMissing(NotFoundError):
    """A linked record answered 404 and its remote does not confirm a deletion."""

    def __init__(self, side: Side, record_id: str, cause: NotFoundError) -> None:
        self.side, self.record_id = side, record_id
        super().__init__(
            f"{side} record {record_id} cannot be read ({cause.message}) and its remote does "
            "not say it was deleted: the link is kept and marked missing; it syncs again once "
            "the record can be read (or run `syncworker links restore`)",
            remote=cause.remote,
            status=cause.status,
            code=cause.code,
            path=cause.path,
        )


class Adopted(Exception):
    """A create found its record from a lost reply and linked it: plan again, as a merge."""
