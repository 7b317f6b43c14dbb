"""`syncworker check`: the pre-flight a new user runs before `worker` and `beat`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from syncworker import preflight

COLOURS = {"ok": "green", "warn": "yellow", "fail": "red"}


def register(app: typer.Typer) -> None:
    app.command()(check)


def check(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Check settings, Postgres, Redis, the CRM and the Zenvia account against the mapping,
    writing nothing anywhere; exit code 1 when anything blocks syncing.

    Reads the CRM's metadata (a handful of requests) and one Zenvia listing page
    (1 request of the rate budget). Zenvia ids absent from that page cannot be verified:
    Zenvia v2 lists no statuses, categories, urgencies or agents.

    Examples: `syncworker check`, `syncworker check --json | jq '.items[] | select(.status
    != "ok")'`.
    """
    from syncworker.preflight_probes import run_checks

    checklist = run_checks()
    if as_json:
        typer.echo(json.dumps(checklist.as_dict(), indent=2, ensure_ascii=False))
    else:
        console = Console(highlight=False)
        for item, line in preflight.lines(checklist):
            console.print(f"[{COLOURS[item.status]}]{escape(line)}[/]", soft_wrap=True)
            if item.fix:
                console.print(f"    fix: {escape(item.fix)}", soft_wrap=True)
        verdict = "blocked: fix each ✗ above" if checklist.blocked else "ready"
        console.print(f"{verdict} ({checklist.zenvia_requests} Zenvia request(s) spent)")
    if checklist.blocked:
        raise typer.Exit(1)
