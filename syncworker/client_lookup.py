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
about the contact and lifts the pause. Until a create naming a contact has succeeded, only
one worker at a time tries one, so workers creating at once never pile up refusals; the
others wait for its answer (their sync is retried) rather than give a ticket the wrong client.
"""

from __future__ import annotations

import logging
from typing import Protocol

from syncworker import engine
from syncworker.connectors.errors import AuthError, MalformedResponseError, PermanentError
from syncworker.connectors.zenvia import ZenviaConnector
from syncworker.context import Runtime
from syncworker.locks import LockBusy
from syncworker.model import NativeFields, RemoteRecord

log = logging.getLogger(__name__)

PAUSE_KEY = "syncworker:client_lookup:paused"
PAUSE_SECONDS = 3600
PROBE_KEY = "syncworker:client_lookup:probing"
PROBE_SECONDS = 120  # a worker killed while finding out holds it no longer than this
CONFIRMED_KEY = "syncworker:client_lookup:confirmed"
CONFIRMED_SECONDS = 86_400


class Create(Protocol):
    """A connector's `create`."""

    def __call__(
        self, fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord: ...


def creator(rt: Runtime, operation: engine.CreateRecord) -> Create:
    """How to send this create: the target connector's own `create`, or, for a ticket whose
    Case names an e-mail a Zenvia contact has (looked up now), a create naming that contact
    as its client, sent again with the planned default clients if Zenvia refuses it.

    Until a create naming a contact has succeeded (`CONFIRMED_KEY`, a day), one worker at a
    time finds out (`PROBE_KEY`), so workers creating at once never send several refused
    requests (three lock the account out): a create made meanwhile raises `LockBusy`, before
    anything is sent, and its sync is retried once the answer is known (at most
    `PROBE_SECONDS` if the finding worker died)."""
    connector = rt.connectors[operation.side]
    email = operation.client_email
    if operation.side != "zenvia" or email is None or rt.redis.exists(PAUSE_KEY):
        return connector.create
    assert isinstance(connector, ZenviaConnector)
    probing = not rt.redis.exists(CONFIRMED_KEY)
    if probing and not rt.redis.set(PROBE_KEY, email, nx=True, ex=PROBE_SECONDS):
        raise LockBusy("client lookup: another worker is finding out whether contacts are clients")
    try:
        client = connector.find_client(email)
    except (PermanentError, AuthError) as error:
        _pause(rt, f"the client lookup of {email} failed: {error}")
        return connector.create
    except Exception:
        _end_probe(rt, probing)
        raise
    if client is None:
        _end_probe(rt, probing)
        return connector.create

    def create_for_contact(
        fields: NativeFields, *, idempotency_key: str, description: str = ""
    ) -> RemoteRecord:
        try:
            created = connector.create(
                {**fields, "clients": [client]},
                idempotency_key=idempotency_key,
                description=description,
            )
        except PermanentError as refused:
            if refused.status is None or isinstance(refused, MalformedResponseError):
                _end_probe(rt, probing)
                raise  # refused before sending, or sent with an unreadable reply: not this
            _pause(rt, f"Zenvia refused contact {client} ({email}) as a ticket client: {refused}")
        except Exception:
            _end_probe(rt, probing)
            raise
        else:
            rt.redis.set(CONFIRMED_KEY, client, ex=CONFIRMED_SECONDS)
            _end_probe(rt, probing)
            return created
        try:
            return connector.create(
                fields, idempotency_key=idempotency_key, description=description
            )
        except PermanentError:
            rt.redis.delete(PAUSE_KEY)  # refused with the default clients too: not the contact
            raise

    return create_for_contact


def _end_probe(rt: Runtime, probing: bool) -> None:
    if probing:
        rt.redis.delete(PROBE_KEY)


def _pause(rt: Runtime, reason: str) -> None:
    rt.redis.set(PAUSE_KEY, reason, ex=PAUSE_SECONDS)
    rt.redis.delete(PROBE_KEY)
    log.warning(
        "%s. The ticket takes the default client and the client lookup pauses for %d s; if "
        "this repeats, remove client_lookup from the mapping.",
        reason,
        PAUSE_SECONDS,
    )
