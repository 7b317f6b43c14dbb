"""Integration fixtures: a committed throw-away database per test and the running stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_throwaway_database, drop_database
from tests.stack import Stack, running_stack


@pytest.fixture
def committed_database_url() -> Iterator[str]:
    """A database of its own for tests whose data must be visible to worker processes."""
    name, url = create_throwaway_database("syncworker_it")
    yield url
    from syncworker.store.db import reset_engines

    reset_engines()
    drop_database(name)


@pytest.fixture
def stack(
    committed_database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The running stack; `@pytest.mark.stack_settings(NAME="value")` overrides settings."""
    marker = request.node.get_closest_marker("stack_settings")
    overrides = marker.kwargs if marker else {}
    with running_stack(committed_database_url, tmp_path, **overrides) as running:
        yield running
