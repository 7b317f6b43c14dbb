"""`syncworker check`: the pre-flight checklist and the pure judgements behind its lines.

Probes (`preflight_probes.py`, and the CRM's own: `CrmWiring.probe`) fetch what the remotes,
Postgres and Redis say; the modules here (and the CRM's judgements, beside its connector) turn
those answers and the mapping into checklist items: ok, warn (could not be
verified, or works with a caveat) or fail (a blocker: `syncworker check` exits 1). Each item
that is not ok carries its fix in one line. Pure: no I/O.
"""

from __future__ import annotations

from syncworker.preflight.checklist import Checklist, Item, fail, lines, ok, one_line, warn
from syncworker.preflight.named import crm_values_named, zenvia_ids_named
from syncworker.preflight.stores import judge_eviction_policy, judge_migration
from syncworker.preflight.zenvia import (
    ActionSample,
    judge_actions_move_updated_at,
    judge_zenvia_ids,
    zenvia_cost_line,
    zenvia_ids_seen,
)

__all__ = [
    "ActionSample",
    "Checklist",
    "Item",
    "crm_values_named",
    "fail",
    "judge_actions_move_updated_at",
    "judge_eviction_policy",
    "judge_migration",
    "judge_zenvia_ids",
    "lines",
    "ok",
    "one_line",
    "warn",
    "zenvia_cost_line",
    "zenvia_ids_named",
    "zenvia_ids_seen",
]
