"""`syncworker sandbox zenvia|salesforce`: serve a simulator of the remote API locally."""

from __future__ import annotations

from datetime import time as clock_time
from typing import TYPE_CHECKING, Annotated, cast

import typer

from syncworker.sandbox.server import RateLimit, SandboxApp, SandboxServer

if TYPE_CHECKING:
    from syncworker.sandbox.salesforce import VisibilityDelay

app = typer.Typer(
    help="Serve local simulators of the remote APIs (for demos, tests, trials).\n\n"
    "Example: `syncworker sandbox zenvia --port 8081 --token dev-token`."
)

Host = Annotated[str, typer.Option(help="Bind address (loopback unless --allow-remote).")]
Port = Annotated[int, typer.Option(help="TCP port (0 picks a free one).")]
AllowRemote = Annotated[
    bool, typer.Option(help="Allow a non-loopback bind address. Never on a shared network.")
]
Seed = Annotated[int, typer.Option(help="Seed for ids and injected faults.")]
Populate = Annotated[int, typer.Option(help="Records to create at start.")]


def _serve(sandbox: SandboxApp, host: str, port: int, allow_remote: bool) -> SandboxServer:
    try:
        return SandboxServer(sandbox, host=host, port=port, allow_remote=allow_remote)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    except OSError as error:  # port taken, address not on this host
        typer.secho(f"error: cannot listen on {host}:{port}: {error.strerror}", fg="red", err=True)
        raise typer.Exit(2) from None


