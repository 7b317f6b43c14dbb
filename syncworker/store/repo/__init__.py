"""Data access for the mapping store: every query the service needs, and nothing else.

Plain functions with an explicit session and keyword-only arguments. Uniqueness is the
database's job (unique constraints + ON CONFLICT); these functions never check-then-insert.
One module per table (or pair of tables) it reads and writes; `repo.x(...)` names them all.
"""

from __future__ import annotations

from syncworker.store.repo.comment_links import comment_links_for, link_comments
from syncworker.store.repo.cursors import (
    CursorRegression,
    advance_cursor,
    finish_listing,
    get_cursor,
    save_listing,
)
from syncworker.store.repo.dead_letters import (
    close_dead_letter,
    count_dead_letters,
    get_dead_letter,
    list_dead_letters,
    newest_dead_letters,
    record_dead_letter,
    replay_dead_letters_of,
)
from syncworker.store.repo.history import append_history, history_of, prune_history
from syncworker.store.repo.intents import (
    attempt_times,
    begin_intent,
    complete_intent,
    count_attempt,
    create_intent_for,
    get_intent,
)
from syncworker.store.repo.links import (
    DuplicateLinkError,
    PairRows,
    add_link,
    all_links,
    count_finished,
    count_links_by_state,
    create_link,
    find_link,
    get_link,
    linked_record_ids,
    load_pair,
    pair_records,
    save_link_state,
    synced_versions,
)
from syncworker.store.repo.observations import (
    UNSETTLED,
    backlog,
    boundary_version,
    clear_queued,
    comment_sweep,
    comments_due,
    finish_sync,
    get_observation,
    give_up_version,
    mark_queued,
    needs_sync,
    observe,
    observe_many,
    stale_queued,
)
from syncworker.store.repo.runs import finish_run, last_complete_run, last_runs, start_run

__all__ = [
    "UNSETTLED",
    "CursorRegression",
    "DuplicateLinkError",
    "PairRows",
    "add_link",
    "advance_cursor",
    "all_links",
    "append_history",
    "attempt_times",
    "backlog",
    "begin_intent",
    "boundary_version",
    "clear_queued",
    "close_dead_letter",
    "comment_links_for",
    "comment_sweep",
    "comments_due",
    "complete_intent",
    "count_attempt",
    "count_dead_letters",
    "count_finished",
    "count_links_by_state",
    "create_intent_for",
    "create_link",
    "find_link",
    "finish_listing",
    "finish_run",
    "finish_sync",
    "get_cursor",
    "get_dead_letter",
    "get_intent",
    "get_link",
    "get_observation",
    "give_up_version",
    "history_of",
    "last_complete_run",
    "last_runs",
    "link_comments",
    "linked_record_ids",
    "list_dead_letters",
    "load_pair",
    "mark_queued",
    "needs_sync",
    "newest_dead_letters",
    "observe",
    "observe_many",
    "pair_records",
    "prune_history",
    "record_dead_letter",
    "replay_dead_letters_of",
    "save_link_state",
    "save_listing",
    "stale_queued",
    "start_run",
    "synced_versions",
]
