"""`syncworker metrics`: serve the Prometheus metrics of the whole deployment."""

from __future__ import annotations

from typing import Annotated

import typer
from prometheus_client import start_http_server

from syncworker.cli.common import OperatorError
from syncworker.logs import configure_logging
from syncworker.settings import get_settings

DEFAULT_PORT = 9808


def register(app: typer.Typer) -> None:
    app.command()(metrics)


def metrics(
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help=f"HTTP port [default: SYNCWORKER_METRICS_PORT or {DEFAULT_PORT}]"
        ),
    ] = None,
    address: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Serve `/metrics` for Prometheus until interrupted.

    Counters come from Redis and gauges from the mapping database, so one exporter reports
    every worker on every host: run exactly one per deployment.

    Example: `syncworker metrics --port 9808 --address 0.0.0.0`.
    """
    from syncworker.exporter import build_registry

    settings = get_settings()
    if settings.effective_redis_url.startswith("memory://"):
        raise OperatorError("metrics need the shared Redis; memory:// lives inside one process")
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=settings.secret_values()
    )
    port = port or settings.metrics_port or DEFAULT_PORT
    try:
        server, thread = start_http_server(port, addr=address, registry=build_registry(settings))
    except OSError as error:
        raise OperatorError(f"cannot listen on {address}:{port}: {error.strerror}") from None
    typer.echo(f"serving metrics on http://{address}:{port}/metrics")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
        typer.echo("stopped")
