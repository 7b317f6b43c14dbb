"""The mapping file: the shipped default fits the sandboxes, bad files fail with messages that
name the file, the key path and what was expected, and the helpers answer lossy-aware."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

import syncworker
from syncworker import engine
from syncworker.mapping import Mapping, MappingError, from_data, load, load_default
from syncworker.model import BaseStatus, RemoteRecord, Side

SHIPPED = Path(syncworker.__file__).parent / "mappings" / "salesforce_zenvia.yaml"

MINIMAL = """\
crm_system: salesforce
fields:
  subject: {crm: Subject, zenvia: subject, direction: both, conflict: newest_wins}
"""

PRIORITY = """\
crm_system: salesforce
fields:
  priority:
    crm: Priority
    zenvia: urgency
    conflict: crm_wins
    crm_values: [High, Medium, Low]
    zenvia_values: [1, 2, 3, 4]
    to_zenvia: {Low: 1, Medium: 2, High: 3}
    to_crm: {1: Low, 2: Medium, 3: High, 4: High}
"""

DEFAULT_CLIENT = "create_defaults: {zenvia: {clients: [client-1]}}\n"


@pytest.fixture(scope="module")
def default() -> Mapping:
    return load_default("salesforce")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- the shipped default ----------------------------------------------------------------------


def test_the_shipped_default_loads_from_the_package_and_from_its_path(default: Mapping) -> None:
    assert load(SHIPPED) == default
    assert default.crm_system == "salesforce"
    assert default.synced_native_names("crm") == (
        "Subject",
        "Status",
        "Priority",
        "Type",
        "OwnerId",
    )
    assert default.synced_native_names("zenvia") == (
        "subject",
        "status",
        "urgency",
        "category",
        "ownerId",
    )


def test_the_default_status_catalogues_are_the_sandbox_ones(default: Mapping) -> None:
    assert default.catalogue("status", "crm") == (
        "New",
        "Working",
        "Escalated",
        "On Hold",
        "Closed",
    )
    assert default.catalogue("status", "zenvia") == (1, 2, 3, 4, 5, 6)
    assert default.zenvia_justifications == {3: 11, 4: 12, 5: 13}
    assert default.closed_status("crm") == "Closed"
    assert default.closed_status("zenvia") == 6


@pytest.mark.parametrize(
    ("field", "from_side", "value", "expected"),
    [
        pytest.param("status", "crm", "Escalated", 2, id="escalated-is-in-attendance"),
        pytest.param("status", "crm", "On Hold", 3, id="on-hold-is-waiting-for-the-client"),
        pytest.param("status", "zenvia", 4, "Closed", id="canceled-closes-the-case"),
        pytest.param("status", "zenvia", 5, "Closed", id="resolved-closes-the-case"),
        pytest.param("priority", "zenvia", 4, "High", id="urgent-is-high"),
        pytest.param("priority", "crm", None, None, id="no-priority-stays-empty"),
        pytest.param("owner", "crm", "005000000000003AAA", "agent-3", id="owner-to-agent"),
        pytest.param("owner", "zenvia", None, "005000000000001AAA", id="unassigned-gets-an-owner"),
        pytest.param("category", "crm", "Other", None, id="unknown-type-has-no-category"),
        pytest.param("subject", "crm", "Printer jams", "Printer jams", id="subject-copies"),
    ],
)
def test_translate_uses_the_map_then_the_default_then_the_value(
    default: Mapping, field: str, from_side: Side, value: object, expected: object
) -> None:
    assert default.translate(field, from_side, value) == expected


@pytest.mark.parametrize(
    ("field", "crm_value", "zenvia_value", "expected"),
    [
        pytest.param("status", "Working", 2, True, id="working-and-in-attendance"),
        pytest.param(
            "status", "Escalated", 2, True, id="escalated-agrees-with-2-through-to-zenvia"
        ),
        pytest.param("status", "Closed", 4, True, id="closed-agrees-with-canceled-through-to-crm"),
        pytest.param("status", "Closed", 5, True, id="closed-agrees-with-resolved"),
        pytest.param("status", "Working", 3, False, id="working-is-not-waiting"),
        pytest.param(
            "owner", "005000000000001AAA", None, True, id="default-owner-agrees-with-none"
        ),
        pytest.param("subject", "a", "b", False, id="different-subjects"),
    ],
)
def test_agree_holds_under_the_mapping_in_either_direction(
    default: Mapping, field: str, crm_value: object, zenvia_value: object, expected: bool
) -> None:
    assert default.agree(field, crm_value, zenvia_value) is expected


def test_project_keeps_only_synced_fields_and_copies_them(default: Mapping) -> None:
    ticket = {"subject": "x", "status": 2, "statusType": "IN_ATTENDANCE", "clients": ["c-1"]}
    assert default.project("zenvia", ticket) == {"subject": "x", "status": 2}


@pytest.mark.parametrize(
    ("side", "fields", "expected"),
    [
        pytest.param("crm", {"Origin": "Web"}, True, id="web-case"),
        pytest.param("crm", {"Origin": "Partner"}, False, id="partner-case"),
        pytest.param("crm", {}, False, id="case-without-origin"),
        pytest.param("zenvia", {"type": "INTERNAL"}, True, id="internal-ticket"),
    ],
)
def test_in_scope_follows_the_scope_section(
    default: Mapping, side: Side, fields: dict[str, object], expected: bool
) -> None:
    assert default.in_scope(side, fields) is expected


SINCE_AND_STATES = (
    PRIORITY.replace(
        "priority:", "status: {crm: Status, zenvia: status, conflict: crm_wins}\n  priority:"
    )
    + "statuses: {crm: {New: new, Closed: closed}, zenvia: {1: new, 6: closed}}\n"
    + "scope:\n"
    + "  since: {crm: {CreatedDate: 2026-06-01, SystemModstamp: '2026-06-01T12:00:00-03:00'}}\n"
    + "  states: [new]\n"
)


@pytest.mark.parametrize(
    ("side", "fields", "misses"),
    [
        pytest.param(
            "crm",
            {"Status": "New", "CreatedDate": "2026-06-01T00:00:00.000+0000"},
            (),
            id="created-on-the-day",
        ),
        pytest.param(
            "crm",
            {"Status": "New", "CreatedDate": "2026-05-31T23:59:59.000+0000"},
            ("since",),
            id="created-the-day-before",
        ),
        pytest.param(
            "crm",
            {
                "Status": "New",
                "CreatedDate": "2025-01-01T00:00:00.000+0000",
                "SystemModstamp": "2026-06-01T15:00:00.000+0000",
            },
            (),
            id="old-but-changed-since-in-another-zone",
        ),
        pytest.param(
            "crm",
            {"Status": "New", "SystemModstamp": "2026-06-01T14:59:59Z"},
            ("since",),
            id="changed-a-second-too-early",
        ),
        pytest.param("crm", {"Status": "New", "CreatedDate": None}, ("since",), id="no-stamp"),
        pytest.param(
            "crm", {"Status": "New", "CreatedDate": "yesterday"}, ("since",), id="unreadable-stamp"
        ),
        pytest.param(
            "crm",
            {"Status": "Closed", "CreatedDate": "2027-01-01T00:00:00Z"},
            ("states",),
            id="recent-but-closed",
        ),
        pytest.param("zenvia", {"status": 1}, (), id="a-new-ticket-any-date"),
        pytest.param("zenvia", {"status": 6}, ("states",), id="a-closed-ticket"),
        pytest.param(
            "zenvia", {"status": 99, "statusType": "NEW"}, (), id="unknown-status-by-its-type"
        ),
    ],
)
def test_scope_by_date_and_state_names_the_conditions_a_record_misses(
    tmp_path: Path, side: Side, fields: dict[str, object], misses: tuple[str, ...]
) -> None:
    mapping = load(write(tmp_path, SINCE_AND_STATES))
    assert mapping.scope_misses(side, fields) == misses
    assert mapping.in_scope(side, fields) is (misses == ())


@pytest.mark.parametrize(
    ("fields", "copied"),
    [
        pytest.param({"Status": "New", "CreatedDate": "2026-07-01T00:00:00Z"}, True, id="in"),
        pytest.param({"Status": "New", "CreatedDate": "2025-07-01T00:00:00Z"}, False, id="old"),
        pytest.param({"Status": "Closed", "CreatedDate": "2026-07-01T00:00:00Z"}, False, id="done"),
    ],
)
def test_the_engine_never_copies_a_record_out_of_date_or_state_scope(
    tmp_path: Path, fields: dict[str, object], copied: bool
) -> None:
    mapping = load(write(tmp_path, SINCE_AND_STATES))
    case = RemoteRecord("500A", datetime(2026, 7, 1, tzinfo=UTC), {"Subject": "x", **fields})
    plan = engine.plan(mapping, link=None, crm=case, zenvia=None)
    assert any(isinstance(op, engine.CreateRecord) for op in plan.operations) is copied
    assert ("out of scope" in plan.reason) is not copied


def test_a_zenvia_create_carries_defaults_translations_and_the_justification(
    default: Mapping,
) -> None:
    case = {"Subject": "Printer", "Status": "On Hold", "Priority": "Low", "Description": "jams"}
    assert default.create_fields("zenvia", case) == {
        "type": "PUBLIC",
        "clients": ["client-1"],
        "subject": "Printer",
        "status": 3,
        "urgency": 1,
        "justification": 11,
    }
    assert default.create_description("zenvia", case) == "jams"
    assert default.create_description("crm", {"subject": "Printer"}) == ""


def test_a_queue_owner_leaves_the_ticket_owner_and_a_converged_pair_may_hold_both(
    default: Mapping,
) -> None:
    owner = default.fields["owner"]
    assert owner.keeps("zenvia", "00G000000000001AAA")
    assert not owner.keeps("zenvia", "005000000000003AAA")
    assert "ownerId" not in default.create_fields("zenvia", {"OwnerId": "00G000000000001AAA"})
    assert default.settled("owner", "00G000000000001AAA", "agent-2")
    assert not default.settled("owner", "005000000000003AAA", "agent-2")


def test_keeping_a_side_needs_a_map_and_no_default() -> None:
    data = load_default("salesforce").model_dump(exclude_unset=True)
    data["fields"]["owner"]["default_to_zenvia"] = None
    with pytest.raises(MappingError, match="keeping zenvia needs to_zenvia and no default"):
        from_data(data)


def test_an_unknown_zenvia_status_falls_back_to_its_base_type(default: Mapping) -> None:
    ticket = {"status": 42, "statusType": "STOPPED"}
    assert default.base_status("zenvia", ticket) is BaseStatus.WAITING


def test_keys_nothing_reads_any_more_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = {
        "crm_system": "salesforce",
        "fields": {"subject": {"crm": "Subject", "zenvia": "subject", "conflict": "crm_wins"}},
        "comments": {"sync": False, "crm_to_zenvia_public_from": "IsPublished"},
        "display": {"crm": {"channel": "Origin"}},
    }
    with caplog.at_level("WARNING", logger="syncworker.mapping"):
        loaded = from_data(old, source="old.yaml")
    assert loaded.comments.sync is False
    assert [r.getMessage() for r in caplog.records] == [
        "old.yaml: display is no longer read (nothing shows these attributes); delete it",
        "old.yaml: comments.crm_to_zenvia_public_from is no longer read (a copy always keeps its "
        "comment's visibility); delete it",
    ]
    assert old["comments"] == {"sync": False, "crm_to_zenvia_public_from": "IsPublished"}


# -- bad files ------------------------------------------------------------------------------

BAD_FILES = [
    pytest.param(
        MINIMAL.replace("newest_wins", "crm-wins"),
        "fields.subject.conflict: expected 'crm_wins', 'zenvia_wins', 'newest_wins' or 'manual'; "
        "got 'crm-wins'",
        id="bad-policy",
    ),
    pytest.param(
        MINIMAL.replace("direction: both", "direction: two_way"),
        "fields.subject.direction: expected 'both', 'crm_to_zenvia' or 'zenvia_to_crm'; "
        "got 'two_way'",
        id="bad-direction",
    ),
    pytest.param(
        "crm_system: salesforce\nfields:\n  subject:\n    crm: Subject\n     zenvia: subject\n",
        "line 5, column 12: invalid YAML: mapping values are not allowed here",
        id="bad-yaml-line",
    ),
    pytest.param(
        MINIMAL.replace("conflict:", "confilct:"),
        "fields.subject.confilct: unknown key; expected one of: crm, zenvia, direction, conflict, "
        "crm_values, zenvia_values, to_zenvia, to_crm, default_to_zenvia, default_to_crm, "
        "crm_max_length, zenvia_max_length, empty_to_crm, empty_to_zenvia, keep_when_unmapped",
        id="unknown-key",
    ),
    pytest.param(
        MINIMAL + "on_delte: close\n",
        "on_delte: unknown key; expected one of: crm_system, fields, statuses, "
        "zenvia_justifications, create_defaults, client_lookup, description, comments, scope, "
        "matching, on_delete, on_cancel",
        id="unknown-top-level-key",
    ),
    pytest.param(
        MINIMAL.replace("crm: Subject", "crm: 5"),
        "fields.subject.crm: expected text; got an integer 5",
        id="wrong-type",
    ),
    pytest.param(
        MINIMAL + "comments: {sync: yes please}\n",
        "comments.sync: expected true or false; got text 'yes please'",
        id="wrong-type-boolean",
    ),
    pytest.param(
        MINIMAL.replace("crm_system: salesforce\n", ""),
        "crm_system: missing required key",
        id="missing-key",
    ),
    pytest.param(
        MINIMAL.replace("salesforce", "Dynamics CRM"),
        "crm_system: expected a lowercase name of letters, digits and _ (at most 32 characters); "
        "got 'Dynamics CRM'",
        id="bad-crm-name",
    ),
    pytest.param(
        MINIMAL.replace(", direction: both, conflict: newest_wins", ""),
        "fields.subject: a field with direction both needs `conflict`: "
        "crm_wins, zenvia_wins, newest_wins or manual",
        id="two-way-without-policy",
    ),
    pytest.param(
        MINIMAL + "  title: {crm: Subject, zenvia: title, conflict: crm_wins}\n",
        "fields.title.crm: 'Subject' is already mapped by fields.subject",
        id="duplicate-native-name",
    ),
    pytest.param(
        MINIMAL + "  subject: {crm: Title, zenvia: title, conflict: crm_wins}\n",
        "line 4, column 3: invalid YAML: duplicate key 'subject'",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        PRIORITY.replace("High: 3}", "High: 9}"),
        "fields.priority.to_zenvia.High: 9 is not a known zenvia value (known: 1, 2, 3, 4)",
        id="map-target-not-in-catalogue",
    ),
    pytest.param(
        PRIORITY.replace("{1: Low,", "{'1': Low,"),
        "fields.priority.to_crm.1: '1' is not a known zenvia value (known: 1, 2, 3, 4); "
        "did you mean 1?\n"
        "{file}: fields.priority.to_crm: no counterpart for zenvia value(s) 1; "
        "map them or set default_to_crm",
        id="quoted-status-id",
    ),
    pytest.param(
        PRIORITY.replace("4: High}", "4: on}"),
        "fields.priority.to_crm.4: expected text, an integer or null; got a boolean True "
        "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)",
        id="yaml-boolean-value",
    ),
    pytest.param(
        PRIORITY.replace("Medium: 2, ", ""),
        "fields.priority.to_zenvia: no counterpart for crm value(s) 'Medium'; "
        "map them or set default_to_zenvia",
        id="incomplete-map",
    ),
    pytest.param(
        "crm_system: salesforce\nfields:\n  subject:\n    crm: Subject\n    zenvia: subject\n"
        "    direction: crm_to_zenvia\n    to_crm: {a: b}\n",
        "fields.subject.to_crm: never used: the field flows crm_to_zenvia",
        id="map-against-the-direction",
    ),
    pytest.param(
        "crm_system: salesforce\nfields:\n  subject:\n    crm: Subject\n    zenvia: subject\n"
        "    direction: crm_to_zenvia\n    conflict: zenvia_wins\n",
        "fields.subject.conflict: a crm_to_zenvia field always takes the crm value; "
        "remove conflict or write crm_wins",
        id="policy-against-the-direction",
    ),
    pytest.param(
        MINIMAL.replace("}", ", default_to_zenvia: x}"),
        "fields.subject.default_to_zenvia: needs to_zenvia: "
        "without a value map every value is copied as it is",
        id="default-without-a-map",
    ),
    pytest.param(
        MINIMAL + "statuses: {crm: {New: new}, zenvia: {1: new}}\n",
        "statuses: describes fields.status, which the file does not map",
        id="statuses-without-a-status-field",
    ),
    pytest.param(
        MINIMAL + "create_defaults: {zenvia: {subject: New ticket}}\n",
        "create_defaults.zenvia.subject: is synced by fields.subject; "
        "its value comes from the other side",
        id="default-for-a-synced-field",
    ),
    pytest.param(
        MINIMAL + "on_delete: close\n",
        "on_delete: close needs fields.status and a status with base closed "
        "in statuses.crm and statuses.zenvia",
        id="close-without-statuses",
    ),
    pytest.param(
        MINIMAL + "statuses: {crm: {New: new}, zenvia: {1: fresh}}\n",
        "statuses.zenvia.1: expected 'new', 'open', 'waiting', 'resolved', 'closed' "
        "or 'canceled'; got 'fresh'",
        id="unknown-base-status",
    ),
    pytest.param(
        MINIMAL + "scope: {since: {crm: {CreatedDate: last year}}}\n",
        "scope.since.crm.CreatedDate: expected a date or time (ISO 8601, e.g. 2026-01-31); "
        "got 'last year'",
        id="scope-since-not-a-date",
    ),
    pytest.param(
        MINIMAL + "scope: {since: {crm: {CreatedDate: 20260101}}}\n",
        "scope.since.crm.CreatedDate: expected a date or time (ISO 8601, e.g. 2026-01-31); "
        "got an integer",
        id="scope-since-a-number",
    ),
    pytest.param(
        MINIMAL + "scope: {states: [open, active]}\n",
        "scope.states.1: expected 'new', 'open', 'waiting', 'resolved', 'closed' "
        "or 'canceled'; got 'active'",
        id="scope-unknown-state",
    ),
    pytest.param(
        MINIMAL + "scope: {states: [open]}\n",
        "scope.states: needs fields.status and the statuses section to tell a base status",
        id="scope-states-without-statuses",
    ),
    pytest.param(
        MINIMAL + "scope: {states: []}\n",
        "scope.states: expected at least one entry",
        id="scope-no-states",
    ),
    pytest.param(
        MINIMAL + "matching: {rules: [{name: r, same: [{crm: Subject, zenvia: subject}], "
        "within_minutes: 60}]}\n",
        "matching.rules.0: `created` and `within_minutes` go together: give both or neither",
        id="matching-window-without-stamps",
    ),
    pytest.param(
        MINIMAL + "matching: {rules: [{name: r, same: []}]}\n",
        "matching.rules.0.same: expected at least one entry",
        id="matching-rule-comparing-nothing",
    ),
    pytest.param(
        MINIMAL + "matching: {rules: [{name: r, same: [{crm: Subject, zenvia: subject}], "
        "created: {crm: CreatedDate, zenvia: createdAt}, within_minutes: 0}]}\n",
        "matching.rules.0.within_minutes: expected more than 0; got 0",
        id="matching-empty-window",
    ),
    pytest.param(
        MINIMAL + "matching: {rules: [{name: r, same: [{crm: Subject, zenvia: subject}]}, "
        "{name: r, same: [{crm: Subject, zenvia: subject}]}]}\n",
        "matching.rules.1.name: 'r' names an earlier rule too",
        id="matching-rule-named-twice",
    ),
    pytest.param(
        MINIMAL + "matching: {by_id: {crm: Zenvia_Ticket_Id__c, salesforce: X}}\n",
        "matching.by_id.salesforce: unknown key; expected one of: crm, zenvia",
        id="matching-unknown-side",
    ),
    pytest.param(
        MINIMAL + "client_lookup: ContactEmail\n",
        "client_lookup: expected a mapping; got text 'ContactEmail'",
        id="client-lookup-not-a-mapping",
    ),
    pytest.param(
        MINIMAL + DEFAULT_CLIENT + "client_lookup: {crm: ContactEmail, zenvia: email}\n",
        "client_lookup.zenvia: unknown key; expected one of: crm",
        id="client-lookup-unknown-key",
    ),
    pytest.param(
        MINIMAL + DEFAULT_CLIENT + "client_lookup: {}\n",
        "client_lookup.crm: missing required key",
        id="client-lookup-without-a-field",
    ),
    pytest.param(
        MINIMAL + DEFAULT_CLIENT + "client_lookup: {crm: ''}\n",
        "client_lookup.crm: expected text; got an empty one",
        id="client-lookup-empty-field",
    ),
    pytest.param(
        MINIMAL + "client_lookup: {crm: ContactEmail}\n",
        "client_lookup: needs create_defaults.zenvia.clients: the client a ticket takes when "
        "no Zenvia contact has the case's e-mail",
        id="client-lookup-without-a-default-client",
    ),
    pytest.param("", "expected a mapping at the top level; got null", id="empty-file"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_a_bad_file_fails_naming_the_file_the_key_and_the_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as failure:
        load(path)
    assert str(failure.value) == f"{path}: {expected}".replace("{file}", str(path))


def test_a_canceled_status_must_close_the_case_when_on_cancel_is_close(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace("4: Closed,", "4: Working,")
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as failure:
        load(path)
    assert str(failure.value) == (
        f"{path}: fields.status.to_crm.4: on_cancel is close, so a canceled Zenvia status must "
        "map to a CRM status whose base is closed"
    )


def test_a_missing_file_fails_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MappingError, match=r"nope\.yaml: cannot read the mapping file"):
        load(missing)


def test_a_15_character_owner_id_names_the_same_user_as_the_18_character_one_salesforce_returns(
    default: Mapping,
) -> None:
    """Left as written, an agent's assignment read back from Salesforce (18 characters) would
    not match the map and would be taken for a change: the ticket's owner would be cleared."""
    data = default.model_dump(exclude_unset=True)
    owner = data["fields"]["owner"]
    owner["to_zenvia"] = {k[:15]: v for k, v in owner["to_zenvia"].items()}
    owner["to_crm"] = {k: v[:15] for k, v in owner["to_crm"].items()}
    mapping = from_data(data)
    assert mapping.translate("owner", "crm", "005000000000003AAA") == "agent-3"
    assert mapping.translate("owner", "zenvia", "agent-3") == "005000000000003AAA"
    assert mapping.normalised_ids["005000000000003"] == "005000000000003AAA"
