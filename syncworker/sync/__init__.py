"""Use cases: poll one side, sync one pair, reconcile everything, resync, dead letters.

The imperative shell around the pure engine: gather both states (I/O), ask `engine.plan`,
apply the plan through the connectors with the write-ahead intent protocol, then commit the
new baselines fenced by the link's revision. Every function takes the `Runtime` explicitly.

From a poll to a remote write, one path, one module a step:

    polling      poll: observe a side's changes page by page, queue their syncs
    pair         sync_record: the pair's link, under its lock, then
      link         resolve the link (or adopt a record our own create made)
      load         load both records and their comments
                   plan (`engine.plan`), read again a side the plan overwrites
      apply        apply the writes; creates and comments through `intents`
      commit       commit the baselines, versions and state
    reconciling  reconcile: both sides whole, whatever polling missed
    operator     resync targets, resolve a conflict, restore a link
    failures     dead_letter: park a record whose sync failed for good

`errors` holds how a sync stops short, `records` what every step asks of a link's records.
"""

from __future__ import annotations

from syncworker.sync.apply import zenvia_cost
from syncworker.sync.errors import RecordMissing, StaleLink
from syncworker.sync.failures import dead_letter
from syncworker.sync.operator import resolve_conflict, restore_link, resync_targets
from syncworker.sync.pair import SyncOutcome, sync_record
from syncworker.sync.polling import PollOutcome, poll
from syncworker.sync.reconciling import ReconcileOutcome, reconcile

__all__ = [
    "PollOutcome",
    "ReconcileOutcome",
    "RecordMissing",
    "StaleLink",
    "SyncOutcome",
    "dead_letter",
    "poll",
    "reconcile",
    "resolve_conflict",
    "restore_link",
    "resync_targets",
    "sync_record",
    "zenvia_cost",
]
