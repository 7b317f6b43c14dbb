"""`plan()`: which kind of plan a pair needs (orphaned, a record gone, both live, one to
create, none), handed to the module that makes it. Pure."""

from __future__ import annotations

import collections.abc as abc
from types import MappingProxyType

from syncworker.engine.merge import plan_merge
from syncworker.engine.one_sided import plan_create, plan_removal
from syncworker.engine.operations import CommentPair, LinkSnapshot, Plan
from syncworker.engine.pair import Pair
from syncworker.mapping import Mapping
from syncworker.model import SIDES, LinkState, RemoteComment, RemoteRecord, Side

_NO_RESOLUTIONS: abc.Mapping[str, Side] = MappingProxyType({})


def plan(
    mapping: Mapping,
    *,
    link: LinkSnapshot | None,
    crm: RemoteRecord | None,
    zenvia: RemoteRecord | None,
    crm_comments: abc.Sequence[RemoteComment] = (),
    zenvia_comments: abc.Sequence[RemoteComment] = (),
    comment_links: abc.Sequence[CommentPair] = (),
    resolutions: abc.Mapping[str, Side] = _NO_RESOLUTIONS,
) -> Plan:
    """Decide what one sync of one pair must write. `None` records are absent (never created,
    or deleted); `resolutions` names the winner of fields parked in a manual conflict."""
    pair = Pair(
        mapping=mapping,
        link=link,
        records={"crm": crm, "zenvia": zenvia},
        comments={"crm": tuple(crm_comments), "zenvia": tuple(zenvia_comments)},
        comment_links=tuple(comment_links),
        resolutions=resolutions,
    )
    if link is not None and link.state is LinkState.ORPHANED:
        return pair.unchanged(LinkState.ORPHANED, "the link is orphaned; nothing is synced")
    gone = [side for side in SIDES if pair.is_gone(side)]
    if gone:
        return plan_removal(pair, gone[0])
    live = [side for side in SIDES if pair.live(side) is not None]
    if len(live) == 2:
        return plan_merge(pair)
    if live:
        return plan_create(pair, live[0])
    return pair.unchanged(LinkState.ACTIVE, "neither record exists")
