"""Creates and comments reach their remote at most once, even across crashes (DESIGN
invariant 2): a write-ahead intent is committed first and counts each send that may have
landed; a retry looks for what an earlier send made before it sends again.
"""

from __future__ import annotations

from collections.abc import Callable

from syncworker import bookkeeping, client_lookup, engine
from syncworker.connectors.errors import RateLimitedError
from syncworker.context import Runtime
from syncworker.model import Side, other_side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.errors import Adopted, StaleLink
from syncworker.sync.link import adopt, crm_connector
from syncworker.sync.load import Pair, id_on


def create(rt: Runtime, pair: Pair, plan: engine.Plan, operation: engine.CreateRecord) -> bool:
    """Create the missing side at most once, even across crashes (DESIGN invariant 2).

    True when this call created it. A record an earlier attempt made (its reply lost) is
    adopted with that attempt's planned baselines, and the pair is planned again as a merge.
    """
    target, link = operation.side, pair.link
    assert link.id is not None
    key = operation.source_id if target == "crm" else operation.idempotency_key
    connector = rt.connectors[target]
    with session_scope(rt.database_url) as session:
        intent = repo.begin_intent(
            session,
            key=key,
            link_id=link.id,
            side=target,
            kind="create",
            source_id=operation.source_id,
        )
        remote_id, maybe_sent, started = intent.remote_id, intent.attempts > 0, intent.created_at
        attempts = repo.attempt_times(intent)
    if remote_id is None and maybe_sent:
        found = connector.find_created(key, around=started, attempts=attempts)
        if found is not None:
            adopt(rt, link.id, target, found.id)
            raise Adopted(f"{target} record {found.id} of link {link.id}")
    created = remote_id is None
    if remote_id is None:
        creator = client_lookup.creator(rt, operation)  # looks up a ticket's client first
        remote_id = _send_once(
            rt,
            key,
            lambda: (
                creator(
                    dict(operation.fields), idempotency_key=key, description=operation.description
                ).id
            ),
            planned={"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
        )
    if target == "zenvia" and link.crm_id:
        crm_connector(rt).note_ticket(link.crm_id, remote_id)
    column = "crm_id" if target == "crm" else "zenvia_id"
    values: dict[str, object] = {column: remote_id}
    # with the baselines the create planned, as `adopt` links one whose reply was lost: if the
    # worker dies before the commit, the retry's first merge is three-way, not a both-sides
    # conflict that the record edited last wins whichever side a person changed since
    baselines = bookkeeping.adopted_baselines(
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        {"crm": plan.crm_baseline, "zenvia": plan.zenvia_baseline},
    )
    if baselines is not None:
        values |= {"crm_baseline": baselines["crm"], "zenvia_baseline": baselines["zenvia"]}
    with session_scope(rt.database_url) as session:
        repo.complete_intent(session, key=key, remote_id=remote_id)
        if not repo.save_link_state(
            session, link_id=link.id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link.id} changed while creating its {target} side")
    pair.link = link.model_copy(update={**values, "revision": link.revision + 1})
    return created


def _send_once(
    rt: Runtime, key: str, send: Callable[[], str], *, planned: dict[str, object] | None = None
) -> str:
    """Send a create whose intent is `key`, remembering first that it may reach the remote
    (and, for a record create, the baselines it `planned`)."""
    with session_scope(rt.database_url) as session:
        repo.count_attempt(session, key=key, baselines=planned)
    try:
        return send()
    except RateLimitedError:
        with session_scope(rt.database_url) as session:  # refused unsent: nothing to look for
            repo.count_attempt(session, key=key, delta=-1)
        raise


def add_comment(rt: Runtime, pair: Pair, operation: engine.AddComment) -> bool:
    """Add a comment at most once; True when this call posted it."""
    target = operation.side
    record_id = id_on(pair, target) or operation.record_id
    assert pair.link.id is not None
    assert record_id
    with session_scope(rt.database_url) as session:
        intent = repo.begin_intent(
            session,
            key=operation.idempotency_key,
            link_id=pair.link.id,
            side=target,
            kind="comment",
            source_id=operation.source_comment_id or operation.idempotency_key,
        )
        remote_id, maybe_sent = intent.remote_id, intent.attempts > 0
    if remote_id is None and maybe_sent:
        remote_id = _find_posted(rt, pair.link.id, target, record_id, operation.body)
    posted = remote_id is None
    if remote_id is None:
        remote_id = _send_once(
            rt,
            operation.idempotency_key,
            lambda: rt.connectors[target].add_comment(
                record_id, operation.body, public=operation.public
            ),
        )
    written = operation.pair(remote_id)
    with session_scope(rt.database_url) as session:
        repo.complete_intent(session, key=operation.idempotency_key, remote_id=remote_id)
        if written is not None:
            repo.link_comments(
                session,
                link_id=pair.link.id,
                crm_comment_id=written.crm_comment_id,
                zenvia_comment_id=written.zenvia_comment_id,
                origin=other_side(target),
            )
    return posted


def _find_posted(rt: Runtime, link_id: int, side: Side, record_id: str, body: str) -> str | None:
    """A comment an earlier attempt posted (its reply lost): one with exactly our text that no
    comment link claims yet. Our comments carry no marker, so the text is what tells."""
    with session_scope(rt.database_url) as session:
        claimed = {
            pair.crm_comment_id if side == "crm" else pair.zenvia_comment_id
            for pair in repo.comment_links_for(session, link_id=link_id)
        }
    return next(
        (
            comment.id
            for comment in rt.connectors[side].list_comments(record_id)
            if comment.id not in claimed and engine.is_copy_of(comment.body, body)
        ),
        None,
    )
