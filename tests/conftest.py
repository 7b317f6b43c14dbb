"""Shared fixtures: a throw-away Postgres database migrated by Alembic, real Redis, sandboxes.

Each test gets a session inside a transaction that is rolled back afterwards, so tests can
share one database without cleaning up; tests that need committed data across processes
(Celery workers) use `committed_database_url` and unique ids instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import create_engine
from sqlmodel import Session

from syncworker.store import migrate

ADMIN_URL = os.environ.get(
    "SYNCWORKER_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SYNCWORKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _database_url(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def create_throwaway_database(prefix: str = "syncworker_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, _database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh Postgres database for this test session, migrated to head by Alembic."""
    name, url = create_throwaway_database()
    migrate.upgrade(url)
    yield url
    from syncworker.store.db import reset_engines

    reset_engines()
    drop_database(name)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session whose work is rolled back after the test (savepoints allow inner rollbacks)."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as db:
            yield db
        transaction.rollback()
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'mapping.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database of its own, emptied before and after each test."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


def unique_id(prefix: str = "") -> str:
    """Ids that never collide between tests sharing one database."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"
