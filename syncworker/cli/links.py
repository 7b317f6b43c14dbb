"""`syncworker links`: find a link by any of its ids, show it and its history, settle its
conflicts, restore it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlmodel import Session

from syncworker.cli.budget import _stopped, _waiting_runtime
from syncworker.cli.common import OperatorError, _database, console
from syncworker.connectors.crm_ids import canonical_crm_id
from syncworker.connectors.errors import RemoteError
from syncworker.mapping import Mapping
from syncworker.model import Side
from syncworker.settings import get_settings
from syncworker.store import repo
from syncworker.store.db import session_scope
from syncworker.store.tables import Link

# What `links show` tries a bare argument as; a `kind:` prefix picks one.
LOOKUPS = ("link", "crm", "zenvia")

links_app = typer.Typer(
    help="Links between CRM cases and Zenvia tickets.\n\n"
    "Example: `syncworker links show 500xx0000001AbC`."
)


def register(app: typer.Typer) -> None:
    app.add_typer(links_app, name="links")


def _mapping() -> Mapping:
    from syncworker.mapping import load, load_default

    settings = get_settings()
    return load(settings.mapping_file) if settings.mapping_file else load_default(settings.crm)


RECORD_HELP = (
    "A link id, CRM case id or Zenvia ticket id; prefix it with `link:`, `crm:` "
    "or `zenvia:` when a number could be more than one of them."
)


def _case_id(value: str) -> str:
    """A case id as the CRM returns it (18 characters): a 15-character one names the same
    case; anything else is looked up as written."""
    try:
        return canonical_crm_id(value)
    except ValueError:
        return value


def _find_link(session: Session, record: str) -> Link:
    """The one link `record` names (see RECORD_HELP); never a guess between two."""
    crm_system = _mapping().crm_system
    prefix, _, rest = record.partition(":")
    kinds = (prefix,) if rest and prefix in LOOKUPS else LOOKUPS
    value = rest if len(kinds) == 1 else record
    found: dict[int, Link] = {}
    named: dict[int, str] = {}
    for kind in kinds:
        if kind == "link":
            link = repo.get_link(session, int(value)) if value.isdigit() else None
        else:
            side: Side = "crm" if kind == "crm" else "zenvia"
            remote_id = _case_id(value) if side == "crm" else value
            link = repo.find_link(session, side=side, remote_id=remote_id, crm_system=crm_system)
        if link is not None and link.id is not None:
            found.setdefault(link.id, link)
            named.setdefault(link.id, f"{kind}:{value}")
    if not found:
        raise OperatorError(f"no link for {record!r} (tried {', '.join(kinds)} ids)")
    if len(found) > 1:
        # Zenvia ticket ids and link ids are both small numbers: never guess which one.
        choices = ", ".join(f"{named[i]} (link {i})" for i in sorted(found))
        raise OperatorError(f"{record!r} names more than one link: {choices}; say which")
    (link,) = found.values()
    return link


@links_app.command("show")
def links_show(record: Annotated[str, typer.Argument(help=RECORD_HELP)]) -> None:
    """Show a link with its baselines and comment pairs.

    Examples: `syncworker links show 500xx0000001AbC`, `syncworker links show zenvia:1234`,
    `syncworker links show link:42`.
    """
    with session_scope(_database()) as session:
        link = _find_link(session, record)
        assert link.id is not None
        data = link.model_dump(mode="json")
        data["comment_links"] = [
            c.model_dump(mode="json", include={"crm_comment_id", "zenvia_comment_id", "origin"})
            for c in repo.comment_links_for(session, link_id=link.id)
        ]
    typer.echo(json.dumps(data, indent=2))


@links_app.command("history")
def links_history(
    record: Annotated[str, typer.Argument(help=RECORD_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """What each sync did to a pair, oldest first: fields written (old → new, per side),
    comments copied, creates, conflicts (policy and winner), state changes and errors with
    the remote's message. Kept for SYNCWORKER_HISTORY_RETENTION_DAYS (default 90).

    Examples: `syncworker links history 500xx0000001AbC`,
    `syncworker links history zenvia:1234 --json | jq '.[] | select(.kind == "error")'`.
    """
    from syncworker.history import rows_for_display

    with session_scope(_database()) as session:
        link = _find_link(session, record)
        assert link.id is not None
        rows = rows_for_display(repo.history_of(session, link_id=link.id))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    title = f"history of link {link.id} (crm {link.crm_id} ↔ zenvia {link.zenvia_id})"
    table = Table("when (UTC)", "what", "side", "record", "field", "change", "detail", title=title)
    for row in rows:
        table.add_row(
            str(row["at"])[:19].replace("T", " "),
            row["kind"],
            row["side"] or "",
            row["record_id"] or "",
            row["field"] or "",
            _change(row["old"], row["new"]),
            row["detail"],
        )
    console.print(table if rows else f"no history kept for link {link.id}")


def _change(old: Any, new: Any) -> str:
    if old is None and new is None:
        return ""
    if old is None:
        return json.dumps(new, ensure_ascii=False)
    return f"{json.dumps(old, ensure_ascii=False)} → {json.dumps(new, ensure_ascii=False)}"


@links_app.command("resolve")
def links_resolve(
    link_id: Annotated[int, typer.Argument(help="The link parked in conflict.")],
    field: Annotated[list[str], typer.Option("--field", help="Canonical field to settle.")],
    winner: Annotated[str, typer.Option(help="The side whose value wins: crm or zenvia.")],
    dry_run: Annotated[bool, typer.Option(help="Print the plan; write nothing.")] = False,
) -> None:
    """Settle fields parked in a `manual` conflict by naming the side that wins.

    Example: `syncworker links resolve 42 --field subject --winner zenvia`.
    """
    if winner not in ("crm", "zenvia"):
        raise typer.BadParameter("--winner must be crm or zenvia")
    from syncworker import sync
    from syncworker.tasks import get_runtime

    _database()
    side: Side = "crm" if winner == "crm" else "zenvia"
    try:
        outcome = sync.resolve_conflict(
            _waiting_runtime(get_runtime()), link_id, dict.fromkeys(field, side), dry_run=dry_run
        )
    except RemoteError as error:
        raise OperatorError(_stopped(error, f"before link {link_id} was settled")) from None
    for line in outcome.plan_lines:
        console.print(f"  {line}")
    console.print(f"link {link_id} is now {outcome.state}")


@links_app.command("restore")
def links_restore(
    link_id: Annotated[int, typer.Argument(help="The link orphaned or marked missing.")],
) -> None:
    """Put back a link that was orphaned or marked missing by mistake, and sync it now.

    A record that still answers 404 marks the link missing again, with the remote's message.
    Example: `syncworker links restore 42`.
    """
    from syncworker import sync
    from syncworker.connectors.errors import NotFoundError
    from syncworker.tasks import get_runtime

    _database()
    try:
        outcome = sync.restore_link(get_runtime(), link_id)
    except (LookupError, NotFoundError) as refused:
        raise OperatorError(str(refused)) from None
    for line in outcome.plan_lines:
        console.print(f"  {line}")
    console.print(f"link {link_id} is now {outcome.state}")
