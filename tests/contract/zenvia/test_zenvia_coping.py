"""The connector survives the sandbox's harsh defaults: null `updatedAt`, the failed-request
lockout, dependent lookups, final CLOSED tickets, shuffled listings, required clients and
signature-mode tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncworker.connectors.base import Unreadable
from syncworker.connectors.errors import AuthError, PermanentError, RateLimitedError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

KEY = "0123456789abcdef0123"
CREATED = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


# -- item 2: a never-edited ticket's updatedAt is null -------------------------------------


def test_a_never_edited_ticket_is_read_with_its_creation_as_version_everywhere(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    mine = connector.create({"subject": "Novo", "clients": ["client-1"]}, idempotency_key=KEY)
    theirs = sandbox.agent.create_ticket("Do agente")["id"]
    clock.advance(seconds=5)

    listed = list(connector.iter_all())
    read = [mine, connector.get(theirs), *listed, connector.find_created(KEY, around=CREATED)]

    assert not any(isinstance(item, Unreadable) for item in listed)
    for record in read:
        assert record is not None
        assert not isinstance(record, Unreadable)
        assert (record.version, record.fields["updatedAt"]) == (CREATED, None)
        assert connector.changed_at(record.fields) == CREATED


# -- item 3: no ownerId null; team-owned tickets -------------------------------------------


def test_unassigning_is_refused_locally_naming_the_ticket_and_sends_nothing(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = sandbox.agent.create_ticket("Com dono", owner_id="agent-1")["id"]

    with pytest.raises(PermanentError, match="cannot unassign") as caught:
        connector.update(ticket, {"subject": "x", "ownerId": None})

    assert caught.value.path == f"ticket {ticket}"
    assert server.counters.total == 0
    assert sandbox.ticket(ticket)["ownerId"] == "agent-1"


def test_a_team_owned_ticket_is_read_with_its_team(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Equipe", owner_id="agent-1")["id"]
    sandbox.agent.move_to_team(ticket, 2)

    record = connector.get(ticket)

    assert (record.fields["ownerId"], record.fields["ownerTeam"]) == (None, 2)
    assert (
        connector.get(sandbox.agent.create_ticket("Agente", owner_id="agent-4")["id"]).fields[
            "ownerTeam"
        ]
        == 2
    )


# -- item 4: the lockout ---------------------------------------------------------------------


def test_a_lockout_is_rate_limited_with_the_stated_wait(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Bloqueio")["id"]
    for missing in ("901", "902", "903"):  # someone else's failures with the same token
        with pytest.raises(PermanentError):
            connector.get(missing)

    with pytest.raises(RateLimitedError) as caught:
        connector.get(ticket)

    assert caught.value.retry_after == 60.0
    assert caught.value.message == "Too many failed requests"
    clock.advance(seconds=60)
    assert connector.get(ticket).id == ticket


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"subject": "sem cliente"}, "needs at least one client"),
        ({"subject": "  ", "clients": ["client-1"]}, "invalid value for Zenvia field subject"),
        ({"subject": "x", "clients": ["client-1"], "urgency": "alta"}, "field urgency"),
        ({"subject": "x", "clients": [7]}, "field clients"),
    ],
    ids=["no-clients", "blank-subject", "urgency-not-an-id", "client-not-a-string"],
)
def test_a_create_the_api_would_refuse_costs_no_request(
    connector: ZenviaConnector,
    sandbox: ZenviaSandbox,
    server: SandboxServer,
    fields: dict[str, Any],
    complaint: str,
) -> None:
    with pytest.raises(PermanentError, match=complaint):
        connector.create(fields, idempotency_key=KEY)

    assert server.counters.total == 0
    assert sandbox.tickets() == []


def test_removing_every_client_is_refused_locally(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    ticket = sandbox.agent.create_ticket("Clientes")["id"]

    with pytest.raises(PermanentError, match="at least one"):
        connector.update(ticket, {"clients": []})

    assert server.counters.total == 0


# -- item 9: comments in the remote's real order ---------------------------------------------


def test_comments_come_in_numeric_action_order_whatever_the_listing_order(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Muitas ações", description="1")["id"]
    for n in range(2, 13):
        sandbox.agent.add_action(ticket, str(n))

    comments = connector.list_comments(ticket)

    assert [c.id for c in comments] == [f"{ticket}:{n}" for n in range(1, 13)]
    assert [c.body for c in comments] == [str(n) for n in range(1, 13)]


# -- item 10: PATCH order ----------------------------------------------------------------------


def test_a_combined_change_of_service_category_and_urgency_lands(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Mudar", service=1, category=1, urgency=1)["id"]

    connector.update(ticket, {"urgency": 4, "category": 4, "service": 2})

    fields = connector.get(ticket).fields
    assert (fields["service"], fields["category"], fields["urgency"]) == (2, 4, 4)
    patches = [k for k in connector.requests.by_endpoint if k.startswith("PATCH")]
    assert patches == [
        "PATCH /tickets/{id}/attributes/service",
        "PATCH /tickets/{id}/attributes/category",
        "PATCH /tickets/{id}/attributes/urgency",
    ]


def test_a_change_to_a_closed_ticket_reopens_it_first(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Fechado")["id"]
    sandbox.agent.set_status(ticket, 6)
    heard: list[dict[str, Any]] = []

    connector.update(ticket, {"subject": "Reaberto", "status": 2}, landed=heard.append)

    assert heard == [{"status": 2}, {"subject": "Reaberto"}]
    assert sandbox.ticket(ticket)["subject"] == "Reaberto"


def test_a_closing_change_closes_last(make_connector: Any, sandbox: ZenviaSandbox) -> None:
    connector = make_connector(closed_statuses=[6])
    ticket = sandbox.agent.create_ticket("Aberto")["id"]
    heard: list[dict[str, Any]] = []

    connector.update(ticket, {"status": 6, "subject": "Fechando"}, landed=heard.append)

    assert heard == [{"subject": "Fechando"}, {"status": 6}]
    assert sandbox.ticket(ticket)["status"]["type"] == "CLOSED"


def test_a_closed_status_learned_from_a_read_also_goes_last(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    closed = sandbox.agent.create_ticket("Já fechado")["id"]
    sandbox.agent.set_status(closed, 6)
    connector.get(closed)
    ticket = sandbox.agent.create_ticket("Aberto")["id"]

    connector.update(ticket, {"status": 6, "urgency": 2})

    assert sandbox.ticket(ticket)["urgency"]["id"] == 2


# -- item 11: clients on create ----------------------------------------------------------------


def test_a_create_carries_its_clients(connector: ZenviaConnector, sandbox: ZenviaSandbox) -> None:
    record = connector.create(
        {"subject": "Com clientes", "clients": ["client-4", "client-9"]}, idempotency_key=KEY
    )

    assert record.fields["clients"] == ["client-4", "client-9"]
    assert sandbox.ticket(record.id)["clients"] == ["client-4", "client-9"]


def test_an_account_without_required_clients_accepts_a_create_without_them(
    make_connector: Any, sandbox: ZenviaSandbox
) -> None:
    sandbox.clients_required = False
    connector = make_connector(clients_required=False)

    assert (
        connector.create({"subject": "Sem clientes"}, idempotency_key=KEY).fields["clients"] == []
    )


# -- signature mode ----------------------------------------------------------------------------


def test_a_signature_mode_token_works_when_the_connector_signs(
    make_connector: Any, sandbox: ZenviaSandbox
) -> None:
    sandbox.signature_secret = "segredo-da-assinatura"
    connector = make_connector(signature_secret="segredo-da-assinatura")

    record = connector.create(
        {"subject": "Assinado", "clients": ["client-1"]}, idempotency_key=KEY, description="oi"
    )
    connector.update(record.id, {"subject": "Assinado e editado"})

    assert connector.get(record.id).fields["subject"] == "Assinado e editado"
    assert [c.id for c in connector.list_comments(record.id)] == [f"{record.id}:1"]


def test_an_unsigned_request_with_a_signature_mode_token_says_how_to_fix_it(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    sandbox.signature_secret = "segredo-da-assinatura"

    with pytest.raises(AuthError) as caught:
        connector.get("1")

    assert "requires a signature" in caught.value.message
    assert "SYNCWORKER_ZENVIA_SIGNATURE_SECRET" in caught.value.message
    assert "segredo" not in str(caught.value)


def test_an_empty_signature_secret_is_refused(make_connector: Any) -> None:
    with pytest.raises(ValueError, match="signature secret is empty"):
        make_connector(signature_secret="")
