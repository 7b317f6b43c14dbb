"""Flower, as `syncworker flower` runs it: behind basic auth, showing tasks with ids only."""

from __future__ import annotations

import ast
import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cli_processes import background, cli_env, free_port, run_cli
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration

FLOWER_CONFIG = Path(__file__).parents[2] / "ops" / "flower" / "flowerconfig.py"
AUTH = ("ops", "pw")
SECRET_SETTINGS = ("SYNCWORKER_ZENVIA_TOKEN", "SYNCWORKER_SALESFORCE_CLIENT_SECRET")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_flower_shows_finished_syncs_by_id_only_and_never_a_secret(
    stack: Stack, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(
        {**stack.env, "FLOWER_BASIC_AUTH": ":".join(AUTH), "FLOWER_CONF": str(FLOWER_CONFIG)}
    )
    with background(
        "flower", "--port", str(port), env=env, log_path=tmp_path / "flower.log"
    ) as flower:
        wait_until(
            lambda: answers(f"{base}/healthcheck"),
            timeout=60,
            what=f"Flower to answer; its log:\n{flower.log()[-3000:]}",
        )
        assert httpx.get(f"{base}/api/tasks").status_code == 401
        assert httpx.get(f"{base}/api/tasks", auth=("ops", "guess")).status_code == 401

        stack.start_worker()
        case_id = stack.salesforce.agent.create_case(
            Subject="Watched in Flower", Status="New", Origin="Web", Description="card 4111"
        )
        stack.settle()

        def finished_syncs() -> list[dict[str, Any]]:
            response = httpx.get(
                f"{base}/api/tasks",
                params={"taskname": "syncworker.sync", "state": "SUCCESS"},
                auth=AUTH,
            )
            response.raise_for_status()
            return list(response.json().values())

        wait_until(
            lambda: any(case_id in task["args"] for task in finished_syncs()),
            timeout=30,
            what=f"Flower to show the sync of case {case_id}",
        )
        everything = httpx.get(f"{base}/api/tasks", auth=AUTH)
        workers = httpx.get(f"{base}/api/workers", auth=AUTH)
        # Read-only (ops/flower/flowerconfig.py): no remote control of workers or tasks.
        some_task = next(iter(everything.json()))
        revoke = httpx.post(f"{base}/api/task/revoke/{some_task}", auth=AUTH)

    assert revoke.status_code == 403
    syncs = [task for task in everything.json().values() if task["name"] == "syncworker.sync"]
    assert syncs, everything.text
    for task in syncs:  # (side, record id) plus, on a retry, the attempt number
        side, record_id, *attempt = ast.literal_eval(task["args"])
        assert side in ("crm", "zenvia"), task
        assert re.fullmatch(r"[A-Za-z0-9]{1,18}", record_id), task
        assert attempt in ([], [0], [1], [2], [3], [4]), task
        assert ast.literal_eval(task["kwargs"]) == {}, task
    assert "Watched in Flower" not in everything.text
    assert "card 4111" not in everything.text
    for secret in (stack.env[name] for name in SECRET_SETTINGS):
        assert secret not in everything.text
        assert secret not in workers.text


# Every control endpoint Flower 2.1-2.2 routes (a made-up task id or worker name: the refusal
# must come before Flower looks anything up), and the one the brief names that it does not.
CONTROL_ENDPOINTS = [
    "/api/task/apply/syncworker.poll",
    "/api/task/async-apply/syncworker.poll",
    "/api/task/send-task/syncworker.poll",
    "/api/task/abort/0f1e2d3c",
    "/api/task/revoke/0f1e2d3c",
    "/api/task/revoke/0f1e2d3c?terminate=true",
    "/api/task/terminate",
    "/api/task/timeout/syncworker.sync",
    "/api/task/rate-limit/syncworker.sync",
    "/api/worker/shutdown/w1@localhost",
    "/api/worker/pool/restart/w1@localhost",
    "/api/worker/pool/grow/w1@localhost",
    "/api/worker/pool/shrink/w1@localhost",
    "/api/worker/pool/autoscale/w1@localhost",
    "/api/worker/queue/add-consumer/w1@localhost",
    "/api/worker/queue/cancel-consumer/w1@localhost",
]
READ_ENDPOINTS = [
    "/api/workers",
    "/api/tasks",
    "/api/task/types",
    "/api/task/info/0f1e2d3c",
    "/healthcheck",
    "/workers",
    "/tasks",
]


@contextlib.contextmanager
def running_flower(stack: Stack, tmp_path: Path, **settings: str) -> Iterator[str]:
    """`syncworker flower` from a directory without any flowerconfig.py; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env({**stack.env, "FLOWER_BASIC_AUTH": ":".join(AUTH), **settings})
    env.pop("FLOWER_CONF", None)
    with background(
        "flower", "--port", str(port), env=env, log_path=tmp_path / f"flower-{port}.log"
    ) as flower:
        wait_until(
            lambda: answers(f"{base}/healthcheck"),
            timeout=60,
            what=f"Flower to answer; its log:\n{flower.log()[-3000:]}",
        )
        yield base


def test_flower_refuses_every_control_endpoint_and_still_answers_reads(
    stack: Stack, tmp_path: Path
) -> None:
    with running_flower(stack, tmp_path) as base:
        refused = {
            path: httpx.post(f"{base}{path}", auth=AUTH, data={"args": "[]"})
            for path in CONTROL_ENDPOINTS
        }
        as_get = httpx.get(f"{base}/api/task/revoke/0f1e2d3c", auth=AUTH)
        reads = {path: httpx.get(f"{base}{path}", auth=AUTH) for path in READ_ENDPOINTS}
        anonymous = httpx.get(f"{base}/api/tasks")

    for path, response in refused.items():
        assert response.status_code == 403, (path, response.status_code, response.text)
        assert "SYNCWORKER_FLOWER_ALLOW_CONTROL=true" in response.text, path
    assert as_get.status_code == 403
    for path, response in reads.items():
        assert response.status_code in (200, 404), (path, response.status_code)
    assert reads["/api/task/types"].status_code == 200
    assert reads["/api/workers"].status_code == 200
    assert anonymous.status_code == 401


def test_flower_control_works_only_when_an_operator_turns_it_on(
    stack: Stack, tmp_path: Path
) -> None:
    with running_flower(stack, tmp_path, SYNCWORKER_FLOWER_ALLOW_CONTROL="true") as base:
        revoke = httpx.post(f"{base}/api/task/revoke/0f1e2d3c", auth=AUTH)
        shutdown = httpx.post(f"{base}/api/worker/shutdown/nobody@nowhere", auth=AUTH)
        anonymous = httpx.post(f"{base}/api/task/revoke/0f1e2d3c")

    assert revoke.status_code == 200, revoke.text
    assert "0f1e2d3c" in revoke.text
    assert shutdown.status_code == 404, shutdown.text  # reached Flower: no such worker
    assert anonymous.status_code == 401


def test_flower_never_runs_without_a_password() -> None:
    result = run_cli("flower", "--port", str(free_port()), env=cli_env(), timeout=30)
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr
    assert "Traceback" not in result.stderr


def test_flower_on_a_port_in_use_says_so_in_one_line(stack: Stack) -> None:
    env = cli_env({**stack.env, "FLOWER_BASIC_AUTH": ":".join(AUTH)})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("flower", "--port", str(port), env=env, timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
