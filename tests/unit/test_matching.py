"""Finding pairs copied by hand before syncworker, the CSV of pairs, and the Zenvia budget's
clock: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from syncworker import matching, onboard
from syncworker.connectors.errors import RateLimitedError
from syncworker.mapping import Mapping, from_data, load_default
from syncworker.markers import idempotency_key, with_marker
from syncworker.model import RemoteComment, RemoteRecord
from syncworker.settings import Settings

CASE_1 = "500000000000001AAA"
CASE_2 = "500000000000002AAA"
CASE_3 = "500000000000003AAA"
NOON = "2026-03-02T12:00:00.000+0000"


def rules(**matching_section: object) -> Mapping:
    return from_data(
        {
            "crm_system": "salesforce",
            "fields": {"subject": {"crm": "Subject", "zenvia": "subject", "conflict": "crm_wins"}},
            "matching": matching_section,
        }
    )


def case(case_id: str, subject: str = "", **fields: object) -> RemoteRecord:
    payload = {"Subject": subject, "CreatedDate": NOON, **fields}
    return RemoteRecord(case_id, datetime(2026, 3, 2, tzinfo=UTC), payload)


def ticket(ticket_id: str, subject: str = "", **fields: object) -> RemoteRecord:
    payload = {"subject": subject, "createdAt": "2026-03-02T09:30:00.000-03:00", **fields}
    return RemoteRecord(ticket_id, datetime(2026, 3, 2, tzinfo=UTC), payload)


SAME_SUBJECT = {
    "rules": [
        {
            "name": "same subject",
            "same": [{"crm": "Subject", "zenvia": "subject"}],
            "created": {"crm": "CreatedDate", "zenvia": "createdAt"},
            "within_minutes": 60,
        }
    ]
}


def test_a_case_holding_its_tickets_id_is_paired_by_the_id_field() -> None:
    found = matching.match(
        rules(by_id={"crm": "Zenvia_Ticket_Id__c"}),
        [case(CASE_1, Zenvia_Ticket_Id__c=" 41 "), case(CASE_2, Zenvia_Ticket_Id__c="99")],
        [ticket("41"), ticket("42")],
    )
    assert found.pairs == (matching.Match(CASE_1, "41", matching.BY_ID),)
    assert found.ambiguous == ()


def test_a_ticket_holding_a_15_character_case_id_is_paired_with_the_18_character_case() -> None:
    found = matching.match(
        rules(by_id={"zenvia": "caseId"}), [case(CASE_1)], [ticket("7", caseId=CASE_1[:15])]
    )
    assert found.pairs == (matching.Match(CASE_1, "7", matching.BY_ID),)


def test_a_rule_pairs_text_ignoring_case_and_spacing_within_the_window() -> None:
    found = matching.match(
        rules(**SAME_SUBJECT),
        [case(CASE_1, "Printer  on FIRE "), case(CASE_2, "Refund")],
        [ticket("1", "printer on fire"), ticket("2", "Refund", createdAt="2026-03-02T13:01:00Z")],
    )
    assert found.pairs == (matching.Match(CASE_1, "1", "same subject"),)


def test_a_list_attribute_matches_when_it_holds_the_value_and_blanks_never_match() -> None:
    customer = {
        "rules": [{"name": "customer", "same": [{"crm": "ContactId", "zenvia": "clients"}]}]
    }
    found = matching.match(
        rules(**customer),
        [case(CASE_1, ContactId="003A"), case(CASE_2, ContactId=None)],
        [ticket("1", clients=["c-9", "003a"]), ticket("2", clients=[])],
    )
    assert found.pairs == (matching.Match(CASE_1, "1", "customer"),)


def test_a_record_matching_several_is_never_paired_and_neither_are_its_candidates() -> None:
    found = matching.match(
        rules(**SAME_SUBJECT),
        [case(CASE_1, "Twice"), case(CASE_2, "Once")],
        [ticket("1", "Twice"), ticket("2", "Twice"), ticket("3", "Once")],
    )
    assert found.pairs == (matching.Match(CASE_2, "3", "same subject"),)
    assert found.ambiguous == (matching.Ambiguous("crm", CASE_1, ("1", "2"), "same subject"),)
    assert found.left_out() == {"crm": {CASE_1}, "zenvia": {"1", "2"}}


def test_an_ambiguous_record_is_not_paired_by_a_later_rule_either() -> None:
    section = {
        "rules": [
            {"name": "subject", "same": [{"crm": "Subject", "zenvia": "subject"}]},
            {"name": "customer", "same": [{"crm": "ContactId", "zenvia": "clients"}]},
        ]
    }
    found = matching.match(
        rules(**section),
        [case(CASE_1, "Twice", ContactId="003A"), case(CASE_3, "Other", ContactId="003B")],
        [ticket("1", "Twice", clients=["003A"]), ticket("2", "Twice", clients=["003B"])],
    )
    assert found.pairs == ()
    assert {a.rule for a in found.ambiguous} == {"subject"}


def test_an_earlier_way_takes_a_record_before_a_later_one_can() -> None:
    section = {"by_id": {"crm": "Zenvia_Ticket_Id__c"}, **SAME_SUBJECT}
    found = matching.match(
        rules(**section),
        [case(CASE_1, "Same", Zenvia_Ticket_Id__c="2"), case(CASE_2, "Same")],
        [ticket("1", "Same"), ticket("2", "Other")],
    )
    assert found.pairs == (
        matching.Match(CASE_1, "2", matching.BY_ID),
        matching.Match(CASE_2, "1", "same subject"),
    )


def test_the_shipped_mapping_matches_by_the_external_id_field_then_subject() -> None:
    section = load_default("salesforce").matching
    assert section.by_id.crm == "Zenvia_Ticket_Id__c"
    assert [rule.name for rule in section.rules] == ["same subject, created within an hour"]


def comment(comment_id: str, body: str, minute: int) -> RemoteComment:
    return RemoteComment(comment_id, "r", body, True, datetime(2026, 3, 2, 12, minute, tzinfo=UTC))


def test_comments_copied_by_hand_pair_oldest_first_and_ours_never_pair() -> None:
    crm = [
        comment("c2", "Called  again", 2),
        comment("c1", "called again", 1),
        comment("c3", "Only here", 3),
        comment("c4", with_marker("Ours", idempotency_key("comment", "zenvia", "z9")), 4),
    ]
    zenvia = [
        comment("z1", "CALLED AGAIN", 5),
        comment("z9", with_marker("Ours", idempotency_key("comment", "zenvia", "z9")), 0),
        comment("z2", "Different", 6),
    ]
    assert matching.same_comments(crm, zenvia) == [("c1", "z1")]


# -- the CSV of pairs ---------------------------------------------------------------------------


def test_a_csv_of_pairs_normalises_case_ids_and_names_every_bad_line() -> None:
    text = (
        "Case Id,Ticket Id\n"
        f"{CASE_1[:15]}, 41\n"
        "\n"
        f"{CASE_2},\n"
        "not-an-id,42\n"
        f"{CASE_2},43,extra\n"
        f"{CASE_1},44\n"
        f"{CASE_3},41\n"
        f"{CASE_2},45\n"
    )
    pairs, errors = onboard.parse_pairs(text)
    assert pairs == [onboard.FilePair(2, CASE_1, "41"), onboard.FilePair(9, CASE_2, "45")]
    assert errors == [
        f"line 4: expected `case id, ticket id`; got ['{CASE_2}', '']",
        "line 5: not a Salesforce id (15 or 18 letters and digits): 'not-an-id'",
        f"line 6: expected `case id, ticket id`; got ['{CASE_2}', '43', 'extra']",
        f"line 7: crm:{CASE_1} was already given on line 2",
        "line 8: zenvia:41 was already given on line 2",
    ]


# -- the Zenvia budget's clock ------------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings(zenvia_token="t", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "limited", "night_starts", "night_ends"),
    [
        pytest.param("2026-03-02T13:00:00Z", True, "19:00", "07:00", id="at-ten-in-sao-paulo"),
        pytest.param("2026-03-02T23:30:00Z", False, "20:30", "07:00", id="at-night"),
        pytest.param("2026-03-02T09:59:00Z", False, "06:59", "07:00", id="a-minute-before"),
    ],
)
def test_the_budget_says_whether_the_limit_applies_now_and_when_the_night_is(
    now: str, limited: bool, night_starts: str, night_ends: str
) -> None:
    moment = datetime.fromisoformat(now)
    budget = onboard.budget_time(settings(), 610, moment)
    assert budget.business_hours_seconds == pytest.approx(610 * 6.1)
    assert budget.limited_now is limited
    assert budget.night_starts is not None
    assert budget.night_ends is not None
    assert budget.night_starts >= moment
    assert (f"{budget.night_starts:%H:%M}", f"{budget.night_ends:%H:%M}") == (
        night_starts,
        night_ends,
    )
    said = " / ".join(onboard.describe_budget(budget, moment))
    assert ("run it then" in said) is limited


def test_a_limit_all_day_has_no_night() -> None:
    budget = onboard.budget_time(
        settings(zenvia_business_hours="always"), 100, datetime(2026, 3, 2, tzinfo=UTC)
    )
    assert (budget.limited_now, budget.night_starts) == (True, None)
    assert onboard.describe_budget(budget, datetime(2026, 3, 2, tzinfo=UTC)) == [
        "100 Zenvia requests",
        "the limit applies all day: about 11 min",
    ]


class RefusingGate:
    """A shared budget that refuses `refusals` times, then admits."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.admitted: list[str] = []
        self.responses: list[int] = []

    def before_request(self, endpoint: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise RateLimitedError("shared request budget spent", remote="zenvia", retry_after=4.5)
        self.admitted.append(endpoint)

    def after_response(self, endpoint: str, response: httpx.Response) -> None:
        self.responses.append(response.status_code)


def test_a_persons_command_waits_for_the_budget_instead_of_failing() -> None:
    gate, slept, told = RefusingGate(refusals=2), [], []
    patient = onboard.PatientGate(gate, sleep=slept.append, on_wait=told.append)
    patient.before_request("GET /tickets")
    patient.after_response("GET /tickets", httpx.Response(200))
    assert (gate.admitted, slept, told, gate.responses) == (
        ["GET /tickets"],
        [4.5, 4.5],
        [4.5, 4.5],
        [200],
    )
