"""Chaos: N linked pairs edited on both sides while a fault hits; after it stops, everything
converges within two reconcile cycles with no duplicate and no lost update.

Quick runs (~40 pairs, `SYNCWORKER_CHAOS_PAIRS` to change) are part of `make test`; the same
scenarios at 1,000 pairs are `make chaos` (`-m chaos`). Each prints one `CHAOS {json}` line
(pairs, faults injected, seconds to converge, duplicates, lost), also appended to the file
named by `SYNCWORKER_CHAOS_REPORT` when set. A run that finds a problem leaves, beside its
workers' logs, `journal.jsonl`: every write either sandbox applied (syncworker's or a
person's) and every edit people made, timed; `SYNCWORKER_CHAOS_KEEP_DATABASE=1` keeps its
database (the links' history) too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

import tests.stack
from syncworker.celery_app import app as celery_app
from tests.chaos.runner import ChaosConfig, ChaosResult, ChaosRun, Scenario, report
from tests.chaos.scenarios import (
    DelayedVisibility,
    DeliverTwice,
    FlakyRemotes,
    KillPostgresConnections,
    KillWorkers,
    OwnRedis,
    RestartRedis,
    SameSecondEdits,
)
from tests.stack import running_stack


def forget_broker_connections() -> None:
    """This process's Celery app caches its broker pools; drop them when the broker changes."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


SCENARIOS = [
    "kill-workers",
    "flaky-remotes",
    "redis-restart",
    "postgres-restart",
    "deliver-twice",
    "same-second-edits",
    "delayed-visibility",
]


@contextmanager
def scenario_named(
    name: str, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scenario]:
    if name == "kill-workers":
        yield KillWorkers()
    elif name == "flaky-remotes":
        yield FlakyRemotes()
    elif name == "postgres-restart":
        yield KillPostgresConnections(database)
    elif name == "deliver-twice":
        yield DeliverTwice()
    elif name == "same-second-edits":
        yield SameSecondEdits()
    elif name == "delayed-visibility":
        yield DelayedVisibility()
    elif name == "redis-restart":
        server = OwnRedis(tmp_path)
        server.start()
        monkeypatch.setattr(tests.stack, "BROKER_URL", server.url)
        forget_broker_connections()
        try:
            yield RestartRedis(server)
        finally:
            server.kill()
            forget_broker_connections()
    else:
        raise ValueError(name)


def run_scenario(
    name: str,
    config: ChaosConfig,
    database: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> ChaosResult:
    db_name, db_url = database
    with ExitStack() as stack:
        scenario = stack.enter_context(scenario_named(name, db_name, tmp_path, monkeypatch))
        overrides = scenario.overrides()
        running = stack.enter_context(running_stack(db_url, tmp_path, catalogue=None, **overrides))
        result = ChaosRun(running, scenario, config).run()
    with capsys.disabled():
        report(result)
    return result


def assert_converged(result: ChaosResult) -> None:
    findings = result.findings
    assert findings.duplicates == 0, f"duplicates after {result.scenario}:\n{findings.describe()}"
    assert findings.lost == 0, f"lost updates after {result.scenario}:\n{findings.describe()}"
    assert result.converged, (
        f"no convergence within two reconcile cycles after {result.scenario} "
        f"({'; '.join(result.notes)}):\n{findings.describe()}"
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", SCENARIOS)
def test_a_small_set_of_pairs_converges_after(
    name: str,
    chaos_database: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_scenario(name, ChaosConfig.quick(), chaos_database, tmp_path, monkeypatch, capsys)
    assert_converged(result)


@pytest.mark.chaos
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", SCENARIOS)
def test_a_thousand_pairs_converge_after(
    name: str,
    chaos_database: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_scenario(name, ChaosConfig.full(), chaos_database, tmp_path, monkeypatch, capsys)
    assert_converged(result)
