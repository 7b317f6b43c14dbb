"""Operator commands: database, resync, status, dead letters, links, mapping check."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlmodel import Session

from syncworker.connectors.errors import RateLimitedError, RemoteError
from syncworker.connectors.salesforce_ids import to_id18
from syncworker.mapping import Mapping
from syncworker.model import Side
from syncworker.ratelimit import SharedGate, background_priority
from syncworker.settings import get_settings
from syncworker.store import repo
from syncworker.store.db import check_database, session_scope
from syncworker.store.tables import DeadLetterStatus, Link

if TYPE_CHECKING:
    from syncworker.context import Runtime

console = Console()
# Syncs queued at once while a listing is read: progress shows, and a stop keeps what was queued.
QUEUE_PAGE = 100
# What `links show` tries a bare argument as; a `kind:` prefix picks one.
LOOKUPS = ("link", "crm", "zenvia")


class OperatorError(Exception):
    """An operator asked for something that does not exist or cannot be done."""


db_app = typer.Typer(help="The mapping database.\n\nExample: `syncworker db upgrade`.")
letters_app = typer.Typer(
    help="Operations that failed for good, kept for an operator.\n\n"
    "Example: `syncworker dead-letters list`."
)
links_app = typer.Typer(
    help="Links between CRM cases and Zenvia tickets.\n\n"
    "Example: `syncworker links show 500xx0000001AbC`."
)
mapping_app = typer.Typer(
    help="The field mapping file.\n\nExample: `syncworker mapping check mapping.yaml`."
)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(letters_app, name="dead-letters")
    app.add_typer(links_app, name="links")
    app.add_typer(mapping_app, name="mapping")
    app.command()(resync)
    app.command()(status)


def _mapping() -> Mapping:
    from syncworker.mapping import load, load_default

    path = get_settings().mapping_file
    return load(path) if path else load_default()


def _database() -> str:
    url = get_settings().database_url
    check_database(url)
    return url


def _redis() -> None:
    """Fail at once, in one line, when the broker or the shared Redis does not answer
    (Celery would otherwise retry for many seconds and end in a traceback)."""
    import redis

    settings = get_settings()
    for url in dict.fromkeys((settings.broker_url, settings.effective_redis_url)):
        if url.startswith("memory://"):
            continue
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()


def _instant(value: str) -> datetime:
    """ISO 8601 as operators paste it (`2026-01-01`, `…T10:00:00Z`, `…+00:00`); naive is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


