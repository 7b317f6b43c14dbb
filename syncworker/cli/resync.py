"""`syncworker resync`: sync records again through the normal path, queued or as a dry run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import Progress

from syncworker.cli.budget import _stopped, _waiting_runtime
from syncworker.cli.common import OperatorError, _database, _redis, console
from syncworker.connectors.crm_ids import canonical_crm_id
from syncworker.connectors.errors import RemoteError
from syncworker.model import Side
from syncworker.ratelimit import background_priority

# Syncs queued at once while a listing is read: progress shows, and a stop keeps what was queued.
QUEUE_PAGE = 100


def register(app: typer.Typer) -> None:
    app.command()(resync)


def _instant(value: str) -> datetime:
    """ISO 8601 as operators paste it (`2026-01-01`, `…T10:00:00Z`, `…+00:00`); naive is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
            crm_id = canonical_crm_id(crm_id)
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
