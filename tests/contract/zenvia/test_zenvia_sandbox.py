"""The sandbox speaks Zenvia v2's wire format (checked with a bare httpx client)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from syncworker.sandbox.server import HttpError, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox, _Ticket
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE

pytestmark = pytest.mark.contract

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_missing_or_wrong_token_is_401_in_zenvias_error_shape(server: SandboxServer) -> None:
    for headers in ({}, {"X-API-TOKEN": "nope"}):
        response = httpx.get(f"{server.base_url}/v2/tickets", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "code": "AUTHENTICATION_ERROR",
            "message": "Missing or invalid X-API-TOKEN header",
            "details": [],
        }


def test_post_answers_201_with_location_and_the_ticket(raw: httpx.Client, clock: Any) -> None:
    clock.set(datetime(2026, 3, 10, 15, 0, 1, 123456, tzinfo=UTC))

    response = raw.post(
        "/tickets",
        json={
            "subject": "Novo",
            "status": {"id": 2},
            "ownerId": "agent-4",
            "clients": ["client-3"],
            "firstAction": {"type": "INTERNAL", "description": "primeira"},
            "origin": "CHAT",  # read-only: ignored
        },
    )

    assert response.status_code == 201
    assert response.headers["Location"] == "/v2/tickets/1"
    ticket = response.json()
    assert ticket["id"] == "1"
    assert ticket["origin"] == "TICKETS_API"
    assert ticket["status"] == {"id": 2, "name": "Em atendimento", "type": "IN_ATTENDANCE"}
    assert ticket["ownerTeam"] == {"id": 2, "name": "Suporte N2"}
    assert STAMP.match(ticket["createdAt"])
    assert ticket["createdAt"] == "2026-03-10T15:00:01.123Z"
    assert ticket["updatedAt"] is None  # never edited
    actions = raw.get("/tickets/1/actions").json()
    assert [(a["id"], a["type"], a["description"]) for a in actions] == [
        (1, "INTERNAL", "primeira")
    ]


def test_pagination_headers_and_the_size_limit(raw: httpx.Client, sandbox: ZenviaSandbox) -> None:
    sandbox.agent.populate(45)

    default = raw.get("/tickets")
    last = raw.get("/tickets", params={"page": 3, "size": 20})
    too_big = raw.get("/tickets", params={"size": 101})

    assert len(default.json()) == 20
    assert (default.headers["x-total"], default.headers["x-page"]) == ("45", "1")
    assert default.headers["x-page-size"] == "20"
    pages = [raw.get("/tickets", params={"page": n}).json() for n in (1, 2, 3)]
    assert len(last.json()) == 5
    assert sorted((t["id"] for page in pages for t in page), key=int) == [
        str(n) for n in range(1, 46)
    ]
    assert too_big.status_code == 400
    assert too_big.json()["code"] == "VALIDATION_ERROR"
    assert [d["path"] for d in too_big.json()["details"]] == ["size"]


def test_a_listing_page_renders_only_its_own_tickets(
    raw: httpx.Client, sandbox: ZenviaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing n tickets page by page costs O(n), not O(n²): benchmarks list 100k."""
    sandbox.agent.populate(250)
    rendered: list[str] = []
    render = _Ticket.render

    def counted(ticket: _Ticket) -> dict[str, Any]:
        rendered.append(ticket.id)
        return render(ticket)

    monkeypatch.setattr(_Ticket, "render", counted)

    page = raw.get("/tickets", params={"page": 2, "size": 100})
    filtered = raw.get("/tickets", params={"page": 3, "size": 100, "statusId": 1})

    in_order = [t.id for t in sandbox._shuffled]  # the listing order: a stable shuffle
    expected = in_order[100:200]
    assert [t["id"] for t in page.json()] == expected
    assert [t["id"] for t in filtered.json()] == in_order[200:250]
    assert (page.headers["x-total"], filtered.headers["x-total"]) == ("250", "250")
    assert rendered == expected + in_order[200:250]


