"""Secrets stay secret, TLS stays on, sandboxes stay on loopback (DESIGN invariant 8).

The Zenvia token, the Salesforce client secret and every access token the Salesforce sandbox
issued must not appear in worker logs (at DEBUG, through faults, auth refresh, dead letters and
remotes that echo credentials back), exception strings, Celery messages (arguments, headers,
the argsrepr Flower and events show), the mapping database, or `syncworker status --json`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from syncworker import runtime as runtime_module
from syncworker.connectors.errors import RemoteError
from syncworker.connectors.salesforce import SalesforceConnector
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.sandbox.salesforce import SalesforceSandbox
from syncworker.sandbox.server import Faults, SandboxServer
from syncworker.sandbox.zenvia import ZenviaSandbox
from syncworker.settings import ConfigError, Settings, load_settings
from syncworker.store.db import session_scope
from tests import stack as stack_module
from tests.conftest import create_throwaway_database, drop_database
from tests.stack import SF_CLIENT_SECRET, ZENVIA_TOKEN, Stack, running_stack

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from syncworker.cli import main; main()"]


def secrets_of(stack: Stack) -> list[str]:
    issued = [token.decode() for token in stack.salesforce._tokens]  # every OAuth token so far
    return [ZENVIA_TOKEN, SF_CLIENT_SECRET, *issued]


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret[:6] + "…" for secret in secrets if secret and secret in text]


def raw_messages(url: str, queue: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        raw: list[bytes] = cast("list[bytes]", client.lrange(queue, 0, -1))
        return [json.loads(message) for message in raw]
    finally:
        client.close()


def test_celery_messages_carry_ids_only(committed_database_url: str, tmp_path: Path) -> None:
    with running_stack(committed_database_url, tmp_path) as stack:
        case_id = stack.salesforce.agent.create_case(Subject="Ids only", Status="New", Origin="Web")
        stack.zenvia.agent.create_ticket("Só ids")
        time.sleep(stack.zenvia.listing_lag.total_seconds() + 0.1)  # until listings show it
        stack.poll()  # no worker: the messages wait in the broker for inspection
        messages = raw_messages(stack_module.BROKER_URL, "sync")
        assert len(messages) == 2
        secrets = secrets_of(stack)
        for message in messages:
            headers = message["headers"]
            args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            assert len(args) == 2
            assert args[0] in ("crm", "zenvia")
            assert isinstance(args[1], str)
            assert kwargs == {}
            assert headers["argsrepr"] == repr(tuple(args))  # what Flower and events show
            assert headers["kwargsrepr"] == "{}"
            assert not leaks(json.dumps(message), secrets)
        assert ["crm", case_id] in [json.loads(base64.b64decode(m["body"]))[0] for m in messages]


@pytest.fixture(scope="module")
def busy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose worker logs at DEBUG and has seen syncs, faults, a re-authentication, a
    permanent error and remotes echoing the credentials in their error messages (built once,
    looked at by several tests)."""
    name, url = create_throwaway_database("syncworker_security")
    tmp = tmp_path_factory.mktemp("security")
    try:
        # no comment sweep: the busy worker's backlog must drain for these looks
        with running_stack(
            url,
            tmp,
            SYNCWORKER_LOG_LEVEL="DEBUG",
            SYNCWORKER_ZENVIA_COMMENT_SWEEP_SECONDS="3600",
        ) as stack:
            _make_busy(stack)
            yield stack
    finally:
        from syncworker.store.db import reset_engines

        reset_engines()
        drop_database(name)


def _make_busy(stack: Stack) -> None:
    stack.start_worker()
    for n in range(4):
        stack.salesforce.agent.create_case(Subject=f"Secret {n}", Status="New", Origin="Web")
        stack.zenvia.agent.create_ticket(f"Segredo {n}", urgency=1)
    stack.settle()
    stack.salesforce.expire_tokens()  # the next call re-authenticates
    stack.zenvia.fail_next(
        "GET /v2/tickets",
        400,
        "BAD_TOKEN",
        f"token {ZENVIA_TOKEN} is not valid here",
        [{"path": "X-API-TOKEN", "message": f"got {ZENVIA_TOKEN}"}],
    )
    stack.salesforce.fail_next(
        "GET /services/data/{version}/queryAll",
        400,
        "INVALID_FIELD",
        f"client_secret={SF_CLIENT_SECRET} leaked by a remote",
    )
    stack.poll()  # both polls fail on the echoing errors: recorded as runs with errors
    case_id = stack.cases()[0]["Id"]
    stack.salesforce.agent.edit(case_id, OwnerId="005000000000005AAA")
    stack.zenvia.fail_next(
        "PATCH /v2/tickets/{ticket_id}/attributes/owner",
        422,
        "VALIDATION_ERROR",
        f"owner refused for {ZENVIA_TOKEN}",
    )
    # errors on every path the logs can carry; Zenvia's lockout (which these faults would set
    # off, pausing every worker for minutes) is the chaos suite's subject, not this one's
    stack.zenvia.lockout = False
    stack.zenvia_server.faults = Faults(error_rate=0.2, drop_rate=0.1)
    for n in range(3):
        stack.zenvia.agent.create_ticket(f"Com falhas {n}", urgency=2)
    try:
        stack.settle(timeout=60)
    finally:
        stack.zenvia_server.faults = Faults()
    stack.settle()


