"""Long-running processes: Celery worker, beat (one, enforced by RedBeat's lock), Flower."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from syncworker.cli.common import OperatorError
from syncworker.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(beat)
    app.command()(flower)


def _celery(argv: list[str]) -> None:
    import click  # Celery's own command line (Typer carries a copy of its own)

    from syncworker.celery_app import app as celery_app

    get_settings()  # fail fast on bad configuration, before Celery starts
    try:
        code = celery_app.start(argv)
    except click.ClickException as error:  # Celery checked an argument (e.g. the log level)
        raise OperatorError(error.format_message()) from None
    # Celery returns (not raises) its exit code; pass it on so supervisors see a failure.
    if code:
        raise typer.Exit(code)


def worker(
    queues: Annotated[
        str, typer.Option(help="Queues to consume, comma-separated.")
    ] = "poll,sync,reconcile",
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run a Celery worker.

    Examples: `syncworker worker`, `syncworker worker --queues sync --concurrency 4`.
    Scale out by running more workers (any host) against the same Redis and Postgres.
    """
    _celery(["worker", "-Q", queues, "-c", str(concurrency), "-l", loglevel, "-E"])


def beat(loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO") -> None:
    """Run the scheduler (polls and reconciles). A second beat started by mistake waits on
    RedBeat's lock instead of doubling the schedule.

    Example: `syncworker beat`.
    """
    _celery(["beat", "-l", loglevel])


def flower(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 5555,
    address: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Run Flower, the Celery monitor, behind basic auth from `FLOWER_BASIC_AUTH` (user:password).

    Flower reads the variable itself, so the password never shows in the process list.
    It can only look: revoking, terminating, applying or sending tasks and shutting down or
    resizing workers are refused unless `SYNCWORKER_FLOWER_ALLOW_CONTROL=true`.

    Example: `FLOWER_BASIC_AUTH=ops:secret syncworker flower --port 5555`.
    Task arguments shown there are ids only.
    """
    from syncworker import flower_guard

    if not os.environ.get("FLOWER_BASIC_AUTH"):
        raise typer.BadParameter("set FLOWER_BASIC_AUTH=user:password; Flower never runs open")
    allow_control = get_settings().flower_allow_control
    flower_guard.install(allow_control=allow_control)
    options = flower_guard.flower_arguments(allow_control=allow_control)
    try:
        _celery(["flower", f"--port={port}", f"--address={address}", *options])
    except OSError as error:  # the port is taken or the address is not this host's
        raise OperatorError(f"cannot listen on {address}:{port}: {error.strerror}") from None