def test_listing_filters_by_status_and_creation_date(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    sandbox.agent.create_ticket("dia 10")
    clock.advance(days=1)
    sandbox.agent.create_ticket("dia 11", status=2)
    clock.advance(seconds=5)  # past the listing lag

    by_date = raw.get("/tickets", params={"createdAt": "2026-03-11"}).json()
    by_status = raw.get("/tickets", params={"statusId": 1}).json()
    bad_date = raw.get("/tickets", params={"createdAt": "2026-03-11T00:00:00Z"})

    assert [t["subject"] for t in by_date] == ["dia 11"]
    assert [t["subject"] for t in by_status] == ["dia 10"]
    assert bad_date.status_code == 400
    assert bad_date.json()["details"][0]["path"] == "createdAt"


def test_patch_echoes_its_body_and_keeps_history(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Histórico", owner_id="agent-1")["id"]
    clock.advance(minutes=10)

    owner = raw.patch(f"/tickets/{ticket}/attributes/owner", json={"ownerId": "agent-5"})
    status = raw.patch(
        f"/tickets/{ticket}/attributes/status",
        json={"status": {"id": 3}, "justification": {"id": 11}, "updatedById": "agent-2"},
    )
    solution = raw.patch(
        f"/tickets/{ticket}/attributes/solution", json={"solutionAt": "2026-03-12T18:00:00Z"}
    )

    assert owner.status_code == status.status_code == solution.status_code == 200
    assert owner.json() == {"ownerId": "agent-5"}
    assert status.json()["justification"] == {"id": 11}
    owners = raw.get(f"/tickets/{ticket}/owner-changes").json()
    assert [o["ownerId"] for o in owners] == ["agent-1", "agent-5"]
    assert owners[0]["permanencyTimeFullTime"] == 600  # seconds
    statuses = raw.get(f"/tickets/{ticket}/status-changes").json()
    assert [(s["status"]["id"], s["updatedById"]) for s in statuses] == [
        (1, "agent-1"),
        (3, "agent-2"),
    ]
    assert statuses[1]["justification"] == {"id": 11, "name": "Aguardando retorno do cliente"}
    assert sandbox.ticket(ticket)["solutionAt"] == "2026-03-12T18:00:00.000Z"


@pytest.mark.parametrize(
    ("attr", "body", "path"),
    [
        ("subject", {"subject": ""}, "subject"),
        ("type", {"type": "EMAIL"}, "type"),
        ("category", {"category": {"id": 99}}, "category.id"),
        ("urgency", {"urgency": 3}, "urgency"),
        ("status", {"status": {"id": 42}}, "status.id"),
        ("status", {"status": {"id": 2}, "justification": {"id": 11}}, "justification"),
        ("owner", {"ownerId": "agent-9"}, "ownerId"),
        ("clients", {"clients": ["client-51"]}, "clients[0]"),
        ("service", {}, "service"),
        ("solution", {"solutionAt": "amanhã"}, "solutionAt"),
    ],
)
def test_patch_validation_names_the_path(
    raw: httpx.Client, sandbox: ZenviaSandbox, attr: str, body: dict[str, Any], path: str
) -> None:
    ticket = sandbox.agent.create_ticket("Validar")["id"]
    before = sandbox.ticket(ticket)

    response = raw.patch(f"/tickets/{ticket}/attributes/{attr}", json=body)

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["details"][0]["path"] == path
    assert sandbox.ticket(ticket) == before


def test_unknown_ticket_or_attribute_is_404(raw: httpx.Client) -> None:
    missing = raw.patch("/tickets/5/attributes/subject", json={"subject": "x"})
    no_attr = raw.patch("/tickets/5/attributes/priority", json={"priority": "x"})

    assert missing.status_code == no_attr.status_code == 404
    assert missing.json() == {"code": "NOT_FOUND", "message": "Ticket 5 not found", "details": []}


def test_tags_are_listed_added_and_removed(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Tags")["id"]
    clock.advance(minutes=1)

    added = raw.post(f"/tickets/{ticket}/tags", json={"tag": {"id": 2}, "updatedById": "agent-1"})
    again = raw.post(f"/tickets/{ticket}/tags", json={"tag": {"id": 2}})
    listed = raw.get(f"/tickets/{ticket}/tags").json()
    removed = raw.delete(f"/tickets/{ticket}/tags/2", params={"updatedById": "agent-1"})
    gone = raw.delete(f"/tickets/{ticket}/tags/2")

    assert added.status_code == 200
    assert added.json() == {"tag": {"id": 2, "name": "bug"}, "updatedById": "agent-1"}
    assert again.status_code == 409
    assert again.json()["code"] == "DUPLICATED"
    assert listed == [{"id": 2, "name": "bug"}]
    assert removed.status_code == 204
    assert gone.status_code == 404
    assert sandbox.ticket(ticket)["updatedAt"] is None  # tags do not move it


def test_the_agent_desk_goes_through_the_same_validation(sandbox: ZenviaSandbox) -> None:
    ticket = sandbox.agent.create_ticket("Agente")["id"]

    with pytest.raises(HttpError) as caught:
        sandbox.agent.set_status(ticket, 4)

    assert caught.value.status == 400
    assert caught.value.details[0]["path"] == "justification"
    with pytest.raises(HttpError):
        sandbox.agent.create_ticket("x", urgency=7)
    assert len(sandbox.tickets()) == 1
    assert sandbox.ticket(ticket)["createdById"] == "agent-1"
    assert sandbox.as_agent("agent-3").add_action(ticket, "oi")["createdById"] == "agent-3"


def test_the_default_catalogue_is_what_the_mapping_expects() -> None:
    statuses = {s.id: (s.name, s.type, s.justifications) for s in DEFAULT_CATALOGUE.statuses}
    assert statuses == {
        1: ("Novo", "NEW", ()),
        2: ("Em atendimento", "IN_ATTENDANCE", ()),
        3: ("Aguardando cliente", "STOPPED", (11,)),
        4: ("Cancelado", "CANCELED", (12,)),
        5: ("Resolvido", "RESOLVED", (13,)),
        6: ("Fechado", "CLOSED", ()),
    }
    assert [(j.id, j.name) for j in DEFAULT_CATALOGUE.justifications] == [
        (11, "Aguardando retorno do cliente"),
        (12, "Duplicado"),
        (13, "Solicitação atendida"),
    ]
    assert [u.name for u in DEFAULT_CATALOGUE.urgencies] == ["Baixa", "Média", "Alta", "Urgente"]
    assert [c.name for c in DEFAULT_CATALOGUE.categories][:3] == [
        "Dúvida",
        "Problema",
        "Solicitação",
    ]
    mapped = [c for c in DEFAULT_CATALOGUE.categories if c.id in (1, 2, 3)]
    assert all(c.fits(None, "PUBLIC") and c.fits(None, "INTERNAL") for c in mapped)
    assert all(u.fits(c) for u in DEFAULT_CATALOGUE.urgencies[:3] for c in mapped)
    assert [s.name for s in DEFAULT_CATALOGUE.services] == ["Suporte", "Financeiro"]
    assert [a.id for a in DEFAULT_CATALOGUE.agents] == [f"agent-{n}" for n in range(1, 6)]
    assert len(DEFAULT_CATALOGUE.clients) == 50
    assert DEFAULT_CATALOGUE.clients[-1] == "client-50"


def test_same_seed_same_tickets_and_reset_starts_over(clock: Any) -> None:
    first = ZenviaSandbox(token="t", seed=3, clock=clock)
    second = ZenviaSandbox(token="t", seed=3, clock=clock)
    first.agent.populate(10)
    second.agent.populate(10)
    assert first.snapshot() == second.snapshot()

    snapshot = first.snapshot()
    first.reset()
    assert first.tickets() == []
    first.agent.populate(10)
    assert first.snapshot() == snapshot


def test_concurrent_creates_get_distinct_sequential_ids(
    server: SandboxServer, sandbox: ZenviaSandbox, token: str
) -> None:
    def create(n: int) -> None:
        with httpx.Client(base_url=f"{server.base_url}/v2", headers={"X-API-TOKEN": token}) as c:
            for m in range(5):
                body = {"subject": f"{n}-{m}", "clients": ["client-1"]}
                assert c.post("/tickets", json=body).status_code == 201

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [t["id"] for t in sandbox.tickets()] == [str(n) for n in range(1, 41)]
    assert len({t["subject"] for t in sandbox.tickets()}) == 40
