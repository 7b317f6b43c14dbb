"""The demo's embedded configuration: every setting it needs and nothing from outside (the
caller's `SYNCWORKER_*` variables set aside while it runs), and its logs kept off the display."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from syncworker.celery_app import app as celery_app
from syncworker.celery_app import celery_config
from syncworker.logs import configure_logging
from syncworker.settings import PREFIX, Settings, get_settings
from syncworker.store.db import reset_engines
from syncworker.tasks import reset_runtime

QUEUES = ("poll", "sync", "reconcile")
BEAT_INTERVAL = 1.0

SF_CLIENT_ID = "syncworker-demo"


def demo_environment(
    database_url: str,
    *,
    zenvia_url: str,
    zenvia_token: str,
    salesforce_url: str,
    salesforce_secret: str,
) -> dict[str, str]:
    """The embedded default: every setting the demo needs, nothing from outside."""
    return {
        f"{PREFIX}DATABASE_URL": database_url,
        f"{PREFIX}BROKER_URL": "memory://syncworker-demo",
        f"{PREFIX}RESULT_BACKEND": "cache+memory://",
        f"{PREFIX}ZENVIA_BASE_URL": f"{zenvia_url}/v2",
        f"{PREFIX}ZENVIA_TOKEN": zenvia_token,
        f"{PREFIX}ZENVIA_BUSINESS_HOURS": "always",
        f"{PREFIX}ZENVIA_RATE_LIMIT": "100000",
        f"{PREFIX}SALESFORCE_LOGIN_URL": salesforce_url,
        f"{PREFIX}SALESFORCE_CLIENT_ID": SF_CLIENT_ID,
        f"{PREFIX}SALESFORCE_CLIENT_SECRET": salesforce_secret,
        f"{PREFIX}POLL_INTERVAL_SECONDS": str(BEAT_INTERVAL),
        f"{PREFIX}POLL_OVERLAP_SECONDS": "5",
        # time runs fast here: an agent's comment (which does not move the ticket's updatedAt)
        # is swept within seconds, not production's five minutes
        f"{PREFIX}ZENVIA_COMMENT_SWEEP_SECONDS": str(2 * BEAT_INTERVAL),
        f"{PREFIX}HTTP_TIMEOUT_SECONDS": "5",
        f"{PREFIX}LOCK_TTL_SECONDS": "10",
        f"{PREFIX}MAX_RETRIES": "4",
        f"{PREFIX}LOG_LEVEL": "INFO",
        f"{PREFIX}LOG_JSON": "true",
    }


@contextmanager
def embedded_settings(env: dict[str, str]) -> Iterator[tuple[Settings, list[str]]]:
    """Replace every SYNCWORKER_* variable by `env` (restored afterwards), rebuild settings,
    runtime and Celery's configuration from it. Yields the settings and the names set aside."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    get_settings.cache_clear()
    reset_runtime()
    try:
        settings = get_settings()
        celery_app.conf.update(celery_config(settings))
        # The memory transport sleeps `polling_interval` (1 s) whenever a queue is empty.
        celery_app.conf.broker_transport_options = {
            **celery_app.conf.broker_transport_options,
            "polling_interval": 0.05,
        }
        yield settings, sorted(saved)
    finally:
        reset_runtime()
        reset_engines()
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)
        get_settings.cache_clear()


@contextmanager
def logging_into(path: Path, settings: Settings) -> Iterator[IO[str]]:
    """Structured logs (secrets scrubbed) into `path`, not over the live display; the handlers
    writing there are removed before the file closes."""
    root = logging.getLogger()
    with path.open("a", encoding="utf-8") as stream:
        configure_logging(level=settings.log_level, json=True, secrets=settings.secret_values())
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
        try:
            yield stream
        finally:
            root.handlers = [h for h in root.handlers if getattr(h, "stream", None) is not stream]
