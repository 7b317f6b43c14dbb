"""A ticket created from a Case takes the Zenvia contact with the Case's e-mail as its client.

The engine plans every create with the mapping's default clients and names the e-mail to look
up (`CreateRecord.client_email`); the lookup is I/O, so it happens here, at the create: one
`GET /contacts` (`ZenviaConnector.find_client`) before the intent counts the send, so a
rate-limited or transient lookup is retried by the sync like any read, and never leaves the
intent looking for a ticket that was never sent. A lookup Zenvia refuses, or answers
unreadably, never blocks the create: the default client is used.

Whether a ticket takes the Contacts API's ids as client ids is not documented
(docs/real-apis.md): a create naming the contact that Zenvia refuses is sent again at once
with the default clients. Each refused request counts towards the account's failed-request
lockout, so after a refused lookup or contact the lookup pauses for `PAUSE_SECONDS` for every
worker (a Redis key holding the reason); a refusal that the default clients meet too was not
about the contact and lifts the pause.
"""

from __future__ import annotations

import logging
from typing import Protocol

from syncworker import engine
from syncworker.connectors.errors import AuthError, MalformedResponseError, PermanentError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.model import NativeFields, RemoteRecord
from syncworker.runtime import Runtime

log = logging.getLogger(__name__)

PAUSE_KEY = "syncworker:client_lookup:paused"
PAUSE_SECONDS = 3600


class Create(Protocol):
    """A connector's `create`."""

    def __call__(
        self, fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord: ...


def creator(rt: Runtime, operation: engine.CreateRecord) -> Create:
    """How to send this create: the target connector's own `create`, or, for a ticket whose
    Case names an e-mail a Zenvia contact has (looked up now), a create naming that contact
    as its client, sent again with the planned default clients if Zenvia refuses it."""
    connector = rt.connectors[operation.side]
    email = operation.client_email
    if operation.side != "zenvia" or email is None or rt.redis.exists(PAUSE_KEY):
        return connector.create
    assert isinstance(connector, ZenviaConnector)
    try:
        client = connector.find_client(email)
    except (PermanentError, AuthError) as error:
        _pause(rt, f"the client lookup of {email} failed: {error}")
        return connector.create
    if client is None:
        return connector.create

    def create_for_contact(
        fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord:
        try:
            return connector.create(
                {**fields, "clients": [client]},
                idempotency_key=idempotency_key,
                description=description,
            )
        except PermanentError as refused:
            if refused.status is None or isinstance(refused, MalformedResponseError):
                raise  # refused before sending, or sent with an unreadable reply: not this
            _pause(rt, f"Zenvia refused contact {client} ({email}) as a ticket client: {refused}")
        try:
            return connector.create(
                fields, idempotency_key=idempotency_key, description=description
            )
        except PermanentError:
            rt.redis.delete(PAUSE_KEY)  # refused with the default clients too: not the contact
            raise

    return create_for_contact


def _pause(rt: Runtime, reason: str) -> None:
    rt.redis.set(PAUSE_KEY, reason, ex=PAUSE_SECONDS)
    log.warning(
        "%s. The ticket takes the default client and the client lookup pauses for %d s; if "
        "this repeats, remove client_lookup from the mapping.",
        reason,
        PAUSE_SECONDS,
    )