def _run(server: SandboxServer, where: str) -> None:
    typer.echo(f"{server.app.name} sandbox listening on {server.base_url}{where}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def zenvia(
    token: Annotated[
        str, typer.Option(envvar="SYNCWORKER_ZENVIA_TOKEN", help="Accepted X-API-TOKEN.")
    ],
    host: Host = "127.0.0.1",
    port: Port = 8081,
    allow_remote: AllowRemote = False,
    seed: Seed = 0,
    populate: Populate = 0,
    rate_limit: Annotated[int, typer.Option(help="Requests per window; 0 = unlimited.")] = 0,
    rate_window: Annotated[float, typer.Option(help="Window length in seconds.")] = 60.0,
    business_hours_only: Annotated[
        bool, typer.Option(help="Apply the limit only 07:00-19:00 America/Sao_Paulo.")
    ] = False,
    action_moves_updated_at: Annotated[
        bool, typer.Option(help="A new action or tag moves the ticket's updatedAt.")
    ] = False,
    null_updated_at: Annotated[
        bool, typer.Option(help="A never-edited ticket has updatedAt null (else = createdAt).")
    ] = True,
    lockout: Annotated[
        bool, typer.Option(help="Lock a token out (429) after 3 failed requests in 60 s.")
    ] = True,
    dependent_lookups: Annotated[
        bool, typer.Option(help="Category must fit service/type, urgency the category.")
    ] = True,
    closed_is_final: Annotated[
        bool, typer.Option(help="A CLOSED ticket refuses edits except a reopening status.")
    ] = True,
    listing_order: Annotated[
        str, typer.Option(help="Listing order: shuffle, id or updated_desc.")
    ] = "shuffle",
    listing_lag: Annotated[
        float, typer.Option(help="Seconds before a change shows in date-filtered listings.")
    ] = 2.0,
    clients_required: Annotated[
        bool, typer.Option(help="Refuse a ticket created without clients.")
    ] = True,
    contacts_are_clients: Annotated[
        bool, typer.Option(help="A contact's id (GET /v2/contacts) is its ticket client id.")
    ] = False,
    signature_secret: Annotated[
        str | None,
        typer.Option(
            envvar="SYNCWORKER_ZENVIA_SIGNATURE_SECRET",
            help="Make the token signature-mode: every request needs X-API-Signature.",
        ),
    ] = None,
) -> None:
    """Serve Zenvia's v2 tickets API under `/v2`, harsh by default (docs/real-apis.md).

    Example: `syncworker sandbox zenvia --port 8081 --token dev-token --rate-limit 10`.
    """
    from syncworker.sandbox.zenvia import ListingOrder, ZenviaSandbox

    if listing_order not in ("shuffle", "id", "updated_desc"):
        raise typer.BadParameter(
            f"--listing-order must be shuffle, id or updated_desc, not {listing_order!r}"
        )
    try:
        sandbox = ZenviaSandbox(
            token=token,
            seed=seed,
            action_moves_updated_at=action_moves_updated_at,
            null_updated_at=null_updated_at,
            lockout=lockout,
            dependent_lookups=dependent_lookups,
            closed_is_final=closed_is_final,
            listing_order=cast(ListingOrder, listing_order),
            listing_lag_seconds=listing_lag,
            clients_required=clients_required,
            contacts_are_clients=contacts_are_clients,
            signature_secret=signature_secret,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if populate:
        sandbox.agent.populate(populate)
    server = _serve(sandbox, host, port, allow_remote)
    if rate_limit:
        hours = (clock_time(7, 0), clock_time(19, 0)) if business_hours_only else None
        server.faults.rate_limit = RateLimit(rate_limit, rate_window, hours)
    _run(server, "/v2")


@app.command()
def salesforce(
    client_id: Annotated[str, typer.Option(help="OAuth client id the sandbox accepts.")],
    client_secret: Annotated[
        str, typer.Option(envvar="SYNCWORKER_SALESFORCE_CLIENT_SECRET", help="OAuth client secret.")
    ],
    token: Annotated[
        str | None, typer.Option(help="A static bearer token that is always valid.")
    ] = None,
    host: Host = "127.0.0.1",
    port: Port = 8082,
    allow_remote: AllowRemote = False,
    seed: Seed = 0,
    populate: Populate = 0,
    daily_quota: Annotated[int, typer.Option(help="API requests allowed per day.")] = 100_000,
    assignment_rule: Annotated[
        bool, typer.Option(help="An active Case assignment rule (writes without FALSE).")
    ] = True,
    query_scan_limit: Annotated[
        int, typer.Option(help="Rows a query may scan before QUERY_TIMEOUT; 0 = no limit.")
    ] = 20_000,
    restricted_picklist: Annotated[
        list[str] | None,
        typer.Option(help="A Case picklist field that refuses unknown values (repeatable)."),
    ] = None,
    binary_id_order: Annotated[
        bool, typer.Option(help="ORDER BY Id in binary order instead of case-insensitive.")
    ] = False,
    visibility_delay: Annotated[
        str | None,
        typer.Option(
            help="SHARE:SECONDS, e.g. 0.05:90: that share of the agents' writes commits late."
        ),
    ] = None,
) -> None:
    """Serve Salesforce's REST API (OAuth token endpoint, sObjects, SOQL, composite).

    Example: `syncworker sandbox salesforce --port 8082 --client-id demo --client-secret s3cret`.
    """
    from syncworker.sandbox.salesforce import DEFAULT_QUEUE_ID, SalesforceSandbox

    if query_scan_limit < 0:
        raise typer.BadParameter("--query-scan-limit must be 0 (no limit) or more")
    late = _visibility_delay(visibility_delay) if visibility_delay else None
    sandbox = SalesforceSandbox(
        client_id=client_id,
        client_secret=client_secret,
        static_token=token,
        seed=seed,
        daily_quota=daily_quota,
        assignment_rule_owner=DEFAULT_QUEUE_ID if assignment_rule else None,
        query_scan_limit=query_scan_limit or None,
        restricted_picklists=tuple(restricted_picklist or ()),
        fold_ids=not binary_id_order,
        visibility_delay=late,
    )
    if populate:
        sandbox.agent.populate(populate)
    _run(_serve(sandbox, host, port, allow_remote), "/services/data/")


def _visibility_delay(given: str) -> VisibilityDelay:
    from syncworker.sandbox.salesforce import VisibilityDelay

    share, _, seconds = given.partition(":")
    try:
        return VisibilityDelay(float(share), float(seconds))
    except ValueError:
        raise typer.BadParameter(
            f"--visibility-delay expects SHARE:SECONDS, SHARE in 0..1 (e.g. 0.05:90), not {given!r}"
        ) from None
