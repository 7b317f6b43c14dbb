"""The SQL every repo module shares: Core statements on the session's transaction, the dialect's
INSERT … ON CONFLICT, and one-parameter id lists on Postgres."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, SQLModel


def _core(
    session: Session, statement: Executable, params: dict[str, Any] | None = None
) -> CursorResult[Any]:
    """Run a Core UPDATE on the session's transaction without the ORM's bulk-update
    bookkeeping (a third of a hot-path statement's cost); pending objects are flushed first,
    as the ORM's autoflush would."""
    session.flush()
    return session.connection().execute(statement, params)


def _insert(session: Session, table: type[SQLModel]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both Postgres and SQLite."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _one_of(session: Session, column: Any, values: Sequence[str]) -> Any:
    """`column IN (values)`; on Postgres `column = ANY(array)`: one parameter, not one per
    value, which halves the cost of a reconcile chunk's 1,000-id lookups."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
