"""`syncworker db`: the mapping database's migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from syncworker.cli.common import _database

db_app = typer.Typer(help="The mapping database.\n\nExample: `syncworker db upgrade`.")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations. Example: `syncworker db upgrade`."""
    from syncworker.store import migrate

    url = _database()
    migrate.upgrade(url, revision)
    typer.echo(f"database at revision {migrate.current_revision(url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head. Example: `syncworker db current`."""
    from syncworker.store import migrate

    url = _database()
    current, head = migrate.current_revision(url), migrate.head_revision(url)
    typer.echo(f"current: {current or '(empty database)'}\nhead:    {head}")
    if current != head:
        raise typer.Exit(1)
