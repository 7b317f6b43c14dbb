"""Structured logs: one JSON object per line with the ids passed as `extra`, never a secret.

Standard-library loggers everywhere (Celery's included), rendered by structlog. A filter
scrubs the configured secret values from every record as a last line of defence: code should
never log a token, and if it ever does, the token still does not reach the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import structlog
from structlog.stdlib import ExtraAdder, ProcessorFormatter

REDACTED = "***"


class SecretScrubber(logging.Filter):
    """Replace any known secret value in the rendered message and its arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


def configure_logging(
    *, level: str = "INFO", json: bool = True, secrets: Iterable[str] = ()
) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            ExtraAdder(),
            structlog.processors.format_exc_info,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(SecretScrubber(secrets))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
