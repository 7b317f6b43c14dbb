"""What every use case asks of a link and its records: the record's id on a side, whether a
record has ended (closed or canceled), and how long after a stamp a change may still carry it.
"""

from __future__ import annotations

from datetime import timedelta

from syncworker.context import Runtime
from syncworker.model import BaseStatus, NativeFields, Side
from syncworker.store.tables import Link


def record_id_of(link: Link, side: Side) -> str | None:
    return link.crm_id if side == "crm" else link.zenvia_id


def has_ended(rt: Runtime, side: Side, fields: NativeFields) -> bool:
    return rt.mapping.base_status(side, fields) in (BaseStatus.CLOSED, BaseStatus.CANCELED)


def settle_margin(rt: Runtime, side: Side) -> timedelta:
    """How long after a stamp a change may still carry it, as far as our clock can tell.
    Stamps finer than a second (Zenvia's milliseconds) are taken as unique: two changes in one
    millisecond are not a risk worth a re-read of every record we just wrote."""
    precision = rt.connectors[side].stamp_precision
    if precision < timedelta(seconds=1):
        return timedelta(0)
    return precision + timedelta(seconds=rt.settings.clock_skew_seconds)
