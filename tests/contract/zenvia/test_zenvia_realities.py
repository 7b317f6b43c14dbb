"""The sandbox plays each uncertain point of the real API at its harshest by default, and each
switch turns exactly that point off (docs/real-apis.md, `## Zenvia`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from syncworker.connectors.zenvia_signature import signature, signed_text
from syncworker.sandbox.cli import app
from syncworker.sandbox.server import HttpError, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.sandbox.zenvia_catalogue import DEFAULT_CATALOGUE, Named

pytestmark = pytest.mark.contract


def _fail(raw: httpx.Client, times: int) -> None:
    for _ in range(times):
        assert raw.get("/tickets/999").status_code == 404


# -- failed-request lockout ----------------------------------------------------------------


def test_three_failed_requests_lock_the_token_out_for_60_then_120_then_300_seconds(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    _fail(raw, 3)
    locked = raw.get("/tickets")
    assert locked.status_code == 429
    assert locked.json()["message"] == "Too many failed requests"
    assert locked.headers["Retry-After"] == "60"
    clock.advance(seconds=59)
    assert raw.get("/tickets").headers["Retry-After"] == "1"
    clock.advance(seconds=1)
    assert raw.get("/tickets").status_code == 200

    _fail(raw, 3)
    assert raw.get("/tickets").headers["Retry-After"] == "120"
    clock.advance(seconds=120)
    _fail(raw, 3)
    assert raw.get("/tickets").headers["Retry-After"] == "300"


def test_failures_spread_over_more_than_a_minute_and_429s_do_not_lock_out(
    raw: httpx.Client, server: SandboxServer, sandbox: ZenviaSandbox, clock: Any
) -> None:
    _fail(raw, 2)
    clock.advance(seconds=61)
    _fail(raw, 1)
    sandbox.fail_next("GET /v2/tickets", 429, "TOO_MANY_REQUESTS", "slow down", times=3)
    for _ in range(3):
        assert raw.get("/tickets").status_code == 429

    assert raw.get("/tickets").status_code == 200


def test_a_refused_token_counts_and_locks_out_that_token_only(
    server: SandboxServer, raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    with httpx.Client(base_url=f"{server.base_url}/v2", headers={"X-API-TOKEN": "wrong"}) as bad:
        for _ in range(3):
            assert bad.get("/tickets").status_code == 401
        assert bad.get("/tickets").status_code == 429

    assert raw.get("/tickets").status_code == 200


def test_server_errors_count_toward_the_lockout_too(
    raw: httpx.Client, server: SandboxServer, sandbox: ZenviaSandbox
) -> None:
    """The harsh reading: any answer >= 400 except 429 is a failed request, a 5xx included."""
    server.faults.error_rate = 1.0
    for _ in range(3):
        assert raw.get("/tickets").status_code == 500
    server.faults.error_rate = 0.0

    assert raw.get("/tickets").status_code == 429


def test_the_lockout_switch_turns_it_off(raw: httpx.Client, sandbox: ZenviaSandbox) -> None:
    sandbox.lockout = False
    _fail(raw, 5)
    assert raw.get("/tickets").status_code == 200


def test_the_lockout_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="lockout_after"):
        ZenviaSandbox(token="t", lockout_seconds=())
    with pytest.raises(ValueError, match="listing_order"):
        ZenviaSandbox(token="t", listing_order="newest")  # type: ignore[arg-type]


# -- owners and teams ----------------------------------------------------------------------


def test_owner_id_null_is_refused_on_create_and_on_patch(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Dono", owner_id="agent-1")["id"]

    patch = raw.patch(f"/tickets/{ticket}/attributes/owner", json={"ownerId": None})
    create = raw.post("/tickets", json={"subject": "x", "clients": ["client-1"], "ownerId": None})

    for response in (patch, create):
        assert response.status_code == 400
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.json()["details"][0] == {
            "code": "INVALID_VALUE",
            "path": "ownerId",
            "message": "ownerId must not be null",
        }
    assert sandbox.ticket(ticket)["ownerId"] == "agent-1"


def test_the_agent_desk_makes_team_only_tickets_and_moves_tickets_to_a_team(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    team_only = sandbox.agent.create_ticket("Para a equipe", owner_team=2)["id"]
    assigned = sandbox.agent.create_ticket("Com agente", owner_id="agent-1")["id"]
    clock.advance(minutes=1)
    sandbox.agent.move_to_team(assigned, 2)

    for ticket in (team_only, assigned):
        rendered = raw.get(f"/tickets/{ticket}").json()
        assert (rendered["ownerId"], rendered["ownerTeam"]) == (
            None,
            {"id": 2, "name": "Suporte N2"},
        )
    owners = raw.get(f"/tickets/{assigned}/owner-changes").json()
    assert [(o["ownerId"], o["ownerTeam"]["id"]) for o in owners] == [("agent-1", 1), (None, 2)]
    assert raw.get(f"/tickets/{assigned}").json()["updatedAt"] == "2026-03-10T15:01:00.000Z"
    assert (
        raw.post(
            "/tickets", json={"subject": "x", "clients": ["client-1"], "ownerTeam": {"id": 2}}
        ).json()["ownerTeam"]
        is None
    )  # the API ignores it
    with pytest.raises(HttpError, match="team 9 does not exist"):
        sandbox.agent.move_to_team(assigned, 9)


# -- dependent lookups ---------------------------------------------------------------------


def test_an_urgency_must_belong_to_the_category_and_a_category_to_the_service(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Dependências", service=1, category=1, urgency=1)["id"]

    urgency = raw.patch(f"/tickets/{ticket}/attributes/urgency", json={"urgency": {"id": 4}})
    category = raw.patch(f"/tickets/{ticket}/attributes/category", json={"category": {"id": 4}})

    assert urgency.status_code == category.status_code == 400
    assert urgency.json()["details"][0]["message"] == "urgency 4 does not belong to category 1"
    assert category.json()["details"][0]["path"] == "category.id"
    for attr, body in (
        ("service", {"service": {"id": 2}}),
        ("category", {"category": {"id": 4}}),
        ("urgency", {"urgency": {"id": 4}}),
    ):
        assert raw.patch(f"/tickets/{ticket}/attributes/{attr}", json=body).status_code == 200
    rendered = sandbox.ticket(ticket)
    assert (rendered["service"]["id"], rendered["category"]["id"], rendered["urgency"]["id"]) == (
        2,
        4,
        4,
    )


def test_changing_a_parent_clears_the_children_that_no_longer_belong(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Cobrança", service=2, category=4, urgency=4)["id"]

    assert (
        raw.patch(f"/tickets/{ticket}/attributes/service", json={"service": {"id": 1}}).status_code
        == 200
    )

    rendered = sandbox.ticket(ticket)
    assert (rendered["category"], rendered["urgency"]) == (None, None)


def test_the_dependent_lookups_switch_turns_the_rule_off(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    sandbox.dependent_lookups = False
    ticket = sandbox.agent.create_ticket("Livre", category=1)["id"]

    response = raw.patch(f"/tickets/{ticket}/attributes/urgency", json={"urgency": {"id": 4}})

    assert response.status_code == 200


def test_a_catalogue_of_plain_lookups_puts_no_dependency_on_them() -> None:
    plain = replace(
        DEFAULT_CATALOGUE,
        urgencies=(Named(1, "Baixa"), Named(9, "Crítica")),
        categories=(Named(1, "Dúvida"),),
    )
    sandbox = ZenviaSandbox(token="t", catalogue=plain)

    ticket = sandbox.agent.create_ticket("Livre", category=1, urgency=9)

    assert (ticket["category"]["id"], ticket["urgency"]["id"]) == (1, 9)


# -- CLOSED is final -----------------------------------------------------------------------


def test_a_closed_ticket_refuses_edits_until_a_status_change_reopens_it(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("Fechado")["id"]
    sandbox.agent.set_status(ticket, 6)

    subject = raw.patch(f"/tickets/{ticket}/attributes/subject", json={"subject": "novo"})
    comment = raw.post(f"/tickets/{ticket}/actions", json={"description": "oi"})
    tag = raw.post(f"/tickets/{ticket}/tags", json={"tag": {"id": 1}})

    for response in (subject, comment, tag):
        assert response.status_code == 400
        assert response.json()["details"][0]["code"] == "TICKET_CLOSED"
    clock.advance(seconds=60)  # those three refusals locked the token out for a minute
    reopening = raw.post(
        f"/tickets/{ticket}/actions", json={"description": "reabrindo", "status": {"id": 2}}
    )
    assert reopening.status_code == 201
    assert (
        raw.patch(f"/tickets/{ticket}/attributes/subject", json={"subject": "novo"}).status_code
        == 200
    )


def test_the_closed_is_final_switch_allows_editing_a_closed_ticket(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    sandbox.closed_is_final = False
    ticket = sandbox.agent.create_ticket("Fechado")["id"]
    sandbox.agent.set_status(ticket, 6)

    assert (
        raw.patch(f"/tickets/{ticket}/attributes/subject", json={"subject": "novo"}).status_code
        == 200
    )


# -- listings ------------------------------------------------------------------------------


def test_listings_come_in_a_stable_shuffle_by_default_and_by_id_or_newest_on_request(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ids = [sandbox.agent.create_ticket(f"t{n}")["id"] for n in range(12)]
    clock.advance(minutes=1)
    sandbox.agent.edit(ids[3], "subject", {"subject": "editado"})

    def listed() -> list[str]:
        return [t["id"] for t in raw.get("/tickets", params={"size": 100}).json()]

    shuffled = listed()
    assert shuffled != ids
    assert sorted(shuffled, key=int) == ids
    assert listed() == shuffled
    sandbox.listing_order = "id"
    assert listed() == ids
    sandbox.listing_order = "updated_desc"
    assert listed()[0] == ids[3]


def test_actions_are_listed_in_the_same_undocumented_order(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    ticket = sandbox.agent.create_ticket("Ações", description="1")["id"]
    for n in range(2, 13):
        sandbox.agent.add_action(ticket, str(n))

    listed = [a["id"] for a in raw.get(f"/tickets/{ticket}/actions").json()]

    assert listed != sorted(listed)
    assert sorted(listed) == list(range(1, 13))


def test_the_listing_lag_switch_shows_changes_at_once(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    sandbox.listing_lag = timedelta(0)
    sandbox.null_updated_at = False
    sandbox.agent.create_ticket("agora")

    listed = raw.get("/tickets", params={"updatedAt": clock().date().isoformat()}).json()

    assert [t["subject"] for t in listed] == ["agora"]
    assert listed[0]["updatedAt"] == listed[0]["createdAt"]


def test_an_edited_ticket_still_matches_its_old_date_until_the_lag_passes(
    raw: httpx.Client, sandbox: ZenviaSandbox, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 10, 23, 59, 0, tzinfo=UTC))
    ticket = sandbox.agent.create_ticket("virada")["id"]
    sandbox.agent.edit(ticket, "subject", {"subject": "dia 10"})
    clock.set(datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC))
    sandbox.agent.edit(ticket, "subject", {"subject": "dia 11"})

    def on(day: str) -> list[str]:
        return [t["subject"] for t in raw.get("/tickets", params={"updatedAt": day}).json()]

    assert (on("2026-03-10"), on("2026-03-11")) == (["dia 11"], [])
    clock.advance(seconds=2)
    assert (on("2026-03-10"), on("2026-03-11")) == ([], ["dia 11"])


def test_history_and_tag_lists_are_paged(raw: httpx.Client, sandbox: ZenviaSandbox) -> None:
    ticket = sandbox.agent.create_ticket("Histórico")["id"]
    for status in (2, 1, 2):
        sandbox.agent.set_status(ticket, status)
    for tag in (1, 2, 3):
        raw.post(f"/tickets/{ticket}/tags", json={"tag": {"id": tag}})

    for path in ("status-changes", "tags"):
        page = raw.get(f"/tickets/{ticket}/{path}", params={"page": 2, "size": 2})
        assert (page.headers["x-total"], page.headers["x-page"]) == (
            "4" if path == "status-changes" else "3",
            "2",
        )
        assert len(page.json()) == (2 if path == "status-changes" else 1)
    assert raw.get(f"/tickets/{ticket}/owner-changes").headers["x-total"] == "0"


def test_there_is_no_endpoint_for_one_action(raw: httpx.Client, sandbox: ZenviaSandbox) -> None:
    ticket = sandbox.agent.create_ticket("Ação", description="primeira")["id"]

    assert raw.get(f"/tickets/{ticket}/actions/1").status_code == 404


# -- creates -------------------------------------------------------------------------------


def test_a_ticket_needs_a_client_unless_the_switch_is_off(
    raw: httpx.Client, sandbox: ZenviaSandbox
) -> None:
    refused = raw.post("/tickets", json={"subject": "sem cliente"})
    cleared = raw.patch(
        f"/tickets/{sandbox.agent.create_ticket('x')['id']}/attributes/clients",
        json={"clients": []},
    )
    sandbox.clients_required = False
    accepted = raw.post("/tickets", json={"subject": "sem cliente"})

    assert refused.status_code == cleared.status_code == 400
    assert refused.json()["details"][0] == {
        "code": "REQUIRED",
        "path": "clients",
        "message": "at least one client is required",
    }
    assert accepted.status_code == 201


def test_the_v1_subject_limit_is_a_switch(raw: httpx.Client, sandbox: ZenviaSandbox) -> None:
    body = {"subject": "x" * 351, "clients": ["client-1"]}
    assert raw.post("/tickets", json=body).status_code == 400
    sandbox.subject_max_length = None
    assert raw.post("/tickets", json=body).status_code == 201


# -- signature mode ------------------------------------------------------------------------


def test_the_signed_text_has_the_six_lines_of_the_spec() -> None:
    text = signed_text(
        method="post",
        body=b'{"a":1}',
        content_type="application/json",
        date="Sun, 12 Feb 2023 07:40:32 GMT",
        host="api.zenvia.com",
        resource="/v2/tickets",
    )
    empty = signed_text(
        method="GET",
        body=b"",
        content_type="application/json",
        date="Sun, 12 Feb 2023 07:40:32 GMT",
        host="api.zenvia.com",
        resource="/v2/tickets?page=1",
    )

    assert text.split("\n") == [
        "POST",
        "bb6cb5c68df4652941caf652a366f2d8",  # MD5 of the body
        "application/json",
        "Sun, 12 Feb 2023 07:40:32 GMT",
        "api.zenvia.com",
        "/v2/tickets",
    ]
    assert empty == "GET\n\n\nSun, 12 Feb 2023 07:40:32 GMT\napi.zenvia.com\n/v2/tickets?page=1"


def test_a_signature_mode_token_refuses_unsigned_stale_and_wrong_signatures(
    raw: httpx.Client, sandbox: ZenviaSandbox, server: SandboxServer, clock: Any
) -> None:
    sandbox.signature_secret = "s3cret"
    host = server.base_url.removeprefix("http://")

    def signed(secret: str, when: datetime) -> httpx.Response:
        date = format_datetime(when, usegmt=True)
        sig = signature(
            secret,
            method="GET",
            body=b"",
            content_type="",
            date=date,
            host=host,
            resource="/v2/tickets",
        )
        return raw.get("/tickets", headers={"Date": date, "X-API-Signature": sig})

    unsigned = raw.get("/tickets")
    assert unsigned.status_code == 401
    assert "requires a signature" in unsigned.json()["message"]
    assert signed("s3cret", clock()).status_code == 200
    sandbox.lockout = False
    assert signed("s3cret", clock() - timedelta(minutes=4)).status_code == 401
    assert signed("s3cret", clock() + timedelta(minutes=1)).status_code == 401
    assert signed("other", clock()).json()["message"] == "Invalid X-API-Signature"


# -- the CLI -------------------------------------------------------------------------------


def test_the_cli_refuses_an_unknown_listing_order_and_a_negative_lag() -> None:
    runner = CliRunner()
    order = runner.invoke(app, ["zenvia", "--token", "t", "--listing-order", "newest"])
    lag = runner.invoke(app, ["zenvia", "--token", "t", "--listing-lag", "-1"])

    assert order.exit_code == lag.exit_code == 2
    assert "--listing-order must be shuffle, id or updated_desc" in order.output
    assert "listing_lag_seconds cannot be negative" in lag.output
