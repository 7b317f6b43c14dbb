"""Loading a pair: both records and their comments, each read from its remote or, where the
rules allow, judged from a poll's observation or taken as the last sync left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syncworker import engine
from syncworker.connectors.errors import NotFoundError
from syncworker.context import Runtime
from syncworker.model import SIDES, LinkState, RemoteComment, RemoteRecord, Side
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
    comment sweep, which lists the ticket's comments and takes both as they were left. Without
    trusting observations (an operator's resync) both are read, with all their comments."""
    pair = Pair(link=link, records={}, comments={})
    news = {side for side, seen in observations.items() if _news(rt, link, side, seen)}
    if None in (link.crm_version, link.zenvia_version):
        news = set()  # no sync has read both sides yet: nothing to take as it left them
    for side in SIDES:
        load_side(
            rt,
            pair,
            side,
            observations.get(side),
            trust_observation=trust_observations,
            # a parked conflict keeps old baselines: only a read tells what the side holds
            as_left=(bool(news - {side}) or sweep) and link.state == LinkState.ACTIVE,
            every_comment=not trust_observations or side in news or (sweep and side == "zenvia"),
        )
    return pair


def load_side(
    rt: Runtime,
    pair: Pair,
    side: Side,
    seen: Observation | None,
    *,
    trust_observation: bool,
    as_left: bool = False,
    every_comment: bool = False,
) -> None:
    """Load one side into the pair. Its comments are listed only when its version moved since
    the last sync (or for `every_comment`): Zenvia bumps a ticket's updatedAt on every new
    action, and the CRM connector folds the newest comment's stamp into its case's version."""
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
    listing = (
        record is not None
        and not record.deleted
        and (every_comment or _past_synced(link, side, record.version))
    )
    pair.comments[side] = rt.connectors[side].list_comments(record.id) if record and listing else []
    if listing:
        pair.listed.add(side)
    else:
        pair.listed.discard(side)


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
    read predates our own last writes and would look like the other side undoing them), is
    no older than the version that commit read, AND was read within one poll interval or
    holds nothing but the baseline (our own write's echo, whose comments are listed now: a
    sync delayed by the rate budget need not read the ticket again).
    With `as_left`, a side whose newest observation is no newer than its last sync is taken as
    that sync left it (its baseline). Either way a later change is seen by a poll and synced
    then, and a side the plan will overwrite is always read again first.
    """
    fetched_at = rt.clock()
    if trust_observation and seen is not None:
        synced = _synced(link, side)
        baseline = link.crm_baseline if side == "crm" else link.zenvia_baseline
        after_commit = link.last_synced_at is None or seen.observed_at > link.last_synced_at
        recent = fetched_at - seen.observed_at <= timedelta(
            seconds=rt.settings.poll_interval_seconds
        )
        echo = not seen.deleted and rt.mapping.project(side, seen.payload) == baseline
        if after_commit and (recent or echo) and (synced is None or seen.version >= synced):
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
