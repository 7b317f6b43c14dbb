"""`syncworker check`: the pre-flight checklist and the pure judgements behind its lines.

Probes (`preflight_probes.py`) fetch what the remotes, Postgres and Redis say; the modules
here turn those answers and the mapping into checklist items: ok, warn (could not be
verified, or works with a caveat) or fail (a blocker: `syncworker check` exits 1). Each item
that is not ok carries its fix in one line. Pure: no I/O.
"""

from __future__ import annotations

from syncworker.preflight.checklist import Checklist, Item, fail, lines, ok, warn
from syncworker.preflight.named import crm_values_named, zenvia_ids_named
from syncworker.preflight.salesforce import (
    OwnerId,
    judge_client_lookup,
    judge_external_id,
    judge_owner_ids,
    judge_picklists,
    judge_quota,
    normalised_note,
    owner_ids_named,
)
from syncworker.preflight.stores import judge_eviction_policy, judge_migration
from syncworker.preflight.zenvia import judge_zenvia_ids, zenvia_cost_line, zenvia_ids_seen

__all__ = [
    "Checklist",
    "Item",
    "OwnerId",
    "crm_values_named",
    "fail",
    "judge_client_lookup",
    "judge_eviction_policy",
    "judge_external_id",
    "judge_migration",
    "judge_owner_ids",
    "judge_picklists",
    "judge_quota",
    "judge_zenvia_ids",
    "lines",
    "normalised_note",
    "ok",
    "owner_ids_named",
    "warn",
    "zenvia_cost_line",
    "zenvia_ids_named",
    "zenvia_ids_seen",
]
