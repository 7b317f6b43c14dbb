"""`syncworker demo`: a live two-way sync on the embedded default, nothing to install or run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    cases: Annotated[int, typer.Option(min=0, help="Cases to seed in the CRM sandbox.")] = 20,
    tickets: Annotated[int, typer.Option(min=0, help="Zenvia tickets to seed.")] = 20,
    rounds: Annotated[int, typer.Option(min=0, help="Rounds of human edits and comments.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for the sandboxes and the human edits.")] = 7,
    keep_db: Annotated[
        Path | None,
        typer.Option(help="Keep the SQLite mapping database here (a new file; its log beside)."),
    ] = None,
) -> None:
    """Run the real Celery machinery in one process against both sandboxes, then check that
    the CRM and Zenvia sandboxes converged. Needs no Postgres, Redis or credentials; ignores every
    `SYNCWORKER_*` variable. Exit code 0 only when both sides agree.

    Example: `syncworker demo --cases 50 --tickets 50 --rounds 6 --seed 3`.
    """
    from rich.console import Console

    from syncworker.sandbox.demo import DemoOptions, run

    if keep_db is not None and keep_db.exists():
        raise typer.BadParameter(f"{keep_db} exists; the demo starts from an empty database")
    options = DemoOptions(cases=cases, tickets=tickets, rounds=rounds, seed=seed, keep_db=keep_db)
    raise typer.Exit(run(options, Console()))
