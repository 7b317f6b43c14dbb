"""`syncworker status`: links by state, backlog, cursor lag, dead letters, the comment sweep,
runs, budgets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from syncworker.cli.common import _database, console
from syncworker.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command()(status)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Links by state, backlog, cursor lag, dead letters, comment sweep, last runs, rate budget.

    Examples: `syncworker status`, `syncworker status --json | jq .backlog`.
    """
    from syncworker.runtime import build_gates
    from syncworker.status import collect_status

    settings = get_settings()
    _database()
    report = collect_status(
        settings.database_url, now=datetime.now(UTC), gates=build_gates(settings)
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    table = Table("what", "value", title="syncworker status")
    for state, count in sorted(report.links.items()):
        table.add_row(f"links {state}", str(count))
    table.add_row("backlog (syncs queued)", str(report.backlog))
    for side, lag in report.cursor_lag_seconds.items():
        table.add_row(f"cursor lag {side}", "never polled" if lag is None else f"{lag:.0f} s")
    table.add_row("dead letters open", str(report.dead_letters_open))
    table.add_row("comment sweep", _sweep_line(report.comment_sweep))
    for name, budget in report.rate_budget.items():
        table.add_row(f"rate budget {name}", json.dumps(budget))
    for run in report.last_runs:
        table.add_row(
            f"run {run['kind']} {run['side'] or ''}", f"{run['started_at']} {run['counts']}"
        )
    for error in report.last_errors:
        table.add_row(
            f"error {error['side']} {error['record_id']}",
            f"{error['last_seen'][:19]} dead letter {error['dead_letter']} ({error['status']}): "
            f"{error['message']}",
        )
    console.print(table)


def _sweep_line(sweep: dict[str, Any]) -> str:
    """How far behind Zenvia's comment sweep is: a comment added in Zenvia waits its turn."""
    tickets = f"{sweep['open_tickets']} open ticket(s)"
    if not sweep["due"]:
        return f"{tickets}, none due"
    waited = sweep["oldest_due_seconds"] / 60
    return f"{sweep['due']} of {tickets} due, the oldest for {waited:.0f} min"
