"""The sandbox's SOQL subset: tokenizer, parser and evaluator, without any HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from syncworker.sandbox.soql import (
    And,
    Comparison,
    FieldType,
    InList,
    Like,
    Not,
    Or,
    SoqlError,
    compile_query,
    format_datetime,
    parse,
    parse_datetime_literal,
    tokenize,
)

SCHEMA: dict[str, dict[str, FieldType]] = {
    "Case": {
        "Id": "id",
        "Subject": "string",
        "Description": "textarea",
        "Status": "picklist",
        "IsDeleted": "boolean",
        "SystemModstamp": "datetime",
        "OwnerId": "reference",
    },
    "CaseComment": {"Id": "id", "ParentId": "reference", "SystemModstamp": "datetime"},
}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _id(n: int) -> str:
    return f"500{n:012d}AAA"


def _normalize(value: str) -> str | None:
    if len(value) == 15 and value.isalnum():
        return value + "AAA"
    return value if len(value) == 18 and value.isalnum() else None


ROWS: list[dict[str, Any]] = [
    {
        "Id": _id(1),
        "Subject": "Printer on fire",
        "Description": "long",
        "Status": "New",
        "IsDeleted": False,
        "SystemModstamp": T0,
        "OwnerId": _id(9),
    },
    {
        "Id": _id(2),
        "Subject": "printer jammed",
        "Description": None,
        "Status": "Closed",
        "IsDeleted": True,
        "SystemModstamp": T0 + timedelta(seconds=1),
        "OwnerId": None,
    },
    {
        "Id": _id(3),
        "Subject": "It's 100% broken",
        "Description": None,
        "Status": "Working",
        "IsDeleted": False,
        "SystemModstamp": T0 + timedelta(seconds=2),
        "OwnerId": _id(9),
    },
    {
        "Id": _id(4),
        "Subject": None,
        "Description": None,
        "Status": "New",
        "IsDeleted": False,
        "SystemModstamp": T0 + timedelta(seconds=2),
        "OwnerId": None,
    },
]


def run(soql: str) -> list[str]:
    compiled = compile_query(parse(soql), SCHEMA, normalize_id=_normalize)
    return [row["Id"][-4:-3] for row in compiled.run(ROWS)]


# -- tokens and syntax ---------------------------------------------------------------------


def test_tokenizer_reads_keywords_case_insensitively_and_literals_whole() -> None:
    tokens = tokenize("select Id from Case where SystemModstamp >= 2024-01-01T00:00:00.000+0000")
    assert [(t.kind, t.text) for t in tokens] == [
        ("keyword", "SELECT"),
        ("ident", "Id"),
        ("keyword", "FROM"),
        ("ident", "Case"),
        ("keyword", "WHERE"),
        ("ident", "SystemModstamp"),
        ("op", ">="),
        ("datetime", "2024-01-01T00:00:00.000+0000"),
        ("eof", ""),
    ]


def test_strings_keep_their_escapes_until_evaluated() -> None:
    *_, string, _eof = tokenize(r"SELECT Id FROM Case WHERE Subject = 'It\'s \\ fine'")
    assert string.kind == "string"
    assert string.text == r"It\'s \\ fine"


def test_the_parser_builds_a_tree_with_precedence_from_parentheses() -> None:
    query = parse(
        "SELECT Id, Subject FROM Case WHERE (Status = 'New' OR Status = 'Working') "
        "AND NOT IsDeleted = true AND Id NOT IN ('a', 'b') AND Subject LIKE 'P%' "
        "ORDER BY SystemModstamp DESC NULLS LAST, Id LIMIT 10 OFFSET 5"
    )
    assert [f.name for f in query.fields] == ["Id", "Subject"]
    assert query.sobject.name == "Case"
    where = query.where
    assert isinstance(where, And)
    either, negated, not_in, like = where.operands
    assert isinstance(either, Or)
    assert all(isinstance(c, Comparison) for c in either.operands)
    assert isinstance(negated, Not)
    assert isinstance(not_in, InList)
    assert not_in.negated
    assert [v.text for v in not_in.values] == ["a", "b"]
    assert isinstance(like, Like)
    assert [(o.field.name, o.descending, o.nulls_last) for o in query.order_by] == [
        ("SystemModstamp", True, True),
        ("Id", False, None),
    ]
    assert (query.limit, query.offset) == (10, 5)


@pytest.mark.parametrize(
    ("soql", "column", "message"),
    [
        ("SELECT Id FORM Case", 11, "unexpected token: FORM"),
        ("SELECT FROM Case", 8, "unexpected token: FROM"),
        ("SELECT Id, FROM Case", 12, "unexpected token: FROM"),
        ("SELECT Id FROM Case WHERE", 26, "unexpected end of query"),
        ("SELECT Id FROM Case WHERE Status = 'New' AND Status = 'x' OR Id = 'y'", 59, "OR"),
        ("SELECT Id FROM Case WHERE Status = 'unterminated", 36, "unterminated string"),
        (r"SELECT Id FROM Case WHERE Subject = 'bad \q escape'", 42, "Illegal escape"),
        ("SELECT Id FROM Case WHERE Status == 'New'", 35, "unexpected token: ="),
        ("SELECT Id FROM Case WHERE Status IN 'New'", 37, "unexpected token: 'New'"),
        ("SELECT Id FROM Case LIMIT ten", 27, "unexpected token: ten"),
        ("SELECT Id FROM Case LIMIT 5 extra", 29, "unexpected token: extra"),
        ("SELECT Id FROM Case WHERE Status = :status", 36, "unexpected token: ':'"),
        ("SELECT Id FROM Case WHERE (Status = 'New'", 42, "unexpected end of query"),
    ],
    ids=[
        "misspelt-from",
        "no-fields",
        "trailing-comma",
        "empty-where",
        "mixed-and-or",
        "unterminated-string",
        "bad-escape",
        "double-equals",
        "in-without-list",
        "non-numeric-limit",
        "trailing-garbage",
        "apex-bind",
        "unclosed-paren",
    ],
)
def test_syntax_errors_are_malformed_query_with_salesforces_position(
    soql: str, column: int, message: str
) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(soql)
    assert caught.value.code == "MALFORMED_QUERY"
    assert f"ERROR at Row:1:Column:{column}\n" in caught.value.message
    assert message in caught.value.message


def test_error_positions_count_rows_of_multi_line_queries() -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id\nFROM Case\nWHERE Status = = 'x'")
    assert "ERROR at Row:3:Column:16" in caught.value.message


# -- schema checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soql", "code", "fragment"),
    [
        ("SELECT Nope FROM Case", "INVALID_FIELD", "No such column 'Nope' on entity 'Case'"),
        ("SELECT Id FROM Account", "INVALID_TYPE", "sObject type 'Account' is not supported"),
        ("SELECT Owner.Name FROM Case", "INVALID_FIELD", "Didn't understand relationship"),
        ("SELECT Id, id FROM Case", "MALFORMED_QUERY", "duplicate field selected: Id"),
        ("SELECT Id FROM Case WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
        ("SELECT Id FROM Case ORDER BY Description", "INVALID_FIELD", "can not be sorted"),
        (
            "SELECT Id FROM Case WHERE SystemModstamp > '2024-01-01'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Case WHERE IsDeleted = 'true'",
            "INVALID_FIELD",
            "must be of type boolean",
        ),
        (
            "SELECT Id FROM Case WHERE Subject = 5",
            "INVALID_FIELD",
            "must be of type string and should be enclosed in quotes",
        ),
        ("SELECT Id FROM Case WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "nope"),
        ("SELECT Id FROM Case WHERE IsDeleted > false", "INVALID_QUERY_FILTER_OPERATOR", ""),
        ("SELECT Id FROM Case WHERE Subject < null", "INVALID_QUERY_FILTER_OPERATOR", "null"),
        ("SELECT Id FROM Case WHERE Id LIKE '5%'", "INVALID_QUERY_FILTER_OPERATOR", "LIKE"),
        ("SELECT Id FROM Case OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
    ],
    ids=[
        "unknown-field",
        "unknown-object",
        "relationship",
        "duplicate-field",
        "filter-textarea",
        "sort-textarea",
        "quoted-datetime",
        "quoted-boolean",
        "unquoted-string",
        "bad-id",
        "boolean-ordering",
        "ordering-null",
        "like-on-id",
        "offset-too-big",
    ],
)
def test_queries_are_checked_against_the_schema(soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SoqlError) as caught:
        compile_query(parse(soql), SCHEMA, normalize_id=_normalize)
    assert caught.value.code == code
    assert fragment in caught.value.message


def test_names_are_case_insensitive_and_come_back_canonical() -> None:
    compiled = compile_query(parse("select id, SUBJECT from case"), SCHEMA)
    assert compiled.sobject == "Case"
    assert compiled.fields == ("Id", "Subject")
    assert compiled.project(ROWS[0]) == {"Id": _id(1), "Subject": "Printer on fire"}


# -- evaluation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Status = 'new'", ["1", "4"]),
        ("Status != 'New'", ["2", "3"]),
        ("Subject = null", ["4"]),
        ("Subject != null", ["1", "2", "3"]),
        ("OwnerId != null", ["1", "3"]),
        ("Subject != 'printer on fire'", ["2", "3", "4"]),
        ("IsDeleted = true", ["2"]),
        ("NOT IsDeleted = true", ["1", "3", "4"]),
        ("SystemModstamp >= 2024-01-01T00:00:01Z", ["2", "3", "4"]),
        ("SystemModstamp > 2024-01-01T00:00:01.000+0000", ["3", "4"]),
        ("SystemModstamp < 2023-12-31T21:00:01-03:00", ["1"]),
        ("SystemModstamp <= 2024-01-01T00:00:00Z", ["1"]),
        ("Id = '500000000000003'", ["3"]),
        ("Id IN ('500000000000001AAA', '500000000000004AAA')", ["1", "4"]),
        ("Id NOT IN ('500000000000001AAA')", ["2", "3", "4"]),
        ("Id > '500000000000002AAA'", ["3", "4"]),
        ("Status IN ('Working', null)", ["3"]),
        ("Subject IN ('x', null)", ["4"]),
        ("Subject LIKE 'printer%'", ["1", "2"]),
        ("Subject LIKE '%on_fire'", ["1"]),
        (r"Subject LIKE '%100\%%'", ["3"]),
        (r"Subject = 'It\'s 100% broken'", ["3"]),
        ("Subject LIKE 'It_s%' AND Status = 'Working'", ["3"]),
        ("(Status = 'New' OR Status = 'Closed') AND IsDeleted = false", ["1", "4"]),
        ("Status = 'Closed' OR (Status = 'New' AND Subject = null)", ["2", "4"]),
        ("NOT (Status = 'New' OR IsDeleted = true)", ["3"]),
    ],
)
def test_where_clauses_select_rows_like_salesforce(where: str, expected: list[str]) -> None:
    assert run(f"SELECT Id FROM Case WHERE {where}") == expected


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("ORDER BY Subject", ["4", "3", "2", "1"]),  # case-insensitive, nulls first
        ("ORDER BY Subject DESC", ["1", "2", "3", "4"]),  # nulls last
        ("ORDER BY Subject ASC NULLS LAST", ["3", "2", "1", "4"]),
        ("ORDER BY SystemModstamp DESC, Id DESC", ["4", "3", "2", "1"]),
        ("ORDER BY SystemModstamp, Id", ["1", "2", "3", "4"]),
        ("ORDER BY OwnerId DESC NULLS FIRST, Id", ["2", "4", "1", "3"]),
        ("ORDER BY Id LIMIT 2", ["1", "2"]),
        ("ORDER BY Id LIMIT 2 OFFSET 3", ["4"]),
        ("LIMIT 0", []),
    ],
)
def test_order_limit_and_offset(tail: str, expected: list[str]) -> None:
    assert run(f"SELECT Id FROM Case {tail}") == expected


def test_datetime_literals_in_every_salesforce_form() -> None:
    assert parse_datetime_literal("2024-01-01T00:00:00Z") == T0
    assert parse_datetime_literal("2024-01-01T00:00:00.000+0000") == T0
    assert parse_datetime_literal("2024-01-01T02:00:00+02:00") == T0
    assert parse_datetime_literal("2024-01-01T00:00:00.5Z") == T0 + timedelta(milliseconds=500)
    with pytest.raises(ValueError, match="not a SOQL datetime"):
        parse_datetime_literal("2024-01-01")


def test_datetimes_are_rendered_in_salesforces_wire_format() -> None:
    moment = datetime(2013, 5, 20, 17, 49, 32, 123_999, tzinfo=timezone(timedelta(hours=-3)))
    assert format_datetime(moment) == "2013-05-20T20:49:32.123+0000"


MIXED = [{"Id": i} for i in ("500aaa", "500Abb", "500acc", "500Bdd")]


def _order(*, fold_ids: bool, soql: str = "SELECT Id FROM Case ORDER BY Id") -> list[str]:
    compiled = compile_query(parse(soql), SCHEMA, fold_ids=fold_ids)
    return [row["Id"] for row in compiled.run(MIXED)]


def test_ids_sort_and_compare_case_insensitively_unless_told_otherwise() -> None:
    assert _order(fold_ids=True) == ["500aaa", "500Abb", "500acc", "500Bdd"]
    assert _order(fold_ids=False) == ["500Abb", "500Bdd", "500aaa", "500acc"]
    after = "SELECT Id FROM Case WHERE Id > '500abb' ORDER BY Id"
    assert _order(fold_ids=True, soql=after) == ["500acc", "500Bdd"]


@pytest.mark.parametrize(
    ("tail", "scanned"),
    [
        ("", 4),
        ("WHERE IsDeleted = FALSE", 3),
        ("ORDER BY Id LIMIT 2", 2),  # the Id index stops the scan at the rows returned
        ("ORDER BY SystemModstamp LIMIT 1 OFFSET 1", 2),
        ("ORDER BY Subject LIMIT 1", 4),  # no index on Subject: every match is sorted
        ("LIMIT 1", 4),
    ],
)
def test_execute_says_how_many_rows_a_query_scanned(tail: str, scanned: int) -> None:
    compiled = compile_query(parse(f"SELECT Id FROM Case {tail}"), SCHEMA)
    assert compiled.execute(ROWS)[1] == scanned
