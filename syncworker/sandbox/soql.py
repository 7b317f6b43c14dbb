"""The SOQL subset the Salesforce sandbox understands: tokenizer, parser, evaluator.

    SELECT <field> [, ...] FROM <object>
    [WHERE <condition>]          -- =, !=, <>, <, <=, >, >=, [NOT] IN (...), LIKE, NOT, AND, OR, ( )
    [ORDER BY <field> [ASC|DESC] [NULLS FIRST|LAST] [, ...]]
    [LIMIT n] [OFFSET n]

`parse` turns text into a syntax tree (a tokenizer plus a recursive-descent parser) and raises
`SoqlError("MALFORMED_QUERY")` with Salesforce's "ERROR at Row:1:Column:N" message.
`compile_query` checks the tree against a schema (object and field names are case-insensitive,
literals must fit the field's type, long text areas cannot be filtered or sorted) and returns a
`CompiledQuery` that filters, sorts and projects in-memory rows the way Salesforce would:
string equality is case-insensitive, `!=` matches nulls, nulls sort first ascending. Ids sort
and compare case-insensitively unless `fold_ids=False` (Salesforce describes SOQL sorting as
case-insensitive; whether that holds for Id is not confirmed, so the sandbox can play both).
`CompiledQuery.execute` also says how many rows the query scanned, for QUERY_TIMEOUT.

Like SOQL, a condition may not mix AND and OR at one level without parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

__all__ = [
    "And",
    "Comparison",
    "CompiledQuery",
    "FieldType",
    "InList",
    "Like",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "SoqlError",
    "Value",
    "compile_query",
    "format_datetime",
    "parse",
    "parse_datetime_literal",
    "tokenize",
]

FieldType = Literal["id", "reference", "string", "picklist", "textarea", "boolean", "datetime"]
Row = Mapping[str, Any]


class SoqlError(Exception):
    """A query Salesforce refuses; `code` is its errorCode (MALFORMED_QUERY, INVALID_FIELD…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- tokens -------------------------------------------------------------------------------

KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "TRUE",
        "FALSE",
        "NULL",
    }
)

TokenKind = Literal[
    "keyword", "ident", "string", "number", "datetime", "date", "op", "(", ")", ",", "eof"
]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # as written (keywords upper-cased); for strings, the raw text between quotes
    pos: int  # offset into the query text


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:?\d{2})"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![\w-])")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens; the list always ends with an `eof` token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == "'":
            end = i + 1
            while end < n and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise _malformed(text, i, "unterminated string literal")
            raw = text[i + 1 : end]
            _decode_string(raw, text, i)  # validate escapes now, where the position is known
            tokens.append(Token("string", raw, i))
            i = end + 1
            continue
        if char in "(),":
            tokens.append(Token(char, char, i))  # type: ignore[arg-type]
            i += 1
            continue
        operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
        if operator:
            tokens.append(Token("op", "!=" if operator == "<>" else operator, i))
            i += len(operator)
            continue
        if char.isdigit() or (char == "-" and i + 1 < n and text[i + 1].isdigit()):
            for kind, pattern in (("datetime", _DATETIME), ("date", _DATE), ("number", _NUMBER)):
                found = pattern.match(text, i)
                if found:
                    tokens.append(Token(kind, found.group(0), i))  # type: ignore[arg-type]
                    i = found.end()
                    break
            else:
                end = i + 1
                while end < n and not text[end].isspace() and text[end] not in "(),":
                    end += 1
                raise _malformed(text, i, f"unexpected token: '{text[i:end]}'")
            continue
        found = _IDENT.match(text, i)
        if found:
            word = found.group(0)
            if word.upper() in KEYWORDS:
                tokens.append(Token("keyword", word.upper(), i))
            else:
                tokens.append(Token("ident", word, i))
            i = found.end()
            continue
        raise _malformed(text, i, f"unexpected token: '{char}'")
    tokens.append(Token("eof", "", n))
    return tokens


