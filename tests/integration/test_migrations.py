"""The schema exists only through migrations, and the migrations match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import syncworker.store.tables  # noqa: F401 - registers the tables
from syncworker.store import migrate
from tests.conftest import create_throwaway_database, drop_database

TABLES = {
    "links",
    "cursors",
    "intents",
    "observations",
    "comment_links",
    "link_history",
    "dead_letters",
    "sync_runs",
}


def test_autogenerate_finds_no_difference_between_models_and_migrations(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_upgrade_downgrade_upgrade_round_trips_on_postgres() -> None:
    name, url = create_throwaway_database("syncworker_roundtrip")
    try:
        migrate.upgrade(url)
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
        migrate.downgrade(url, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert migrate.current_revision(url) == migrate.head_revision(url)
        engine.dispose()
    finally:
        from syncworker.store.db import reset_engines

        reset_engines()
        drop_database(name)


def test_the_same_migrations_build_the_sqlite_schema(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()
