"""The Zenvia connector's operations against the sandbox, over real sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syncworker.connectors.errors import NotFoundError, PermanentError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.markers import find_marker
from syncworker.sandbox.server import SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

KEY = "0123456789abcdef0123"


def test_create_posts_one_ticket_whose_first_action_carries_the_marker(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, server: SandboxServer
) -> None:
    record = connector.create(
        {
            "subject": "Boleto não gerado",
            "type": "PUBLIC",
            "urgency": 3,
            "category": 2,
            "service": 1,
            "ownerId": "agent-2",
            "clients": ["client-7"],
        },
        idempotency_key=KEY,
        description="O cliente não consegue gerar o boleto.",
    )

    assert record.id == "1"
    assert record.fields["subject"] == "Boleto não gerado"
    assert record.fields["status"] == 1
    assert record.fields["statusType"] == "NEW"
    assert record.fields["origin"] == "TICKETS_API"
    assert record.version == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    first = sandbox.actions("1")[0]
    assert first["id"] == 1
    assert first["type"] == "INTERNAL"  # the marker is never shown to the customer
    assert first["description"].startswith("O cliente não consegue gerar o boleto.")
    assert find_marker(first["description"]) == KEY
    assert connector.requests.by_endpoint == {"POST /tickets": 1}
    assert server.counters.by_endpoint["POST /v2/tickets"] == 1


def test_get_flattens_every_native_field(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    created = sandbox.as_agent("agent-4").create_ticket(
        "Sem acesso",
        type="INTERNAL",
        status=3,
        justification=11,
        urgency=4,
        category=2,
        service=2,
        owner_id="agent-5",
        clients=["client-1", "client-2"],
        description="Usuário bloqueado.",
    )

    record = connector.get(created["id"])

    assert record.fields == {
        "subject": "Sem acesso",
        "type": "INTERNAL",
        "status": 3,
        "statusType": "STOPPED",
        "justification": 11,
        "urgency": 4,
        "category": 2,
        "service": 2,
        "ownerId": "agent-5",
        "ownerTeam": 2,
        "clients": ["client-1", "client-2"],
        "origin": "AGENT_IN_SYSTEM",
        "createdAt": "2026-03-10T15:00:00.000Z",
        "updatedAt": None,
    }
    assert record.version.tzinfo is not None
    assert record.version == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert not record.deleted


def test_get_of_an_unknown_ticket_raises_not_found_with_zenvias_message(
    connector: ZenviaConnector,
) -> None:
    with pytest.raises(NotFoundError) as caught:
        connector.get("404")

    assert caught.value.status == 404
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.message == "Ticket 404 not found"
    assert caught.value.path == "GET /v2/tickets/404"


def test_update_sends_one_patch_per_changed_attribute_and_bumps_updated_at(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Antes", urgency=1, category=2, owner_id="agent-1")
    clock.advance(minutes=5)

    connector.update(
        ticket["id"],
        {
            "subject": "Depois",
            "urgency": 3,
            "category": None,
            "ownerId": "agent-3",
            "clients": ["client-9"],
            "type": "INTERNAL",
            "service": 2,
        },
    )

    after = connector.get(ticket["id"])
    assert after.fields["subject"] == "Depois"
    assert after.fields["urgency"] == 3
    assert after.fields["category"] is None
    assert after.fields["ownerId"] == "agent-3"
    assert after.fields["clients"] == ["client-9"]
    assert after.fields["type"] == "INTERNAL"
    assert after.fields["service"] == 2
    assert after.fields["updatedAt"] == "2026-03-10T15:05:00.000Z"
    assert sandbox.ticket(ticket["id"])["ownerTeam"] == {"id": 1, "name": "Suporte N1"}
    patches = {k: v for k, v in connector.requests.by_endpoint.items() if k.startswith("PATCH")}
    assert patches == {
        f"PATCH /tickets/{{id}}/attributes/{attr}": 1
        for attr in ("subject", "urgency", "category", "owner", "clients", "type", "service")
    }


def test_status_change_without_a_required_justification_is_refused_with_its_path(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Resolver")

    with pytest.raises(PermanentError) as caught:
        connector.update(ticket["id"], {"status": 5})

    error = caught.value
    assert type(error) is PermanentError
    assert error.status == 400
    assert error.code == "VALIDATION_ERROR"
    assert error.message == (
        "Invalid request: status 'Resolvido' requires a justification (one of 13)"
    )
    assert error.details == [
        "justification: status 'Resolvido' requires a justification (one of 13)"
    ]
    assert sandbox.ticket(ticket["id"])["status"]["id"] == 1


def test_status_change_with_its_justification_is_one_patch(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Resolver")

    connector.update(ticket["id"], {"status": 5, "justification": 13, "subject": "Resolvido!"})

    now = sandbox.ticket(ticket["id"])
    assert now["status"] == {"id": 5, "name": "Resolvido", "type": "RESOLVED"}
    assert now["justification"] == {"id": 13, "name": "Solicitação atendida"}
    assert now["resolvedAt"] == "2026-03-10T15:00:00.000Z"
    assert connector.requests.by_endpoint == {
        "PATCH /tickets/{id}/attributes/subject": 1,
        "PATCH /tickets/{id}/attributes/status": 1,
    }
    changes = sandbox.snapshot()[ticket["id"]]["statusChanges"]
    assert [c["status"]["id"] for c in changes] == [1, 5]


def test_a_justification_the_status_does_not_allow_is_refused(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Cancelar")

    with pytest.raises(PermanentError) as caught:
        connector.update(ticket["id"], {"status": 4, "justification": 13})

    assert caught.value.details == [
        "justification.id: justification 13 is not allowed for status 'Cancelado' (one of 12)"
    ]


def test_a_lone_justification_change_keeps_the_current_status(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    catalogue = sandbox.catalogue
    assert catalogue.status(3) is not None
    ticket = sandbox.agent.create_ticket("Esperando", status=3, justification=11)

    connector.update(ticket["id"], {"justification": 11})

    assert sandbox.ticket(ticket["id"])["status"]["id"] == 3
    assert connector.requests.by_endpoint == {
        "GET /tickets/{id}": 1,
        "PATCH /tickets/{id}/attributes/status": 1,
    }


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"statusType": "CLOSED"}, "cannot write Zenvia field(s) statusType"),
        ({"subject": "ok", "Priority": "High"}, "cannot write Zenvia field(s) Priority"),
        ({"urgency": "Alta"}, "invalid value for Zenvia field urgency: 'Alta'"),
        ({"clients": "client-1"}, "invalid value for Zenvia field clients"),
        ({"status": None}, "status cannot be cleared"),
    ],
    ids=["read-only", "unknown", "name-not-id", "not-a-list", "clear-status"],
)
def test_update_refuses_bad_changes_before_any_request(
    connector: ZenviaConnector,
    sandbox: ZenviaSandbox,
    server: SandboxServer,
    changes: dict[str, Any],
    complaint: str,
) -> None:
    ticket = sandbox.agent.create_ticket("Intocado")

    with pytest.raises(PermanentError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        connector.update(ticket["id"], changes)

    assert connector.requests.total == 0
    assert server.counters.total == 0
    assert sandbox.ticket(ticket["id"])["subject"] == "Intocado"


def test_comments_are_actions_as_written_with_their_visibility(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Com comentários", description="Abertura")
    clock.advance(minutes=1)

    public = connector.add_comment(ticket["id"], "Resposta", public=True)
    internal = connector.add_comment(ticket["id"], "Nota interna", public=False)
    sandbox.agent.add_action(ticket["id"], "Humano respondeu", public=False)

    assert (public, internal) == (f"{ticket['id']}:2", f"{ticket['id']}:3")
    listed = connector.list_comments(ticket["id"])
    assert listed[1].body == "Resposta"  # a PUBLIC action is what the customer reads
    assert [(c.id, c.public) for c in listed] == [
        (f"{ticket['id']}:1", True),
        (f"{ticket['id']}:2", True),
        (f"{ticket['id']}:3", False),
        (f"{ticket['id']}:4", False),
    ]
    assert listed[3].author_id == "agent-1"
    assert listed[1].created_at == datetime(2026, 3, 10, 15, 1, tzinfo=UTC)
    assert sandbox.ticket(ticket["id"])["updatedAt"] is None  # comments do not move it


def test_list_comments_reads_every_page(make_connector: Any, sandbox: ZenviaSandbox) -> None:
    connector = make_connector(page_size=50)
    ticket = sandbox.agent.create_ticket("Longo", description="Ação 1")
    for n in range(2, 121):
        sandbox.agent.add_action(ticket["id"], f"Ação {n}")

    comments = connector.list_comments(ticket["id"])

    assert [c.body for c in comments] == [f"Ação {n}" for n in range(1, 121)]
    assert connector.requests.by_endpoint == {"GET /tickets/{id}/actions": 3}


def test_iter_all_streams_more_than_250_tickets_page_by_page(
    connector: ZenviaConnector, sandbox: ZenviaSandbox
) -> None:
    ids = sandbox.agent.populate(260)

    stream = connector.iter_all()
    first = next(stream)
    assert connector.requests.by_endpoint == {"GET /tickets": 1}
    rest = list(stream)

    assert sorted([first.id, *(r.id for r in rest)], key=int) == ids
    assert len(ids) == 260
    assert connector.requests.by_endpoint == {"GET /tickets": 3}


def test_an_action_that_carries_a_status_changes_the_ticket(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, raw: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Via ação")

    response = raw.post(
        f"/tickets/{ticket['id']}/actions",
        json={
            "type": "PUBLIC",
            "description": "Resolvido por e-mail",
            "status": {"id": 5},
            "justification": {"id": 13},
        },
    )

    assert response.status_code == 201
    record = connector.get(ticket["id"])
    assert (record.fields["status"], record.fields["justification"]) == (5, 13)
    assert record.fields["statusType"] == "RESOLVED"
