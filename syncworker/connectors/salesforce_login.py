"""Where a Salesforce OAuth client-credentials token can come from. Pure; no I/O.

Salesforce refuses the client-credentials flow on the shared login hosts
(`invalid_grant: request not supported on this domain`): the token URL must be the org's
My Domain. Checked at start-up so a deployment that cannot log in never starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["MY_DOMAIN_HINT", "check_client_credentials_url"]

SHARED_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
MY_DOMAIN_HINT = (
    "use the org's My Domain URL (Setup → My Domain), e.g. https://NAME.my.salesforce.com "
    "(a sandbox org: https://NAME--SANDBOX.sandbox.my.salesforce.com)"
)


def check_client_credentials_url(url: str) -> str:
    """`url` unchanged, or ValueError naming the fix when Salesforce would refuse it."""
    host = (urlsplit(url).hostname or "").lower()
    if host in SHARED_LOGIN_HOSTS:
        raise ValueError(
            f"Salesforce refuses client credentials on {host} "
            f"(invalid_grant: request not supported on this domain); {MY_DOMAIN_HINT}"
        )
    return url
