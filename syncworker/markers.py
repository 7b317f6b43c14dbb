"""Idempotency keys, and the marker that carries one inside the text of a created ticket.

A Zenvia ticket cannot hold an external id, so the key of its create's write-ahead intent
travels as a short marker in the ticket's INTERNAL first action. The marker lets a retry find
what an interrupted create made, and tells the sync that first action is its own, so it is
never copied back. Comments carry none (customers read them): the engine knows its copies by
their text (`engine.is_copy_of`).
"""

from __future__ import annotations

import hashlib
import re

_MARKER = re.compile(r"\[sw:([0-9a-f]{20})\]")


def idempotency_key(*parts: str) -> str:
    """A deterministic key for one intended remote write (same inputs, same key)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def marker(key: str) -> str:
    return f"[sw:{key}]"


def with_marker(text: str, key: str) -> str:
    """Append the marker on its own line so humans can still read the text (once only)."""
    if find_marker(text) == key:
        return text
    return f"{text}\n\n{marker(key)}" if text else marker(key)


def find_marker(text: str | None) -> str | None:
    if not text:
        return None
    found = _MARKER.search(text)
    return found.group(1) if found else None
