"""`syncworker dead-letters`: list, show, retry and discard operations that failed for good."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from syncworker.cli.common import OperatorError, _database, _redis, console
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import DeadLetterStatus

letters_app = typer.Typer(
    help="Operations that failed for good, kept for an operator.\n\n"
    "Example: `syncworker dead-letters list`."
)


def register(app: typer.Typer) -> None:
    app.add_typer(letters_app, name="dead-letters")


@letters_app.command("list")
def letters_list(
    show_all: Annotated[
        bool, typer.Option("--all", help="Include replayed and discarded.")
    ] = False,
) -> None:
    """List dead letters. Example: `syncworker dead-letters list`."""
    with session_scope(_database()) as session:
        letters = repo.list_dead_letters(
            session, status=None if show_all else DeadLetterStatus.OPEN
        )
        table = Table(
            "id", "status", "side", "record", "operation", "attempts", "last seen", "message"
        )
        for letter in letters:
            table.add_row(
                str(letter.id),
                letter.status,
                letter.side,
                letter.record_id,
                letter.operation,
                str(letter.attempts),
                letter.last_seen.isoformat(timespec="seconds"),
                letter.message,
            )
    console.print(table)


@letters_app.command("show")
def letters_show(letter_id: int) -> None:
    """Show one dead letter in full. Example: `syncworker dead-letters show 12`."""
    with session_scope(_database()) as session:
        letter = repo.get_dead_letter(session, letter_id)
        if letter is None:
            raise OperatorError(f"no dead letter with id {letter_id}")
        typer.echo(json.dumps(letter.model_dump(mode="json"), indent=2))


@letters_app.command("retry")
def letters_retry(letter_id: int) -> None:
    """Replay a dead letter through the normal sync path.

    Example: `syncworker dead-letters retry 12`.
    """
    from syncworker import dead_letters
    from syncworker.tasks import enqueue_sync

    database = _database()
    _redis()
    try:
        side, record_id = dead_letters.replay(database, letter_id, enqueue_sync)
    except LookupError as unknown:
        raise OperatorError(str(unknown)) from None
    typer.echo(f"replaying dead letter {letter_id}: sync of {side} {record_id} queued")


@letters_app.command("discard")
def letters_discard(letter_id: int) -> None:
    """Stop tracking a dead letter. Example: `syncworker dead-letters discard 12`."""
    with session_scope(_database()) as session:
        if repo.get_dead_letter(session, letter_id) is None:
            raise OperatorError(f"no dead letter with id {letter_id}")
        repo.close_dead_letter(session, letter_id=letter_id, status=DeadLetterStatus.DISCARDED)
    typer.echo(f"discarded dead letter {letter_id}")
