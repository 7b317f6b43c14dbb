"""Incremental polling through Zenvia's DATE-only `updatedAt` filter (null until a first edit),
with listings that lag and come in no documented order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.server import Response
from syncworker.sandbox.zenvia import ZenviaSandbox

pytestmark = pytest.mark.contract

BRASILIA = ZoneInfo("America/Sao_Paulo")


def _ids(records: Any) -> list[str]:
    return [r.id for r in records]


@pytest.mark.parametrize("date_filter", ["on", "since"])
def test_changed_since_spans_midnight_and_keeps_only_later_updates(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any, date_filter: str
) -> None:
    sandbox.date_filter = date_filter  # whichever way the API reads the DATE, same answer
    clock.set(datetime(2026, 3, 10, 23, 40, tzinfo=UTC))
    too_old = sandbox.agent.create_ticket("antes do cursor")["id"]
    clock.set(datetime(2026, 3, 10, 23, 50, tzinfo=UTC))
    late_day_one = sandbox.agent.create_ticket("fim do dia 1")["id"]
    edited_next_day = sandbox.agent.create_ticket("editado no dia 2")["id"]
    clock.set(datetime(2026, 3, 11, 0, 10, tzinfo=UTC))
    sandbox.agent.edit(edited_next_day, "urgency", {"urgency": {"id": 3}})
    clock.set(datetime(2026, 3, 11, 0, 5, tzinfo=UTC))
    new_day_two = sandbox.agent.create_ticket("novo no dia 2")["id"]
    clock.set(datetime(2026, 3, 11, 0, 20, tzinfo=UTC))

    since = datetime(2026, 3, 10, 23, 45, tzinfo=UTC)
    changed = list(connector.changed_since(since))

    assert _ids(changed) == [late_day_one, new_day_two, edited_next_day]
    assert too_old not in _ids(changed)
    assert [r.version for r in changed] == sorted(r.version for r in changed)
    assert changed[2].fields["urgency"] == 3
    # per date: updatedAt, and createdAt for the never-edited tickets (updatedAt null)
    assert connector.requests.by_endpoint == {"GET /tickets": 4}


def test_changed_since_sees_nothing_from_today_alone_for_yesterdays_updates(
    raw: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """The sandbox's filter really is date-exact: a poller asking only for today misses
    yesterday-evening updates, which is why the connector queries every date in the span."""
    clock.set(datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    ticket = sandbox.agent.create_ticket("ontem")["id"]
    sandbox.agent.edit(ticket, "subject", {"subject": "ontem"})  # no-op: updatedAt stays null
    sandbox.agent.edit(ticket, "subject", {"subject": "ontem, editado"})
    clock.set(datetime(2026, 3, 11, 0, 1, tzinfo=UTC))

    today = raw.get("/tickets", params={"updatedAt": "2026-03-11"})
    yesterday = raw.get("/tickets", params={"updatedAt": "2026-03-10"})

    assert today.json() == []
    assert [t["subject"] for t in yesterday.json()] == ["ontem, editado"]


def test_a_never_edited_ticket_has_a_null_updated_at_and_is_found_by_its_creation_date(
    connector: ZenviaConnector, raw: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    since = clock()
    ticket = sandbox.agent.create_ticket("nunca editado")["id"]
    clock.advance(seconds=5)

    assert raw.get(f"/tickets/{ticket}").json()["updatedAt"] is None
    assert raw.get("/tickets", params={"updatedAt": since.date().isoformat()}).json() == []
    changed = list(connector.changed_since(since))

    assert _ids(changed) == [ticket]
    assert changed[0].version == since
    assert changed[0].fields["updatedAt"] is None


def test_a_new_comment_alone_does_not_move_updated_at_so_changed_since_cannot_see_it(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    ticket = sandbox.agent.create_ticket("com comentário")["id"]
    sandbox.agent.edit(ticket, "subject", {"subject": "editado"})
    since = clock.advance(minutes=1)
    sandbox.agent.add_action(ticket, "comentário novo")
    clock.advance(minutes=1)

    assert list(connector.changed_since(since)) == []
    assert sandbox.ticket(ticket)["updatedAt"] == "2026-03-10T15:00:00.000Z"


def test_changed_since_orders_ties_by_id_and_includes_new_actions_when_they_move_updated_at(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    sandbox.action_moves_updated_at = True
    first = sandbox.agent.create_ticket("a")["id"]
    second = sandbox.agent.create_ticket("b")["id"]
    third = sandbox.agent.create_ticket("c")["id"]
    since = clock.advance(minutes=1)
    sandbox.agent.add_action(third, "comentário")
    sandbox.agent.add_action(first, "comentário")
    clock.advance(minutes=1)
    sandbox.agent.add_action(second, "comentário")
    clock.advance(seconds=5)

    changed = list(connector.changed_since(since))

    assert _ids(changed) == [first, third, second]
    assert changed[0].version == changed[1].version == since


def test_changed_since_covers_a_date_filter_in_brasilia_time(
    make_connector: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """If the API's DATE is Brasília's, the connector configured with both zones still finds
    a ticket updated at 01:00Z (22:00 of the previous day in Brasília)."""
    sandbox.filter_timezone = BRASILIA
    connector = make_connector(filter_timezones=(UTC, BRASILIA))
    clock.set(datetime(2026, 3, 11, 1, 0, tzinfo=UTC))
    ticket = sandbox.agent.create_ticket("22h em Brasília")["id"]
    clock.set(datetime(2026, 3, 11, 1, 30, tzinfo=UTC))

    changed = list(connector.changed_since(datetime(2026, 3, 11, 0, 30, tzinfo=UTC)))

    assert _ids(changed) == [ticket]
    assert connector.requests.by_endpoint == {"GET /tickets": 4}  # 03-10 and 03-11, twice


def test_changed_since_pages_through_a_busy_day(
    make_connector: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    connector = make_connector(page_size=100)
    since = clock()
    ids = sandbox.agent.populate(260)
    clock.advance(seconds=5)  # past the listing lag

    changed = list(connector.changed_since(since))

    assert sorted(_ids(changed), key=int) == ids
    # updatedAt: one empty page (never edited); createdAt: three pages
    assert connector.requests.by_endpoint == {"GET /tickets": 4}


def test_a_change_shows_in_date_listings_only_after_the_listing_lag(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    since = clock()
    ticket = sandbox.agent.create_ticket("recém-criado")["id"]

    assert list(connector.changed_since(since)) == []
    clock.advance(seconds=2)
    assert _ids(connector.changed_since(since)) == [ticket]


def test_changed_since_lists_a_date_again_when_its_total_moves_while_paging(
    make_connector: Any, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """A ticket leaving the date between pages shifts the rest one slot back; without the
    re-listing the ticket that slid onto the page already read would be skipped."""
    connector = make_connector(page_size=2)
    clock.set(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))
    ids = [sandbox.agent.create_ticket(f"t{n}")["id"] for n in range(1, 6)]
    clock.set(datetime(2026, 3, 11, 9, 0, tzinfo=UTC))

    def move_ticket_1_to_today(response: Response) -> Response:
        sandbox.agent.edit(ids[0], "subject", {"subject": "editado durante a leitura"})
        return response

    sandbox.rewrite_next_response("GET /v2/tickets", move_ticket_1_to_today)

    changed = list(connector.changed_since(datetime(2026, 3, 10, 0, 0, tzinfo=UTC)))

    assert sorted(_ids(changed), key=int) == ids
    assert changed[-1].id == ids[0]
    assert changed[-1].fields["subject"] == "editado durante a leitura"


def test_changed_since_uses_the_full_listing_for_a_long_span(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    old = sandbox.agent.create_ticket("antigo")["id"]
    clock.advance(days=40)
    recent = sandbox.agent.create_ticket("recente")["id"]

    changed = list(connector.changed_since(clock() - timedelta(days=45)))

    assert _ids(changed) == [old, recent]
    assert connector.requests.by_endpoint == {"GET /tickets": 1}


def test_changed_since_refuses_a_naive_cursor(connector: ZenviaConnector) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(connector.changed_since(datetime(2026, 3, 10, 12, 0)))


def test_a_pass_resumed_after_a_stop_misses_nothing_it_began_with_and_reads_each_page_once(
    connector: ZenviaConnector, sandbox: ZenviaSandbox, clock: Any
) -> None:
    """Pages shift when tickets join a date's listing between two polls; the pass goes on
    from its next page, never back to the first, and still lists every ticket it began with."""
    since = clock.current - timedelta(minutes=1)
    began_with = set(sandbox.agent.populate(250))  # never edited: the createdAt listing
    clock.advance(seconds=3)  # past the listing lag
    pages = connector.changed_pages(since)
    first = [next(pages) for _ in range(2)]  # updatedAt's one page, createdAt's first
    assert first[1].resume is not None
    clock.advance(seconds=5)
    for n in range(30):  # between two polls, new tickets take places early and late in the order
        sandbox.agent.create_ticket(f"entre duas sondagens {n}")
    clock.advance(seconds=3)
    rest = list(connector.changed_pages(since, first[1].resume))

    listed = {r.id for page in first + rest for r in page.records}
    assert began_with <= listed
    assert rest[-1].resume is None, "the last page ends the pass"
    assert all(page.resume is not None for page in first + rest[:-1])
    assert connector.requests.by_endpoint == {"GET /tickets": len(first) + len(rest)}
    assert len(first) + len(rest) == 1 + 3, "280 created tickets are 3 pages; none read twice"
