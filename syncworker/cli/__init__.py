"""The `syncworker` command line: processes, sandboxes, operations, demo.

Every failure a user can cause (bad configuration, unreachable Postgres or Redis, a bad
mapping file) ends in one readable line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import kombu.exceptions
import redis.exceptions
import typer

from syncworker.cli import (
    check,
    db,
    dead_letters,
    demo,
    links,
    mapping,
    metrics,
    onboard,
    processes,
    resync,
    status,
)
from syncworker.cli.common import OperatorError
from syncworker.mapping import MappingError
from syncworker.sandbox import cli as sandbox
from syncworker.settings import ConfigError
from syncworker.store.db import DatabaseUnavailable

app = typer.Typer(
    name="syncworker",
    help=(
        "Two-way sync between CRM cases and Zenvia Customer Cloud tickets.\n\n"
        "Example: `syncworker status`; `syncworker COMMAND --help` shows each command's."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
processes.register(app)
demo.register(app)
metrics.register(app)
db.register(app)
dead_letters.register(app)
links.register(app)
mapping.register(app)
resync.register(app)
status.register(app)
onboard.register(app)  # after links: it adds to the `links` group
check.register(app)
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    try:
        app()
    except (ConfigError, MappingError, DatabaseUnavailable, OperatorError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except (redis.exceptions.ConnectionError, kombu.exceptions.OperationalError) as error:
        typer.secho(f"error: cannot reach Redis: {error}", fg="red", err=True)
        sys.exit(2)
