"""One error hierarchy for every remote, named by what the caller should do next.

Connectors classify each failure at their boundary; the task layer only looks at the class:
transient → retry with backoff, rate-limited → retry after the stated wait, permanent and
auth → dead letter with the remote's own message (refused credentials dead-letter each sync
that tries them, until an operator fixes them).
Messages carry status, method and path, never a token.
"""

from __future__ import annotations


class RemoteError(Exception):
    """Root of every failure talking to a remote system."""

    def __init__(
        self,
        message: str,
        *,
        remote: str,
        status: int | None = None,
        code: str | None = None,
        path: str | None = None,
        details: list[str] | None = None,
    ) -> None:
        self.message = message
        self.remote = remote
        self.status = status
        self.code = code
        self.path = path
        self.details = details or []
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f" on {self.path}" if self.path else ""
        status = f" {self.status}" if self.status is not None else ""
        code = f" {self.code}" if self.code else ""
        extra = "; ".join(self.details)
        return f"{self.remote}{status}{code}{where}: {self.message}" + (
            f" ({extra})" if extra else ""
        )


class TransientError(RemoteError):
    """Timeouts, dropped connections, 5xx: worth retrying with backoff."""


class RateLimitedError(RemoteError):
    """The remote (or our own shared budget) says wait; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PermanentError(RemoteError):
    """The remote refused this request as it stands (validation, conflict): dead-letter it."""


class NotFoundError(PermanentError):
    """The remote answered 404: the record cannot be read, which alone does not prove that it
    was deleted (permissions, a merge, a fault)."""


class MalformedResponseError(PermanentError):
    """The remote answered something we cannot read; retrying the same call will not help."""


class AuthError(RemoteError):
    """Credentials were refused: no record can sync until an operator fixes them."""
