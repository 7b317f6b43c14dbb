"""What every operator command shares: the console, the error that ends a command in one
line, and the checks that Postgres and Redis answer."""

from __future__ import annotations

from rich.console import Console

from syncworker.settings import get_settings
from syncworker.store.db import check_database

console = Console()


class OperatorError(Exception):
    """An operator asked for something that does not exist or cannot be done."""


def _database() -> str:
    url = get_settings().database_url
    check_database(url)
    return url


def _redis() -> None:
    """Fail at once, in one line, when the broker or the shared Redis does not answer
    (Celery would otherwise retry for many seconds and end in a traceback)."""
    import redis

    settings = get_settings()
    for url in dict.fromkeys((settings.broker_url, settings.effective_redis_url)):
        if url.startswith("memory://"):
            continue
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