def test_no_secret_reaches_the_worker_logs(busy_stack: Stack) -> None:
    secrets = secrets_of(busy_stack)
    assert len(secrets) >= 4, "the sandbox should have issued at least two access tokens"
    for worker in busy_stack.workers:
        log = worker.log()
        assert '"level": "debug"' in log  # the log is real and verbose
        assert not leaks(log, secrets), f"{worker.name} logged {leaks(log, secrets)}"


def test_no_secret_reaches_the_mapping_database(busy_stack: Stack) -> None:
    secrets = secrets_of(busy_stack)
    from sqlalchemy import text

    with session_scope(busy_stack.database_url) as session:
        tables = (
            "links",
            "intents",
            "observations",
            "dead_letters",
            "sync_runs",
            "cursors",
            "link_history",
        )
        dump = "\n".join(
            str(row) for table in tables for row in session.execute(text(f"SELECT * FROM {table}"))
        )
    assert "BAD_TOKEN" in dump or "INVALID_FIELD" in dump  # the echoing errors were stored
    assert not leaks(dump, secrets)


def test_status_json_shows_no_secret(busy_stack: Stack) -> None:
    result = subprocess.run(
        [*CLI, "status", "--json"],
        env={**os.environ, **busy_stack.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["last_runs"], "status should list the runs, errors included"
    assert not leaks(result.stdout + result.stderr, secrets_of(busy_stack))


def test_exception_strings_and_reprs_redact_what_a_remote_echoes(tmp_path: Path) -> None:
    zen = ZenviaSandbox(token=ZENVIA_TOKEN)
    sf = SalesforceSandbox(client_id="cid", client_secret=SF_CLIENT_SECRET)
    with SandboxServer(zen) as zen_server, SandboxServer(sf) as sf_server:
        zenvia = ZenviaConnector(
            httpx.Client(), base_url=f"{zen_server.base_url}/v2", token=ZENVIA_TOKEN
        )
        salesforce = SalesforceConnector(
            httpx.Client(),
            login_url=sf_server.base_url,
            client_id="cid",
            client_secret=SF_CLIENT_SECRET,
        )
        ticket = str(zen.agent.create_ticket("Echo")["id"])
        zen.fail_next(
            "GET /v2/tickets/{ticket_id}",
            400,
            "ECHO",
            f"you sent {ZENVIA_TOKEN}",
            [{"path": "token", "message": ZENVIA_TOKEN}],
        )
        with pytest.raises(RemoteError) as zenvia_error:
            zenvia.get(ticket)
        case_id = sf.agent.create_case(Subject="Echo", Status="New", Origin="Web")
        salesforce.get(case_id)  # authenticates
        sf.fail_next(
            "GET /services/data/{version}/sobjects/Case/{record_id}",
            400,
            "ECHO",
            f"secret {SF_CLIENT_SECRET}",
        )
        with pytest.raises(RemoteError) as salesforce_error:
            salesforce.get(case_id)
        issued = [token.decode() for token in sf._tokens]
        secrets = [ZENVIA_TOKEN, SF_CLIENT_SECRET, *issued]
        for text in (
            str(zenvia_error.value),
            repr(zenvia_error.value),
            zenvia_error.value.describe(),
            str(salesforce_error.value),
            repr(salesforce_error.value),
            repr(zenvia),
            repr(salesforce),
            repr(zen),
            repr(sf),
        ):
            assert not leaks(text, secrets), text
        settings = load_settings(
            {
                "SYNCWORKER_ZENVIA_TOKEN": ZENVIA_TOKEN,
                "SYNCWORKER_SALESFORCE_CLIENT_SECRET": SF_CLIENT_SECRET,
            }
        )
        assert not leaks(repr(settings) + str(settings.model_dump()), secrets)
        zenvia.close()
        salesforce.close()


# -- TLS -------------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default_in_every_client_runtime_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[dict[str, Any]] = []
    real = httpx.Client

    def spy(**kwargs: Any) -> httpx.Client:
        built.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(httpx, "Client", spy)  # runtime builds its clients as httpx.Client
    settings = load_settings(
        {
            "SYNCWORKER_ZENVIA_TOKEN": ZENVIA_TOKEN,
            "SYNCWORKER_SALESFORCE_CLIENT_ID": "cid",
            "SYNCWORKER_SALESFORCE_CLIENT_SECRET": SF_CLIENT_SECRET,
            "SYNCWORKER_SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com",
        }
    )
    assert settings.verify_tls is True
    connectors = runtime_module.build_connectors(settings, runtime_module.build_gates(settings))
    try:
        assert len(built) == 2
        assert all(kwargs.get("verify", True) is True for kwargs in built)
    finally:
        for connector in connectors.values():
            connector.close()


@pytest.mark.parametrize(
    "remote",
    [
        pytest.param({"SYNCWORKER_ZENVIA_BASE_URL": "https://api.zenvia.com/v2"}, id="zenvia"),
        pytest.param({"SYNCWORKER_SALESFORCE_LOGIN_URL": "https://login.salesforce.com"}, id="sf"),
        pytest.param(
            {
                "SYNCWORKER_ZENVIA_BASE_URL": "http://127.0.0.1:8001/v2",
                "SYNCWORKER_SALESFORCE_LOGIN_URL": "http://127.0.0.1:8002",
                "SYNCWORKER_SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
            },
            id="sf-instance",
        ),
        pytest.param(
            {
                "SYNCWORKER_ZENVIA_BASE_URL": "http://127.0.0.1.nip.io/v2",
                "SYNCWORKER_SALESFORCE_LOGIN_URL": "http://127.0.0.1:8002",
            },
            id="looks-like-loopback",
        ),
        pytest.param(
            {
                "SYNCWORKER_ZENVIA_BASE_URL": "http://localhost.example.com/v2",
                "SYNCWORKER_SALESFORCE_LOGIN_URL": "http://127.0.0.1:8002",
            },
            id="localhost-prefix",
        ),
    ],
)
def test_tls_verification_cannot_be_switched_off_for_a_remote_off_this_host(
    remote: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match="VERIFY_TLS"):
        load_settings({"SYNCWORKER_VERIFY_TLS": "false", **remote})


def test_tls_verification_may_be_off_for_loopback_sandboxes_only() -> None:
    settings = load_settings(
        {
            "SYNCWORKER_VERIFY_TLS": "false",
            "SYNCWORKER_ZENVIA_BASE_URL": "http://127.0.0.1:8001/v2",
            "SYNCWORKER_SALESFORCE_LOGIN_URL": "http://localhost:8002",
        }
    )
    assert settings.verify_tls is False


def test_settings_never_show_a_secret() -> None:
    settings = Settings(zenvia_token=ZENVIA_TOKEN)
    assert ZENVIA_TOKEN not in repr(settings)
    assert ZENVIA_TOKEN not in json.dumps(settings.model_dump(mode="json"))


# -- sandboxes on loopback only ------------------------------------------------------------------


PUBLIC = "0.0.0.0"  # noqa: S104 (only ever refused here, never bound)


@pytest.mark.parametrize("host", [PUBLIC, "192.168.1.10", "10.0.0.5", "example.com", "::"])
def test_a_sandbox_refuses_a_non_loopback_address(host: str) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        SandboxServer(ZenviaSandbox(token=ZENVIA_TOKEN), host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_a_sandbox_serves_on_loopback_addresses(host: str) -> None:
    with SandboxServer(ZenviaSandbox(token=ZENVIA_TOKEN), host=host) as server:
        response = httpx.get(f"{server.base_url}/v2/tickets", headers={"X-API-TOKEN": ZENVIA_TOKEN})
        assert response.status_code == 200


def test_the_sandbox_cli_refuses_a_public_bind_without_allow_remote() -> None:
    result = subprocess.run(
        [*CLI, "sandbox", "zenvia", "--host", PUBLIC, "--port", "0"],
        env={**os.environ, "SYNCWORKER_ZENVIA_TOKEN": ZENVIA_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "non-loopback" in result.stdout + result.stderr