def resync(
    crm_id: Annotated[str | None, typer.Option(help="One CRM case id.")] = None,
    zenvia_id: Annotated[str | None, typer.Option(help="One Zenvia ticket id.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            parser=_instant, metavar="ISO", help="Every record changed since (ISO 8601, UTC)."
        ),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every record on both sides.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print each pair's plan; write nothing.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until every sync finished.")] = False,
) -> None:
    """Sync records again through the normal path.

    Examples: `syncworker resync --crm-id 500xx0000001AbC --dry-run`,
    `syncworker resync --since 2026-01-01T00:00:00 --wait`, `syncworker resync --all`.
    """
    if sum(bool(x) for x in (crm_id, zenvia_id, since, everything)) != 1:
        raise typer.BadParameter("give exactly one of --crm-id, --zenvia-id, --since, --all")
    if crm_id:
        try:
            crm_id = to_id18(crm_id)
        except ValueError as malformed:
            raise typer.BadParameter(f"--crm-id: {malformed}") from None
    from syncworker import sync
    from syncworker.tasks import get_runtime

    _database()
    _redis()
    rt = _waiting_runtime(get_runtime())
    targets = sync.resync_targets(
        rt, crm_id=crm_id, zenvia_id=zenvia_id, since=since, everything=everything
    )
    done = 0
    results: list[Any] = []
    try:
        # Listing is background work, as a poll is: the syncs keep their share of each window.
        with background_priority():
            if dry_run:
                for side, record_id in targets:
                    outcome = sync.sync_record(rt, side, record_id, dry_run=True)
                    console.print(f"[bold]{side} {record_id}[/] (link {outcome.link_id})")
                    for line in outcome.plan_lines or [outcome.skipped or "nothing to do"]:
                        console.print(f"  {line}")
                    done += 1
                return
            for page in _pages(targets):
                results += _queue(page)
                done = len(results)
                if done >= QUEUE_PAGE:
                    typer.echo(f"queued {done} sync(s) so far")
    except RemoteError as error:
        what = "planned" if dry_run else "queued"
        raise OperatorError(_stopped(error, f"after {done} sync(s) {what}")) from None
    typer.echo(f"queued {len(results)} sync(s)")
    if wait:
        _wait_for(results)


def _pages(targets: Iterator[tuple[Side, str]]) -> Iterator[list[tuple[Side, str]]]:
    while page := list(itertools.islice(targets, QUEUE_PAGE)):
        yield page


def _queue(page: list[tuple[Side, str]]) -> list[Any]:
    from syncworker.tasks import sync

    return [
        sync.apply_async(args=(side, record_id, 0, True), queue="sync") for side, record_id in page
    ]


def _stopped(error: RemoteError, progress: str) -> str:
    """The line that ends a command a remote stopped: how far it got, when to run it again."""
    line = f"stopped by {error.describe()} {progress}"
    if isinstance(error, RateLimitedError):
        again = datetime.now(UTC) + timedelta(seconds=error.retry_after)
        line += f"; run the same command again after {again:%H:%M:%S} UTC"
        if error.remote == "zenvia":
            line += " or after Zenvia's business hours, when it does not limit"
        line += " (a record synced twice is not harmed)"
    return line


class _WaitingGate(SharedGate):
    """The shared gate for an operator's command: a spent window is waited out (a line says
    so) instead of ending the command; a longer wait (a 429's block, a daily quota) still
    raises. Workers never wait: this gate exists only in the command's process."""

    longest_wait = 0.0

    def before_request(self, endpoint: str) -> None:
        while True:
            try:
                super().before_request(endpoint)
            except RateLimitedError as error:
                if error.retry_after > self.longest_wait:
                    raise
                console.print(
                    f"{self.remote} request budget spent ({error.describe()}): "
                    f"waiting {error.retry_after:.0f} s",
                    style="yellow",
                )
                time.sleep(error.retry_after)
            else:
                return


def _waiting_runtime(rt: Runtime) -> Runtime:
    """`rt` with gates that wait out one budget window (`_WaitingGate`)."""
    from syncworker.runtime import _closed_zenvia, build_connectors

    gates: dict[Side, SharedGate] = {}
    for side, gate in rt.gates.items():
        waiting = _WaitingGate(
            remote=gate.remote,
            redis_url=rt.settings.effective_redis_url,
            window=gate.window,
            quota=gate.quota,
            clock=gate.clock,
        )
        waiting.longest_wait = rt.settings.zenvia_rate_window_seconds + 1
        gates[side] = waiting
    connectors = build_connectors(
        rt.settings,
        gates,
        zenvia_closed=_closed_zenvia(rt.mapping),
        crm_fields=rt.mapping.lookup_fields("crm"),
    )
    return dataclasses.replace(rt, gates=gates, connectors=connectors)


def _wait_for(results: list[Any]) -> None:
    with Progress(console=console) as progress:
        task = progress.add_task("syncing", total=len(results))
        while True:
            done = sum(result.ready() for result in results)
            progress.update(task, completed=done)
            if done == len(results):
                break
            time.sleep(0.5)
    # A permanent error is not a task failure: the sync returns the dead letter it parked.
    failed = [r for r in results if r.failed() or "dead_letter" in _as_dict(r.result)]
    if failed:
        raise OperatorError(f"{len(failed)} sync(s) failed; see `syncworker dead-letters list`")


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Links by state, backlog, cursor lag, dead letters, last runs, rate budget.

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


RECORD_HELP = (
    "A link id, CRM case id or Zenvia ticket id; prefix it with `link:`, `crm:` "
    "or `zenvia:` when a number could be more than one of them."
)


def _case_id(value: str) -> str:
    """A case id as Salesforce returns it (18 characters): a 15-character one names the same
    case; anything else is looked up as written."""
    try:
        return to_id18(value)
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


@mapping_app.command("check")
def mapping_check(path: Path) -> None:
    """Validate a mapping file and summarise it.

    Example: `syncworker mapping check mapping.yaml`.
    """
    from syncworker.mapping import load
    from syncworker.preflight import normalised_note, owner_ids_named

    mapping = load(path)
    typer.echo(f"{path}: OK ({len(mapping.fields)} fields, crm system {mapping.crm_system})")
    for owner in owner_ids_named(mapping):
        if owner.normalised:
            typer.echo(f"  {normalised_note(owner)}")
