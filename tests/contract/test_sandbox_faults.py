"""The one-shot faults every sandbox shares (`SandboxApp`), served over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from syncworker.sandbox.server import HttpError, Request, Response, SandboxApp, SandboxServer

pytestmark = pytest.mark.contract

CREATE = "POST /v{version}/things"


class _Things(SandboxApp):
    """The smallest vendor: one route that counts what it handled; only version 1 is served."""

    name = "things"

    def __init__(self) -> None:
        super().__init__()
        self.handled = 0
        self.route("POST", "/v{version}/things", self._create)

    def screen(self, request: Request) -> None:
        if request.params["version"] != "1":
            raise HttpError(404, "NOT_FOUND", "no such version")

    def _create(self, request: Request) -> Response:
        self.handled += 1
        return Response(201, {"n": self.handled})


@pytest.fixture
def app() -> _Things:
    return _Things()


@pytest.fixture
def client(app: _Things) -> Iterator[httpx.Client]:
    with SandboxServer(app) as server, httpx.Client(base_url=server.base_url) as client:
        yield client


def test_fail_next_with_answers_the_error_unhandled_then_serves_again(
    app: _Things, client: httpx.Client
) -> None:
    app.fail_next_with(CREATE, HttpError(409, "CONFLICT", "try later"), times=2)

    answers = [client.post("/v1/things") for _ in range(3)]

    assert [a.status_code for a in answers] == [409, 409, 201]
    assert answers[0].json() == {"code": "CONFLICT", "message": "try later"}
    assert app.handled == 1
    assert app.hooks_fired == {f"fail {CREATE}": 2}


def test_a_dropped_request_is_never_handled_a_dropped_response_is(
    app: _Things, client: httpx.Client
) -> None:
    app.drop_next_request(CREATE)
    with pytest.raises(httpx.TransportError):
        client.post("/v1/things")
    assert app.handled == 0

    app.drop_next_response_after_handling(CREATE)
    with pytest.raises(httpx.TransportError):
        client.post("/v1/things")
    assert app.handled == 1


def test_answer_next_replaces_the_answer_and_rewrite_next_response_edits_it(
    app: _Things, client: httpx.Client
) -> None:
    app.answer_next(CREATE, 200, ["not", "an", "object"], headers={"X-Odd": "yes"})
    app.rewrite_next_response(CREATE, lambda response: Response(202, {"was": response.body}))

    answered = client.post("/v1/things")
    rewritten = client.post("/v1/things")

    assert (answered.status_code, answered.json(), answered.headers["x-odd"]) == (
        200,
        ["not", "an", "object"],
        "yes",
    )
    assert (rewritten.status_code, rewritten.json()) == (202, {"was": {"n": 1}})
    assert app.handled == 1


def test_the_vendor_screens_a_request_before_an_armed_fault_takes_it(
    app: _Things, client: httpx.Client
) -> None:
    app.fail_next_with(CREATE, HttpError(500, "BOOM", "armed"))

    refused = client.post("/v9/things")
    failed = client.post("/v1/things")

    assert (refused.status_code, failed.status_code) == (404, 500)
    assert app.hooks_fired == {f"fail {CREATE}": 1}


def test_faults_are_armed_on_known_routes_only_and_reset_forgets_them(
    app: _Things, client: httpx.Client
) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        app.drop_next_request("POST /v1/things")
    app.fail_next_with(CREATE, HttpError(500, "BOOM", "armed"))
    client.post("/v1/things")
    app.fail_next_with(CREATE, HttpError(500, "BOOM", "armed"))

    app.reset()

    assert client.post("/v1/things").status_code == 201
    assert not app.hooks_fired
