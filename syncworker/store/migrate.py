"""Run Alembic from code: `syncworker db upgrade`, the demo and the tests use the same path."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from syncworker.store.db import get_engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    """The checkout's alembic.ini, or the working directory's (the Docker image's /app)."""
    candidates = (PROJECT_ROOT / "alembic.ini", Path.cwd() / "alembic.ini")
    ini = next((path for path in candidates if path.exists()), None)
    if ini is None:
        raise FileNotFoundError(
            "alembic.ini not found in the syncworker checkout or the working directory; "
            "run migrations from the project directory (the Docker image uses /app)"
        )
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    with get_engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
