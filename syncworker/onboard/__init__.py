"""Going live on an account with history: a plan of the first sync, then running it.

`survey` reads both sides and the mapping table and says what the first sync will do: pairs
to link (matched by `matching.match`), records to copy to the other side, records left out
(by the mapping's scope, through the engine's own plan), ambiguous matches, and the Zenvia
requests it all takes (`sync.zenvia_cost` of each engine plan, plus the first reads a
sync makes). `run` links the pairs — a link with both ids and no baselines, which the first
sync merges (a half link a sync left is completed; comments copied by hand are paired) — and
queues the syncs. A second run finds the links the first made (never synced yet) and queues
those again, so an interrupted run continues; a sync queued twice writes once (DESIGN
invariant 5).
"""

from __future__ import annotations

from syncworker.onboard.budget import BudgetTime, budget_time, describe_budget
from syncworker.onboard.pairs_file import FilePair, import_pairs, parse_pairs
from syncworker.onboard.patience import PATIENCE, PatientGate, patient
from syncworker.onboard.report import as_json, lines
from syncworker.onboard.running import RunOutcome, finished, run
from syncworker.onboard.surveying import EARLIER, Step, Survey, survey

__all__ = [
    "EARLIER",
    "PATIENCE",
    "BudgetTime",
    "FilePair",
    "PatientGate",
    "RunOutcome",
    "Step",
    "Survey",
    "as_json",
    "budget_time",
    "describe_budget",
    "finished",
    "import_pairs",
    "lines",
    "parse_pairs",
    "patient",
    "run",
    "survey",
]
