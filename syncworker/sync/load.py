"""Loading a pair: both records and their comments, each read from its remote or, where the
rules allow, judged from a poll's observation or taken as the last sync left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from syncworker import engine
from syncworker.connectors.errors import NotFoundError, RateLimitedError
from syncworker.context import Runtime
from syncworker.model import SIDES, LinkState, RemoteComment, RemoteRecord, Side
from syncworker.ratelimit import background_priority
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link, Observation
from syncworker.sync.errors import RecordMissing
from syncworker.sync.records import record_id_of, settle_margin


@dataclass
class Pair:
    """A link as one sync loaded it: both records and their comments, and how each side was
    judged (read now, from a poll's observation, or as the last sync left it)."""

    link: Link
    records: dict[Side, RemoteRecord | None]
    comments: dict[Side, list[RemoteComment]]
    observed: set[Side] = field(default_factory=set)
    # when each side was read from its remote (None: taken as the last sync left it)
    read_at: dict[Side, datetime | None] = field(default_factory=dict)
    listed: set[Side] = field(default_factory=set)  # sides whose comments were listed


def id_on(pair: Pair, side: Side) -> str | None:
    return record_id_of(pair.link, side)


def sweep_due(rt: Runtime, link: Link) -> bool:
    """Whether this sync lists the ticket's comments for the sweep
    (`polling._sweep_comments`)."""
    due = link.comments_due_at
    return link.zenvia_id is not None and due is not None and due <= rt.clock()


def load_pair(
    rt: Runtime,
    link: Link,
    observations: dict[Side, Observation],
    *,
    trust_observations: bool,
    sweep: bool = False,
) -> Pair:
    """Both records and their comments. A side with nothing seen newer than its last sync is
    taken as that sync left it while the other side brings news; with news on neither side
    (reconcile's orphan check, a lost message, an operator) both are read, except for a
    comment sweep, which takes both as they were left and lists the ticket's comments if the
    budget has room for the sweep (`_swept_comments`). Without trusting observations
    (an operator's resync) both are read, with all their comments."""
    pair = Pair(link=link, records={}, comments={})
    news = _sides_with_news(rt, link, observations)
    for side in SIDES:
        load_side(
            rt,
            pair,
            side,
            observations.get(side),
            trust_observation=trust_observations,
            # a parked conflict keeps old baselines: only a read tells what the side holds
            as_left=(bool(news - {side}) or sweep) and link.state == LinkState.ACTIVE,
            every_comment=not trust_observations or side in news,
            sweep=sweep and side == "zenvia",
        )
    return pair


def _sides_with_news(rt: Runtime, link: Link, observations: dict[Side, Observation]) -> set[Side]:
    """The sides whose newest observation holds something the pair's last sync did not read
    (none before a sync has read both sides: there is nothing to take as it left them)."""
    if None in (link.crm_version, link.zenvia_version):
        return set()
    return {side for side, seen in observations.items() if _news(rt, link, side, seen)}


def load_side(
    rt: Runtime,
    pair: Pair,
    side: Side,
    seen: Observation | None,
    *,
    trust_observation: bool,
    as_left: bool = False,
    every_comment: bool = False,
    sweep: bool = False,
) -> None:
    """Load one side into the pair. Its comments are listed when its version moved since the
    last sync (or for `every_comment`): the CRM connector folds the newest comment's stamp
    into its case's version, and a ticket whose updatedAt moved may carry a new action with
    the change (a plain comment may not move it: that is the `sweep`'s to find), unless only
    our own write moved it (`_echo_without_actions`)."""
    link = pair.link
    record_id = record_id_of(link, side)
    record, observed, read_at = (
        _load_record(
            rt, side, record_id, link, seen, trust_observation=trust_observation, as_left=as_left
        )
        if record_id
        else (None, False, None)
    )
    pair.records[side] = record
    pair.read_at[side] = read_at
    if observed:
        pair.observed.add(side)
    else:
        pair.observed.discard(side)
    comments: list[RemoteComment] | None = None
    if record is not None and not record.deleted:
        wanted = every_comment or _past_synced(link, side, record.version)
        if wanted and not _echo_without_actions(rt, pair, side):
            comments = rt.connectors[side].list_comments(record.id)
        elif sweep:
            comments = _swept_comments(rt, side, record.id)
    listing = comments is not None
    pair.comments[side] = comments or []
    if listing:
        pair.listed.add(side)
    else:
        pair.listed.discard(side)


def _swept_comments(rt: Runtime, side: Side, record_id: str) -> list[RemoteComment] | None:
    """The ticket's comments for its sweep, at the sweep's priority. None when the budget has
    no room for it now: the sweep stays due and a later sync or poll takes it, while this sync
    goes on with its change (background work never holds a change back)."""
    try:
        with background_priority("sweep"):
            return rt.connectors[side].list_comments(record_id)
    except RateLimitedError:
        return None


def _synced(link: Link, side: Side) -> datetime | None:
    """The version of `side` that the pair's last sync read."""
    return link.crm_version if side == "crm" else link.zenvia_version


def _news(rt: Runtime, link: Link, side: Side, seen: Observation) -> bool:
    """Whether the newest observation holds anything the last sync did not read: a newer
    stamp (a boundary read's stamp counts only once read late enough: `repo.needs_sync`), or
    the same stamp with another payload, which a poll flagged after the last commit (a change
    committed late with an earlier stamp)."""
    flagged = (
        seen.sync_queued_at is not None
        and link.last_synced_at is not None
        and seen.observed_at > link.last_synced_at
    )
    return flagged or repo.needs_sync(
        seen.version, _synced(link, side), seen.observed_at, settle_margin(rt, side)
    )


def _echo_without_actions(rt: Runtime, pair: Pair, side: Side) -> bool:
    """Whether the ticket's version moved only by our own write: a poll's read holding
    nothing but the baseline, on an account whose plain comments do not move updatedAt (a
    status carried by an action would show in the fields). Its actions are the sweep's."""
    record = pair.records[side]
    baseline = pair.link.zenvia_baseline
    return (
        side == "zenvia"
        and not rt.settings.zenvia_actions_move_updated_at
        and side in pair.observed
        and record is not None
        and baseline is not None
        and rt.mapping.project(side, record.fields) == baseline
    )


def _past_synced(link: Link, side: Side, version: datetime) -> bool:
    """Whether a record read now may carry comments the last sync did not list: its version
    is past the one recorded (a boundary read's stamp is: it is recorded just short)."""
    synced = _synced(link, side)
    return synced is None or version > synced


def _load_record(
    rt: Runtime,
    side: Side,
    record_id: str,
    link: Link,
    seen: Observation | None,
    *,
    trust_observation: bool,
    as_left: bool,
) -> tuple[RemoteRecord, bool, datetime | None]:
    """The record's current state, whether it was judged without reading it now, and when the
    remote was read (None when it is taken as the last sync left it).

    A poll's observation is used when it was read after this pair's last commit (an older
    read predates our own last writes and would look like the other side undoing them) and
    is no older than the version that commit read, however long the sync waited for the
    budget: the observation is the newest version any poll read of the record, a
    change made after it is another poll's news and another sync's, and a side the plan
    writes to is read again first. With `as_left`, a side whose newest observation is no
    newer than its last sync is taken as that sync left it (its baseline): a later change is
    seen by a poll and synced then.
    """
    fetched_at = rt.clock()
    if trust_observation and seen is not None:
        synced = _synced(link, side)
        baseline = link.crm_baseline if side == "crm" else link.zenvia_baseline
        after_commit = link.last_synced_at is None or seen.observed_at > link.last_synced_at
        if after_commit and (synced is None or seen.version >= synced):
            payload = dict(seen.payload)
            changed_at = rt.connectors[side].changed_at(payload)
            record = RemoteRecord(record_id, seen.version, payload, seen.deleted, changed_at)
            return record, True, seen.observed_at
        if (
            as_left
            and synced is not None
            and baseline is not None
            and not _news(rt, link, side, seen)
            and not seen.deleted  # a deletion is always confirmed by a read
        ):
            return RemoteRecord(record_id, synced, dict(baseline)), True, None
    try:
        record = rt.connectors[side].get(record_id)
    except NotFoundError as missing:
        if rt.connectors[side].confirm_deleted(record_id):
            return RemoteRecord(record_id, rt.clock(), {}, deleted=True), False, None
        raise RecordMissing(side, record_id, missing) from missing
    if seen is None:  # the first read of this record: its row lets the commit mark it synced
        with session_scope(rt.database_url) as session:
            repo.observe(session, side=side, record=record, fetched_at=fetched_at)
    return record, False, fetched_at


def list_crm_comments_for_new_ones(
    rt: Runtime, pair: Pair, comment_pairs: list[engine.CommentPair]
) -> None:
    """A sweep found ticket comments no link pairs: the case's comments are listed too, so a
    copy of one of them (its reply lost) is recognised instead of copied back."""
    linked = {p.zenvia_comment_id for p in comment_pairs}
    crm = pair.records.get("crm")
    if "crm" in pair.listed or crm is None or crm.deleted:
        return
    if any(comment.id not in linked for comment in pair.comments["zenvia"]):
        pair.comments["crm"] = rt.connectors["crm"].list_comments(crm.id)
        pair.listed.add("crm")
