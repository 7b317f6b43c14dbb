"""The text the sync writes into comments, and how it knows it again: a comment's copy
(`copy_text`, found by `is_copy_of`, since copies carry no marker) and the notices written
when a record ends (`is_notice`). Pure."""

from __future__ import annotations

from syncworker.mapping import Mapping
from syncworker.model import RemoteComment, Side

NOTICE_ENDINGS = (
    "so syncworker closed this case.",
    "so syncworker closed this one.",
    "so syncworker stopped syncing this one.",
)


def is_notice(text: str) -> bool:
    """Whether a comment is one of the notices syncworker writes when a record ends."""
    return text.strip().endswith(NOTICE_ENDINGS)


def copy_text(mapping: Mapping, source: Side, comment: RemoteComment) -> str:
    """The text of our copy of `comment` on the other side: its body and where it came from."""
    author = f", written by {comment.author_id}" if comment.author_id else ""
    return f"{comment.body}\n\n— copied from {mapping.system_label(source)}{author}"


def is_copy_of(text: str, written: str) -> bool:
    """Whether a remote comment's `text` is what we wrote as `written`. Remotes may trim
    whitespace and cut a long text (ending it with "…"), never add to it."""
    text, written = text.strip(), written.strip()
    if text == written:
        return True
    return text.endswith("…") and len(text) > 1 and written.startswith(text[:-1].rstrip())
