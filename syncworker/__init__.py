"""syncworker: two-way sync between CRM support cases and Zenvia Customer Cloud tickets.

`celery -A syncworker worker` finds the Celery app through `syncworker.app`, loaded on first
access so that importing the package has no side effects.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in {"app", "celery"}:
        from syncworker.celery_app import app

        return app
    raise AttributeError(name)
