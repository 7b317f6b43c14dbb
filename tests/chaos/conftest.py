"""Chaos fixtures: a committed throw-away database per scenario (workers must see the data)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import create_throwaway_database, drop_database


@pytest.fixture
def chaos_database() -> Iterator[tuple[str, str]]:
    """(name, url) of a database of its own, dropped afterwards (kept, to trace a finding
    through its links' history, with `SYNCWORKER_CHAOS_KEEP_DATABASE=1`)."""
    name, url = create_throwaway_database("syncworker_chaos")
    yield name, url
    from syncworker.store.db import reset_engines

    reset_engines()
    if os.environ.get("SYNCWORKER_CHAOS_KEEP_DATABASE"):
        print(f"chaos database kept: {name}")
    else:
        drop_database(name)
