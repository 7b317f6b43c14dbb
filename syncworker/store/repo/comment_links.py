"""Comment links: which comment on one side is the copy of which on the other."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from syncworker.model import Side
from syncworker.store.repo._sql import _insert
from syncworker.store.tables import CommentLink
from syncworker.store.types import utcnow


def link_comments(
    session: Session, *, link_id: int, crm_comment_id: str, zenvia_comment_id: str, origin: Side
) -> None:
    statement = _insert(session, CommentLink).values(
        link_id=link_id,
        crm_comment_id=crm_comment_id,
        zenvia_comment_id=zenvia_comment_id,
        origin=origin,
        created_at=utcnow(),
    )
    session.execute(statement.on_conflict_do_nothing())


def comment_links_for(session: Session, *, link_id: int) -> Sequence[CommentLink]:
    return session.exec(select(CommentLink).where(CommentLink.link_id == link_id)).all()
