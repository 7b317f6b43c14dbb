"""The three-way merge: both remote states + the link's baselines → a plan of writes (pure).

Each field is compared with its own side's baseline (the native value after the last sync):
changed on one side only → pushed to the other; changed on both → settled by the field's
policy. Our writes go into the new baselines, so they never come back as changes, and
agreement is judged through the mapping in either direction, so a lossy map (Escalated → 2,
2 → Working) never flips a value back. The service applies the plan, folding each write into
the stored baselines as soon as it lands, and stores the rest of the plan once every write
succeeded (see `Plan`).

`planner`: which plan a pair needs; `merge`: both records live; `one_sided`: create or
remove; `comments`: copies and notices; `texts`: the text of both, known again; `pair`: a
plan's inputs; `operations`: what a plan holds, and how it reads.
"""

from syncworker.engine.operations import (
    AddComment,
    CommentPair,
    Conflict,
    CreateRecord,
    LinkSnapshot,
    Operation,
    Plan,
    UpdateFields,
    client_lookup_note,
)
from syncworker.engine.planner import plan
from syncworker.engine.texts import copy_text, is_copy_of, is_notice

__all__ = [
    "AddComment",
    "CommentPair",
    "Conflict",
    "CreateRecord",
    "LinkSnapshot",
    "Operation",
    "Plan",
    "UpdateFields",
    "client_lookup_note",
    "copy_text",
    "is_copy_of",
    "is_notice",
    "plan",
]