def _decode_string(raw: str, text: str = "", pos: int = 0, *, keep_like: bool = False) -> str:
    """Resolve SOQL escapes; with `keep_like`, `\\%` and `\\_` stay escaped for LIKE."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        following = raw[i + 1 : i + 2]
        if following and following.lower() in _ESCAPES:
            out.append(_ESCAPES[following.lower()])
        elif following and following in "%_":
            out.append("\\" + following if keep_like else following)
        else:
            raise _malformed(
                text or raw, pos + 1 + i, "Invalid string literal: Illegal escape sequence"
            )
        i += 2
    return "".join(out)


def parse_datetime_literal(literal: str) -> datetime:
    """`2024-01-01T00:00:00Z`, `…T00:00:00.000+0000`, `…T00:00:00-03:00` → aware datetime."""
    found = _DATETIME.fullmatch(literal)
    if not found:
        raise ValueError(f"not a SOQL datetime: {literal!r}")
    year, month, day, hour, minute, second, millis, zone = found.groups()
    if zone == "Z":
        tz: timezone = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = timezone(sign * offset)
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int((millis or "0").ljust(3, "0")) * 1000,
        tzinfo=tz,
    ).astimezone(UTC)


# -- syntax tree --------------------------------------------------------------------------

ValueKind = Literal["string", "number", "datetime", "date", "boolean", "null"]


@dataclass(frozen=True)
class Value:
    kind: ValueKind
    text: str  # raw text (for strings: between the quotes, escapes unresolved)
    pos: int


@dataclass(frozen=True)
class FieldRef:
    name: str
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < <= > >=
    value: Value


@dataclass(frozen=True)
class InList:
    field: FieldRef
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    field: FieldRef
    pattern: Value


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Comparison | InList | Like | Not | And | Or


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool = False
    nulls_last: bool | None = None  # None: Salesforce's default for the direction


@dataclass(frozen=True)
class Query:
    text: str
    fields: tuple[FieldRef, ...]
    sobject: FieldRef
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.current
        if token.kind != "eof":
            self.index += 1
        return token

    def at(self, kind: TokenKind) -> bool:
        return self.current.kind == kind

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: TokenKind) -> Token:
        if self.current.kind != kind:
            raise self.unexpected()
        return self.advance()

    def unexpected(self) -> SoqlError:
        token = self.current
        if token.kind == "eof":
            return _malformed(self.text, token.pos, "unexpected end of query")
        shown = f"'{token.text}'" if token.kind == "string" else token.text
        return _malformed(self.text, token.pos, f"unexpected token: {shown}")

    # query := SELECT fields FROM object [WHERE cond] [ORDER BY items] [LIMIT n] [OFFSET n]
    def query(self) -> Query:
        self.expect_keyword("SELECT")
        fields = [self.field()]
        while self.at(","):
            self.advance()
            fields.append(self.field())
        self.expect_keyword("FROM")
        sobject = self.field()
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order_by: list[OrderItem] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order_by.append(self.order_item())
            while self.at(","):
                self.advance()
                order_by.append(self.order_item())
        limit = offset = None
        if self.at_keyword("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at_keyword("OFFSET"):
            self.advance()
            offset = self.integer()
        if not self.at("eof"):
            raise self.unexpected()
        return Query(self.text, tuple(fields), sobject, where, tuple(order_by), limit, offset)

    def field(self) -> FieldRef:
        token = self.expect("ident")
        return FieldRef(token.text, token.pos)

    def integer(self) -> int:
        token = self.current
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    def order_item(self) -> OrderItem:
        field = self.field()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text == "DESC"
        nulls_last = None
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_last = self.advance().text == "LAST"
        return OrderItem(field, descending, nulls_last)

    # condition := unary ((AND | OR) unary)*   -- one connective per level, as in SOQL
    def condition(self) -> Condition:
        operands = [self.unary()]
        connective: str | None = None
        while self.at_keyword("AND", "OR"):
            word = self.current.text
            if connective is not None and word != connective:
                raise self.unexpected()
            connective = word
            self.advance()
            operands.append(self.unary())
        if connective is None:
            return operands[0]
        return And(tuple(operands)) if connective == "AND" else Or(tuple(operands))

    # unary := NOT unary | '(' condition ')' | predicate
    def unary(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.unary())
        if self.at("("):
            self.advance()
            inner = self.condition()
            self.expect(")")
            return inner
        return self.predicate()

    # predicate := field op value | field [NOT] IN '(' value, ... ')' | field LIKE string
    def predicate(self) -> Condition:
        field = self.field()
        if self.at("op"):
            op = self.advance().text
            return Comparison(field, op, self.value())
        negated = False
        if self.at_keyword("NOT"):
            self.advance()
            negated = True
            if not self.at_keyword("IN"):
                raise self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect("(")
            values = [self.value()]
            while self.at(","):
                self.advance()
                values.append(self.value())
            self.expect(")")
            return InList(field, tuple(values), negated)
        if self.at_keyword("LIKE"):
            self.advance()
            token = self.expect("string")
            return Like(field, Value("string", token.text, token.pos))
        raise self.unexpected()

    def value(self) -> Value:
        token = self.current
        if token.kind in ("string", "number", "datetime", "date"):
            self.advance()
            return Value(token.kind, token.text, token.pos)
        if self.at_keyword("TRUE", "FALSE"):
            self.advance()
            return Value("boolean", token.text, token.pos)
        if self.at_keyword("NULL"):
            self.advance()
            return Value("null", token.text, token.pos)
        raise self.unexpected()


def parse(text: str) -> Query:
    """Parse one SOQL query; raises `SoqlError` (MALFORMED_QUERY) on a syntax error."""
    return _Parser(text).query()


# -- evaluation ---------------------------------------------------------------------------

Predicate = Callable[[Row], bool]

# Fields with a standard index that can drive `ORDER BY … LIMIT n` without scanning every match.
INDEXED_SORTS = frozenset({"Id", "CreatedDate", "SystemModstamp"})


@dataclass(frozen=True)
class CompiledQuery:
    """A query checked against a schema, ready to run over rows keyed by canonical names."""

    sobject: str
    fields: tuple[str, ...]
    predicate: Predicate
    order_by: tuple[tuple[str, FieldType, bool, bool], ...]  # name, type, desc, nulls_last
    limit: int | None
    offset: int | None
    fold_ids: bool = True

    def run(self, rows: Iterable[Row]) -> list[Row]:
        """The matching rows, sorted, offset and limited (not yet projected)."""
        return self.execute(rows)[0]

    def execute(self, rows: Iterable[Row]) -> tuple[list[Row], int]:
        """`run`'s rows and how many rows the query scanned: every match, except that a LIMIT
        under an ORDER BY led by an indexed field stops the scan at the rows it returns."""
        selected = [row for row in rows if self.predicate(row)]
        if self.order_by:
            self._sort(selected)
        start = self.offset or 0
        end = None if self.limit is None else start + self.limit
        scanned = len(selected)
        if end is not None and self.order_by and self.order_by[0][0] in INDEXED_SORTS:
            scanned = min(scanned, end)
        return selected[start:end], scanned

    def project(self, row: Row) -> dict[str, Any]:
        return {name: row.get(name) for name in self.fields}

    def _sort(self, rows: list[Row]) -> None:
        """Sort in place by ORDER BY: one stable pass per item, the last item first (as fast as
        a key sort, unlike a comparison function). A null goes first unless NULLS LAST."""
        for name, kind, descending, nulls_last in reversed(self.order_by):
            null_rank = (1 if nulls_last else -1) * (-1 if descending else 1)
            rows.sort(key=self._key(name, kind, null_rank), reverse=descending)

    def _key(self, name: str, kind: FieldType, null_rank: int) -> Callable[[Row], tuple[int, Any]]:
        fold = self.fold_ids

        def key(row: Row) -> tuple[int, Any]:
            value = row.get(name)
            return (null_rank, None) if value is None else (0, _sort_key(kind, value, fold))

        return key


def compile_query(
    query: Query,
    schema: Mapping[str, Mapping[str, FieldType]],
    *,
    normalize_id: Callable[[str], str | None] = lambda value: value,
    fold_ids: bool = True,
) -> CompiledQuery:
    """Check `query` against `schema` ({object: {field: type}}) and build its evaluator.

    `normalize_id` turns an id literal into the stored form (15 → 18 characters) or returns
    None when it is not a valid id; `fold_ids` orders and compares ids case-insensitively.
    """
    objects = {name.lower(): name for name in schema}
    sobject = objects.get(query.sobject.name.lower())
    if sobject is None:
        raise SoqlError(
            "INVALID_TYPE",
            _located(
                query.text,
                query.sobject.pos,
                f"sObject type '{query.sobject.name}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            ),
        )
    compiler = _Compiler(query.text, sobject, schema[sobject], normalize_id, fold_ids)
    names: list[str] = []
    for ref in query.fields:
        name, _ = compiler.resolve(ref)
        if name in names:
            raise _malformed(query.text, ref.pos, f"duplicate field selected: {name}")
        names.append(name)
    predicate = compiler.condition(query.where) if query.where else (lambda row: True)
    order: list[tuple[str, FieldType, bool, bool]] = []
    for item in query.order_by:
        name, kind = compiler.resolve(item.field)
        if kind == "textarea":
            raise compiler.field_error(
                item.field, f"field '{name}' can not be sorted in a query call"
            )
        nulls_last = item.descending if item.nulls_last is None else item.nulls_last
        order.append((name, kind, item.descending, nulls_last))
    if query.offset is not None and query.offset > 2000:
        raise SoqlError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"Maximum SOQL offset allowed is 2000: {query.offset}",
        )
    return CompiledQuery(
        sobject, tuple(names), predicate, tuple(order), query.limit, query.offset, fold_ids
    )


class _Compiler:
    def __init__(
        self,
        text: str,
        sobject: str,
        fields: Mapping[str, FieldType],
        normalize_id: Callable[[str], str | None],
        fold_ids: bool,
    ) -> None:
        self.text = text
        self.fold_ids = fold_ids
        self.sobject = sobject
        self.fields = fields
        self.lookup = {name.lower(): name for name in fields}
        self.normalize_id = normalize_id

    def field_error(self, ref: FieldRef, message: str) -> SoqlError:
        return SoqlError("INVALID_FIELD", _located(self.text, ref.pos, message))

    def resolve(self, ref: FieldRef) -> tuple[str, FieldType]:
        name = self.lookup.get(ref.name.lower())
        if name is None:
            if "." in ref.name:
                message = (
                    f"Didn't understand relationship '{ref.name.split('.')[0]}' in field path. "
                    "(relationship queries are not supported by this sandbox)"
                )
            else:
                message = (
                    f"No such column '{ref.name}' on entity '{self.sobject}'. If you are "
                    "attempting to use a custom field, be sure to append the '__c' after the "
                    "custom field name. Please reference your WSDL or the describe call for "
                    "the appropriate names."
                )
            raise self.field_error(ref, message)
        return name, self.fields[name]

    def condition(self, node: Condition) -> Predicate:
        if isinstance(node, And):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda row: all(part(row) for part in parts)
        if isinstance(node, Or):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda row: any(part(row) for part in parts)
        if isinstance(node, Not):
            inner = self.condition(node.operand)
            return lambda row: not inner(row)
        if isinstance(node, Comparison):
            return self.comparison(node)
        if isinstance(node, InList):
            return self.in_list(node)
        return self.like(node)

    def filterable(self, ref: FieldRef) -> tuple[str, FieldType]:
        name, kind = self.resolve(ref)
        if kind == "textarea":
            raise self.field_error(ref, f"field '{name}' can not be filtered in a query call")
        return name, kind

    def literal(self, name: str, kind: FieldType, value: Value) -> Any:
        """The literal as a stored value of the field's type (None for null)."""
        if value.kind == "null":
            return None
        expected = {
            "id": "string",
            "reference": "string",
            "string": "string",
            "picklist": "string",
            "boolean": "boolean",
            "datetime": "datetime",
        }[kind]
        if value.kind != expected:
            described = {"boolean": "boolean", "datetime": "dateTime"}.get(kind, "string")
            quoted = (
                "should be enclosed in quotes"
                if expected == "string"
                else "should not be enclosed in quotes"
            )
            raise SoqlError(
                "INVALID_FIELD",
                _located(
                    self.text,
                    value.pos,
                    f"value of filter criterion for field '{name}' must be of type "
                    f"{described} and {quoted}",
                ),
            )
        if value.kind == "boolean":
            return value.text == "TRUE"
        if value.kind == "datetime":
            return parse_datetime_literal(value.text)
        text = _decode_string(value.text, self.text, value.pos)
        if kind in ("id", "reference"):
            normalized = self.normalize_id(text)
            if normalized is None:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
            return normalized
        return text

    def comparison(self, node: Comparison) -> Predicate:
        name, kind = self.filterable(node.field)
        expected = self.literal(name, kind, node.value)
        op = node.op
        if expected is None and op not in ("=", "!="):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(self.text, node.value.pos, f"invalid operator on null for field {name}"),
            )
        if kind == "boolean" and op not in ("=", "!="):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(self.text, node.field.pos, f"invalid operator on boolean field {name}"),
            )
        if kind == "picklist" and op not in ("=", "!="):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(self.text, node.field.pos, f"invalid operator on picklist field {name}"),
            )
        key = None if expected is None else _sort_key(kind, expected, self.fold_ids)

        def predicate(row: Row) -> bool:
            actual = row.get(name)
            if expected is None or actual is None:
                same = actual is None and expected is None
                return same if op == "=" else (not same if op == "!=" else False)
            current = _sort_key(kind, actual, self.fold_ids)
            if op == "=":
                return bool(current == key)
            if op == "!=":
                return bool(current != key)
            if op == "<":
                return bool(current < key)
            if op == "<=":
                return bool(current <= key)
            if op == ">":
                return bool(current > key)
            return bool(current >= key)

        return predicate

    def in_list(self, node: InList) -> Predicate:
        name, kind = self.filterable(node.field)
        if kind == "boolean":
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(self.text, node.field.pos, f"invalid operator on boolean field {name}"),
            )
        wanted = [self.literal(name, kind, value) for value in node.values]
        fold = self.fold_ids
        keys = {None if value is None else _sort_key(kind, value, fold) for value in wanted}
        negated = node.negated

        def predicate(row: Row) -> bool:
            actual = row.get(name)
            found = (None if actual is None else _sort_key(kind, actual, fold)) in keys
            return found != negated

        return predicate

    def like(self, node: Like) -> Predicate:
        name, kind = self.filterable(node.field)
        if kind not in ("string", "picklist"):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(self.text, node.field.pos, f"invalid operator on field {name}: LIKE"),
            )
        pattern = _like_regex(
            _decode_string(node.pattern.text, self.text, node.pattern.pos, keep_like=True)
        )

        def predicate(row: Row) -> bool:
            actual = row.get(name)
            return actual is not None and pattern.fullmatch(str(actual)) is not None

        return predicate


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SOQL LIKE: `%` any run, `_` one character, `\\%`/`\\_` literal, case-insensitive."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _sort_key(kind: FieldType, value: Any, fold_ids: bool) -> Any:
    """Text compares case-insensitively in SOQL, ids too when `fold_ids` (18-character ids stay
    distinct: their suffix records the case); booleans and datetimes as they are."""
    text = kind in ("string", "picklist", "textarea") or (fold_ids and kind in ("id", "reference"))
    return value.casefold() if text and isinstance(value, str) else value


def _position(text: str, pos: int) -> tuple[int, int, str]:
    before = text[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    line_end = text.find("\n", pos)
    line = text[line_start : None if line_end == -1 else line_end]
    return row, pos - line_start + 1, line


def _located(text: str, pos: int, message: str) -> str:
    row, column, line = _position(text, pos)
    caret = " " * (column - 1) + "^"
    return f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{message}"


def _malformed(text: str, pos: int, message: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", _located(text, pos, message))


def format_datetime(value: datetime) -> str:
    """Salesforce's wire format: `2013-05-20T20:49:32.000+0000` (UTC, milliseconds)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
