"""Comments in a plan: pair each comment with a copy an interrupted run already wrote, copy
the rest, and write the notice that tells people a record ended (deleted or canceled), once.
Pure."""

from __future__ import annotations

from syncworker.engine.operations import AddComment, CommentPair, Operation, comment_pair
from syncworker.engine.pair import Pair
from syncworker.engine.texts import NOTICE_ENDINGS, copy_text, is_copy_of
from syncworker.markers import find_marker, idempotency_key
from syncworker.model import SIDES, Side, other_side


def cancel_notices(pair: Pair, crm_id: str) -> list[Operation]:
    key = idempotency_key("cancel", "zenvia", pair.known_id("zenvia") or "")
    notice = _cancel_text(pair)
    if pair.has_written("crm", notice):
        return []
    return [AddComment("crm", crm_id, notice, False, None, key)]


def _cancel_text(pair: Pair) -> str:
    return f"{pair.label('zenvia')} was canceled, {NOTICE_ENDINGS[0]}"


def delete_notice(pair: Pair, side: Side, *, closing: bool) -> str:
    done = NOTICE_ENDINGS[1] if closing else NOTICE_ENDINGS[2]
    return f"{pair.label(side)} was deleted, {done}"


def copy_comments(
    pair: Pair, record_ids: dict[Side, str | None], only_from: Side | None = None
) -> tuple[list[Operation], tuple[CommentPair, ...]]:
    """Copy each comment not yet linked and not written by us, in the order its remote lists
    it (connectors list comments in the remote's own order).

    Our copies carry no marker, so they are known by their text: first every unlinked comment
    is paired with an unlinked copy of it on the other side (one an interrupted run wrote),
    then what is left is copied. A human reply that quotes a copy is not the copy's text, so
    it is copied like any other comment. Never copied: our notices, and the INTERNAL first
    action of a ticket we created (the only text that still carries a marker).
    """
    if not pair.mapping.comments.sync:
        return [], ()
    taken = {
        "crm": {p.crm_comment_id for p in pair.comment_links},
        "zenvia": {p.zenvia_comment_id for p in pair.comment_links},
    }
    pairs: list[CommentPair] = []
    for source in SIDES:
        target = other_side(source)
        for comment in pair.comments[source]:
            if comment.id in taken[source]:
                continue
            body = copy_text(pair.mapping, source, comment)
            copy = next(
                (
                    c
                    for c in pair.comments[target]
                    if c.id not in taken[target] and is_copy_of(c.body, body)
                ),
                None,
            )
            if copy is not None:
                pairs.append(comment_pair(source, comment.id, copy.id))
                taken[source].add(comment.id)
                taken[target].add(copy.id)
    notices = {side: _notices(pair, side) for side in SIDES}
    copies: list[Operation] = []
    for source in SIDES if only_from is None else (only_from,):
        target = other_side(source)
        for comment in pair.comments[source]:
            ours = find_marker(comment.body) or any(
                is_copy_of(comment.body, n) for n in notices[source]
            )
            if comment.id in taken[source] or ours:  # a create's first action, or a notice
                continue
            key = idempotency_key("comment", source, comment.id)
            body = copy_text(pair.mapping, source, comment)
            copies.append(
                AddComment(target, record_ids[target], body, comment.public, comment.id, key)
            )
    return copies, tuple(pairs)


def _notices(pair: Pair, side: Side) -> tuple[str, ...]:
    """Every notice syncworker may have written on `side` of this pair: never copied."""
    other = other_side(side)
    written = [delete_notice(pair, other, closing=closing) for closing in (True, False)]
    if side == "crm":
        written.append(_cancel_text(pair))
    return tuple(written)
