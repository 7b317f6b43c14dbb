"""Which link a record belongs to: the one holding it, the one whose create made it (that
create's reply was lost, or is still on its way: the record is adopted), or a new half link.

A case names the ticket it is paired with (`CrmConnector.note_ticket`): a case our create
made is recognised by it, and a ticket our create made by the marker in its first action.
"""

from __future__ import annotations

from syncworker import bookkeeping
from syncworker.connectors.base import CrmConnector
from syncworker.connectors.errors import NotFoundError
from syncworker.context import Runtime
from syncworker.markers import find_marker
from syncworker.model import Side
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.sync.errors import StaleLink
from syncworker.sync.records import record_id_of


def resolve_link(
    rt: Runtime, side: Side, record_id: str, *, create: bool
) -> tuple[int, bool] | None:
    """The link of a record, and whether it is ours to adopt: a record our own create made
    whose link does not hold it yet (the create's reply was lost, or is still on its way)."""
    with session_scope(rt.database_url) as session:
        link = repo.find_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        if link is not None and link.id is not None:
            return link.id, False
    owner = _created_by_us(rt, side, record_id)
    with session_scope(rt.database_url) as session:
        link = repo.get_link(session, owner) if owner is not None else None
        if link is not None and link.id is not None and record_id_of(link, side) is None:
            return link.id, True
        if not create:
            return None
        new = repo.create_link(session, side=side, remote_id=record_id, crm_system=rt.crm_system)
        assert new.id is not None
        return new.id, False


def _created_by_us(rt: Runtime, side: Side, record_id: str) -> int | None:
    """The link whose create made this record, if it carries our fingerprint.

    A case we created names its ticket (`CrmConnector.noted_ticket`); a ticket we created holds
    the create intent's marker in its first action.
    """
    connector = rt.connectors[side]
    try:
        if side == "crm":
            crm = crm_connector(rt)
            ticket_id = crm.noted_ticket(crm.get(record_id))
            if not ticket_id:
                return None
            with session_scope(rt.database_url) as session:
                link = repo.find_link(
                    session, side="zenvia", remote_id=str(ticket_id), crm_system=rt.crm_system
                )
                return link.id if link else None
        for comment in connector.list_comments(record_id):
            key = find_marker(comment.body)
            if key:
                with session_scope(rt.database_url) as session:
                    intent = repo.get_intent(session, key=key)
                    if intent is not None and intent.kind == "create":
                        return intent.link_id
    except NotFoundError:
        return None
    return None


def adopt(rt: Runtime, link_id: int, side: Side, record_id: str) -> None:
    """Link a record our own create made (DESIGN invariant 2), with the baselines that create
    planned, so the first merge is three-way: an edit made on either side since the create is
    a change like any other, not a both-sides conflict. Held under the pair's lock."""
    with session_scope(rt.database_url) as session:
        link = repo.get_link(session, link_id)
        if link is None or record_id_of(link, side) is not None:
            return  # the create's own reply linked it meanwhile
        intent = repo.create_intent_for(session, link_id=link_id, side=side)
    if side == "zenvia" and link.crm_id:
        crm_connector(rt).note_ticket(link.crm_id, record_id)
    values: dict[str, object] = {"crm_id" if side == "crm" else "zenvia_id": record_id}
    baselines = bookkeeping.adopted_baselines(
        {"crm": link.crm_baseline, "zenvia": link.zenvia_baseline},
        intent.baselines if intent is not None else None,
    )
    if baselines is not None:
        values |= {"crm_baseline": baselines["crm"], "zenvia_baseline": baselines["zenvia"]}
    with session_scope(rt.database_url) as session:
        if intent is not None:
            repo.complete_intent(session, key=intent.idempotency_key, remote_id=record_id)
        if not repo.save_link_state(
            session, link_id=link_id, expected_revision=link.revision, values=values
        ):
            raise StaleLink(f"link {link_id} changed while adopting {side} record {record_id}")


def crm_connector(rt: Runtime) -> CrmConnector:
    """The CRM side's connector, which notes on a case the ticket it is paired with."""
    connector = rt.connectors["crm"]
    if not isinstance(connector, CrmConnector):
        raise TypeError(f"{connector!r} cannot note a case's ticket (`CrmConnector`)")
    return connector
