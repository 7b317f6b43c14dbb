"""Going live: `syncworker onboard [--dry-run [--json]] [--now] [--wait]`, `links import`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from syncworker.cli.common import OperatorError, _database, _redis, console
from syncworker.cli.links import links_app

if TYPE_CHECKING:  # the command line starts without loading the service and its connectors
    from syncworker import onboard as onboarding
    from syncworker.context import Runtime

# Exit code of a run refused until someone decides (ambiguous matches, business hours).
NOT_NOW = 3
FOLLOW_SECONDS = 1.0


def register(app: typer.Typer) -> None:
    app.command()(onboard)
    links_app.command("import")(links_import)


def onboard(
    dry_run: Annotated[
        bool,
        typer.Option(help="Print what the first sync will do and what it costs; write nothing."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The dry run's report as JSON.")] = False,
    now: Annotated[
        bool, typer.Option(help="Run even in Zenvia's business hours (live syncs then wait).")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(help="Follow the queued syncs with a progress bar until all finished."),
    ] = False,
    allow_ambiguous: Annotated[
        bool,
        typer.Option(
            help="Run although some records match several: they are neither paired "
            "nor copied now, and the worker's reconcile will copy them as new records later."
        ),
    ] = False,
) -> None:
    """Pair the records that already exist on both sides, then queue the first syncs.

    Run it once, after `syncworker check` and before the worker and beat: first
    `syncworker onboard --dry-run`, then `syncworker onboard` at night (Zenvia's budget is
    unlimited then; in business hours it refuses unless `--now`). Running it again continues
    an interrupted run. Example: `syncworker onboard --dry-run --json`.
    """
    from syncworker import onboard as onboarding

    if as_json and not dry_run:
        raise typer.BadParameter("--json goes with --dry-run (a run reports as it goes)")
    _database()
    _redis()
    progress = Progress(console=console, transient=True, disable=as_json)
    task = progress.add_task("reading both sides", total=None)
    with _patient_runtime(lambda note: progress.update(task, description=note)) as rt:
        with progress:
            plan = onboarding.survey(rt, on_record=lambda: progress.advance(task))
        moment = datetime.now(UTC)
        budget = onboarding.budget_time(rt.settings, plan.zenvia_requests()["total"], moment)
        if as_json:
            typer.echo(json.dumps(onboarding.as_json(plan, budget), indent=2))
        else:
            for line in [*onboarding.lines(plan), *onboarding.describe_budget(budget, moment)]:
                console.print(line, markup=False, highlight=False)
        if not dry_run:
            _refuse_until_decided(plan, budget, now=now, allow_ambiguous=allow_ambiguous)
            started = rt.clock()
            _run(rt, plan)
            if wait:
                _follow(rt, plan, since=started)


def _refuse_until_decided(
    plan: onboarding.Survey, budget: onboarding.BudgetTime, *, now: bool, allow_ambiguous: bool
) -> None:
    if plan.ambiguous and not allow_ambiguous:
        typer.secho(
            "refused: pair the ambiguous records with `syncworker links import FILE` "
            "(or pass --allow-ambiguous)",
            err=True,
        )
        raise typer.Exit(NOT_NOW)
    if budget.limited_now and budget.night_starts and budget.requests and not now:
        typer.secho(
            f"refused: Zenvia's budget is limited now; run it after "
            f"{budget.night_starts:%H:%M %Z} (or pass --now)",
            err=True,
        )
        raise typer.Exit(NOT_NOW)


def _run(rt: Runtime, plan: onboarding.Survey) -> None:
    from syncworker import onboard as onboarding

    with Progress(console=console) as progress:
        task = progress.add_task("linking and queuing", total=len(plan.new_links) + len(plan.steps))
        outcome = onboarding.run(rt, plan, on_step=lambda: progress.advance(task))
    typer.echo(
        f"linked {outcome.linked} pair(s), queued {outcome.queued} sync(s); "
        "start the worker and beat (a second `syncworker onboard` continues an interrupted run)"
    )
    for refusal in outcome.already_linked:
        typer.secho(f"not linked: {refusal}", err=True)


def _follow(rt: Runtime, plan: onboarding.Survey, *, since: datetime) -> None:
    """Until every queued sync committed or was dead-lettered (the worker does the work)."""
    from syncworker import onboard as onboarding

    done = failed = 0
    with Progress(console=console) as progress:
        task = progress.add_task("syncing (the worker must run)", total=len(plan.steps))
        while done < len(plan.steps):
            done, failed = onboarding.finished(rt, plan, since=since)
            progress.update(task, completed=done)
            time.sleep(FOLLOW_SECONDS)
    typer.echo(f"finished {done} sync(s), {failed} failed")
    if failed:
        raise OperatorError(f"{failed} sync(s) failed; see `syncworker dead-letters list`")


@contextmanager
def _patient_runtime(note: Callable[[str], None]) -> Iterator[Runtime]:
    """This process's runtime, with connectors that wait for Zenvia's budget (a person's
    command may; a worker must not), closed afterwards. A remote that still refuses after
    the patience ends the command in one line."""
    from syncworker import onboard as onboarding
    from syncworker.connectors.errors import RateLimitedError
    from syncworker.tasks import get_runtime

    rt = onboarding.patient(
        get_runtime(), on_wait=lambda seconds: note(f"waiting {seconds:.0f} s for Zenvia's budget")
    )
    try:
        yield rt
    except RateLimitedError as limited:
        raise OperatorError(
            f"{limited}; still refused after {onboarding.PATIENCE} waits: "
            f"try again in {limited.retry_after:.0f} s"
        ) from limited
    finally:
        for connector in rt.connectors.values():
            connector.close()


def links_import(
    file: Annotated[Path, typer.Argument(help="CSV: case id, ticket id per line.")],
    dry_run: Annotated[bool, typer.Option(help="Check every line; link nothing.")] = False,
) -> None:
    """Link pairs listed in a CSV file (`case id, ticket id`; 15- or 18-character case ids).

    Each case is read to be sure it exists; tickets are looked up in one listing of them
    all (a request per 100 tickets: Zenvia locks an account out after a few requests for
    tickets that do not exist). A record linked to another record is refused. Every bad
    line is reported with its number; the good ones are linked. Example:
    `syncworker links import pairs.csv --dry-run`.
    """
    from syncworker import onboard as onboarding

    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise OperatorError(f"{file}: cannot read it ({exc.strerror})") from exc
    pairs, errors = onboarding.parse_pairs(text)
    _database()
    _redis()
    with _patient_runtime(lambda note: typer.echo(note, err=True)) as rt:
        linked, refused = onboarding.import_pairs(rt, pairs, dry_run=dry_run)
    for error in [*errors, *refused]:
        typer.secho(f"{file}: {error}", err=True)
    verb = "would link" if dry_run else "linked"
    typer.echo(f"{verb} {linked} pair(s); {len(errors) + len(refused)} line(s) refused")
    if errors or refused:
        raise typer.Exit(1)
