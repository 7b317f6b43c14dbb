"""Running the onboarding: link the new pairs, queue every step's sync, count the finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from syncworker.context import Runtime
from syncworker.model import SIDES
from syncworker.onboard.surveying import Step, Survey
from syncworker.store import repo
from syncworker.store.db import session_scope


@dataclass
class RunOutcome:
    linked: int = 0
    already_linked: list[str] = field(default_factory=list)
    queued: int = 0


def run(rt: Runtime, plan: Survey, *, on_step: Callable[[], None] = lambda: None) -> RunOutcome:
    """Link the new pairs (the unique constraints refuse a record linked meanwhile), then
    queue every step's sync (ids only)."""
    outcome = RunOutcome()
    refused: set[tuple[str, str]] = set()
    for pair in plan.new_links:
        with session_scope(rt.database_url) as session:
            try:
                repo.pair_records(
                    session, crm_system=rt.crm_system, crm_id=pair.crm_id, zenvia_id=pair.zenvia_id
                )
                outcome.linked += 1
            except repo.DuplicateLinkError as refusal:
                outcome.already_linked.append(str(refusal))
                refused.add((pair.crm_id, pair.zenvia_id))
        on_step()
    for step in plan.steps:
        if (step.record_id, step.other_id) not in refused:
            _link_same_comments(rt, step)
            rt.enqueue_sync(step.side, step.record_id)
            outcome.queued += 1
        on_step()
    return outcome


def _link_same_comments(rt: Runtime, step: Step) -> None:
    if not step.same_comments:
        return
    with session_scope(rt.database_url) as session:
        link = repo.find_link(
            session, side=step.side, remote_id=step.record_id, crm_system=rt.crm_system
        )
        if link is None or link.id is None:
            raise LookupError(f"no link for {step.side} record {step.record_id}")
        for crm_comment_id, zenvia_comment_id in step.same_comments:
            repo.link_comments(
                session,
                link_id=link.id,
                crm_comment_id=crm_comment_id,
                zenvia_comment_id=zenvia_comment_id,
                origin="crm",  # copied by hand: which one came first is not known
            )


def finished(rt: Runtime, plan: Survey, *, since: datetime) -> tuple[int, int]:
    """How many of the plan's syncs finished since `since`, and how many of those failed."""
    ids = {side: [step.record_id for step in plan.steps if step.side == side] for side in SIDES}
    with session_scope(rt.database_url) as session:
        return repo.count_finished(
            session,
            crm_system=rt.crm_system,
            crm_ids=ids["crm"],
            zenvia_ids=ids["zenvia"],
            since=since,
        )
