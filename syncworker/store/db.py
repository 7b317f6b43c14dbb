"""Database engines and sessions, created lazily per process (never at import time).

Celery's prefork workers fork after import; an engine created before the fork would share
sockets between children. `reset_engines()` runs on `worker_process_init`.

A pooled connection idle for more than a moment (`PING_AFTER_IDLE_SECONDS`) is pinged before
use, so a database restarted meanwhile is noticed before the caller's first statement. A
worker running syncs back to back reuses its connection within milliseconds and pays no ping
(one round trip per transaction); a restart in that instant fails the next statement instead:
SQLAlchemy drops the pool's connections and the sync retries (`tasks.INFRASTRUCTURE_ERRORS`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlmodel import Session, create_engine, text

PING_AFTER_IDLE_SECONDS = 0.05

_engines: dict[str, Engine] = {}


class DatabaseUnavailable(Exception):
    """The mapping database cannot be reached; the message says where and why."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on, WAL so the demo's threads can read while one writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def get_engine(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_size=5, max_overflow=5)
            _ping_after_idle(engine)
        _engines[url] = engine
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout only if it sat idle (see the module docstring)."""

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the pool reconnects and retries
            raise InvalidatePoolError(f"pooled connection is dead: {exc}") from exc

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def reset_engines() -> None:
    """Drop pooled connections inherited from a parent process."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def check_database(url: str) -> None:
    """Raise DatabaseUnavailable with a readable reason when the database does not answer."""
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"cannot reach the mapping database at {redact_url(url)}: {reason}"
        ) from None


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
