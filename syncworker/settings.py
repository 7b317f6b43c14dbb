"""Every environment variable syncworker reads, typed and validated in one place.

Variables use the prefix `SYNCWORKER_`. Any secret may instead come from a file named by the
same variable with `_FILE` appended (Docker/Kubernetes secrets), e.g.
`SYNCWORKER_ZENVIA_TOKEN_FILE=/run/secrets/zenvia_token`. A bad value fails at start-up with
a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from syncworker.connectors.salesforce_login import check_client_credentials_url

PREFIX = "SYNCWORKER_"
SECRET_FIELDS = (
    "zenvia_token",
    "zenvia_signature_secret",
    "salesforce_client_secret",
    "salesforce_access_token",
)


class ConfigError(Exception):
    """Configuration is unusable; the message names the variable and what is expected."""


class Settings(BaseSettings):
    """Configuration for every process (worker, beat, CLI)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    database_url: str = "sqlite:///syncworker.sqlite3"
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str | None = Field(
        default=None, description="locks and rate budgets; defaults to the broker"
    )
    result_backend: str | None = None

    zenvia_base_url: str = "https://api.zenvia.com/v2"
    zenvia_token: SecretStr | None = None
    zenvia_rate_limit: int = Field(default=10, ge=1)
    # One second more than Zenvia's minute: margin for clock and latency skew at its window edge.
    # Whole seconds, the shared gate's granularity (a fraction would be dropped silently).
    zenvia_rate_window_seconds: int = Field(default=61, ge=1)
    zenvia_business_hours: str = "07:00-19:00"
    zenvia_timezone: str = "America/Sao_Paulo"
    # A signature-mode token's secret: every request is then signed (`X-API-Signature`).
    zenvia_signature_secret: SecretStr | None = None
    # Refuse, before sending, a ticket create without clients (the harsh reading of the API).
    zenvia_clients_required: bool = True
    # How long a new ticket may be missing from date listings (undocumented; the sandbox lags
    # 2 s): a lost create is not looked for sooner. Keep poll_overlap_seconds well above it.
    zenvia_listing_lag_seconds: float = Field(default=5.0, ge=0)
    # Whether adding an action moves the ticket's updatedAt on this account (undocumented; the
    # harsh answer is no). While false, a comment sweep lists linked open tickets' actions:
    # each again `zenvia_comment_sweep_seconds` after the last listing. In business hours a
    # poll sweeps what the window has left beyond the syncs' and polls' reserve, at most
    # `zenvia_sweep_share` of what the window gives per poll interval (1: no cap); at night
    # `zenvia_sweep_night_batch` a poll.
    zenvia_actions_move_updated_at: bool = False
    zenvia_comment_sweep_seconds: float = Field(default=300.0, ge=0)
    zenvia_sweep_share: float = Field(default=1.0, gt=0, le=1)
    zenvia_sweep_night_batch: int = Field(default=50, ge=1)

    # The org's My Domain (https://NAME.my.salesforce.com): no default can work, since
    # Salesforce refuses client credentials on login.salesforce.com and test.salesforce.com.
    salesforce_login_url: str | None = None
    salesforce_instance_url: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_access_token: SecretStr | None = None
    salesforce_api_version: str = "62.0"
    salesforce_external_id_field: str = "Zenvia_Ticket_Id__c"
    salesforce_daily_quota_reserve: float = Field(default=0.1, ge=0, lt=1)
    # Let the org's Case assignment rules pick the owner of the Cases we create (never on
    # updates: every other write says Sforce-Auto-Assign: FALSE).
    salesforce_assignment_rules_on_create: bool = False

    poll_interval_seconds: float = Field(default=30.0, gt=0)
    poll_overlap_seconds: float = Field(default=120.0, ge=0)
    # How far the remotes' clocks may run behind ours: a read this close to a record's stamp
    # may be followed by a change carrying the same stamp, so it is read again later.
    clock_skew_seconds: float = Field(default=1.0, ge=0)
    reconcile_interval_seconds: float = Field(default=3600.0, gt=0)
    # A sync flagged queued this long ago whose message may be lost (a worker killed holding
    # it comes back only after the visibility timeout): the next poll of its side re-sends it.
    stale_queued_seconds: float = Field(default=900.0, gt=0)
    mapping_file: Path | None = None
    # Which CRM the sync pairs Zenvia with: one `runtime` can wire; the mapping names the same.
    crm: str = "salesforce"

    visibility_timeout_seconds: int = Field(
        default=3600, ge=900, description="above the task time limit plus the longest countdown"
    )
    # A crashed worker's pair lock frees itself after this; revision fencing covers overruns.
    lock_ttl_seconds: float = Field(default=60.0, gt=0)
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    verify_tls: bool = True
    max_retries: int = Field(default=8, ge=0)
    log_level: str = "INFO"
    log_json: bool = True
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # How long `links history` keeps what each sync did; reconcile prunes older entries.
    history_retention_days: int = Field(default=90, ge=1, le=3650)
    # Flower may revoke tasks, send new ones and shut workers down only when this is true.
    flower_allow_control: bool = False

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        """Use psycopg 3 for every Postgres URL, whatever spelling the operator chose."""
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        if not value.startswith(("postgresql+psycopg://", "sqlite://")):
            raise ValueError("expected a postgresql:// or sqlite:// URL")
        return value

    @field_validator("broker_url", "redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("expected a redis://, rediss:// or memory:// URL")
        return value

    @field_validator("zenvia_base_url", "salesforce_login_url", "salesforce_instance_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("expected an http(s):// URL")
        return value.rstrip("/") if value else value

    @field_validator("zenvia_business_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if value.strip().lower() == "always":
            return "always"
        try:
            start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
        except ValueError as exc:
            raise ValueError("expected HH:MM-HH:MM (e.g. 07:00-19:00) or 'always'") from exc
        if start >= end:
            raise ValueError("the start of the business hours must come before the end")
        return value

    @field_validator("zenvia_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("salesforce_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        value = value.removeprefix("v")
        major, _, minor = value.partition(".")
        if not (major.isdigit() and minor.isdigit() and int(major) >= 46):
            raise ValueError("expected an API version such as 62.0 (46.0 or newer)")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _verify_tls_only_locally(self) -> Settings:
        """TLS checks may be off only for loopback sandboxes, never for a real remote."""
        if not self.verify_tls:
            urls = (self.zenvia_base_url, self.salesforce_login_url, self.salesforce_instance_url)
            if not all(_on_loopback(url) for url in urls if url):
                raise ValueError(
                    "VERIFY_TLS=false is allowed only when every remote is on loopback"
                )
        return self

    @model_validator(mode="after")
    def _salesforce_token_url(self) -> Settings:
        """Client credentials need the org's My Domain; fail now, naming the fix."""
        uses_client_credentials = (
            self.salesforce_client_id is not None and self.salesforce_access_token is None
        )
        if uses_client_credentials and self.salesforce_login_url is not None:
            try:
                check_client_credentials_url(self.salesforce_login_url)
            except ValueError as exc:
                raise ValueError(f"{PREFIX}SALESFORCE_LOGIN_URL: {exc}") from None
        return self

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or self.broker_url

    @property
    def business_hours(self) -> tuple[time, time] | None:
        if self.zenvia_business_hours == "always":
            return None
        start, end = (time.fromisoformat(p.strip()) for p in self.zenvia_business_hours.split("-"))
        return start, end

    def secret_values(self) -> list[str]:
        """The raw secrets, only so the log scrubber can recognise them."""
        values = (getattr(self, name) for name in SECRET_FIELDS)
        return [value.get_secret_value() for value in values if value is not None]

    def require(self, *names: str) -> None:
        """Fail with one message listing every missing setting the caller needs."""
        missing = [PREFIX + name.upper() for name in names if getattr(self, name) is None]
        if missing:
            raise ConfigError(f"missing required setting(s): {', '.join(missing)}")


def _on_loopback(url: str) -> bool:
    """True only for a literal loopback address or exactly `localhost` (not localhost.evil)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secrets_from_files(environ: dict[str, str]) -> dict[str, Any]:
    """Read `<VAR>_FILE` secret files; the plain variable wins when both are set."""
    values: dict[str, Any] = {}
    for name in SECRET_FIELDS:
        var = PREFIX + name.upper()
        path = environ.get(var + "_FILE")
        if path and var not in environ:
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{var}_FILE: cannot read {path}: {exc.strerror}") from exc
    return values


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from the environment, turning validation errors into one clear message."""
    env = dict(os.environ if environ is None else environ)
    try:
        if environ is None:
            return Settings(**_secrets_from_files(env))
        overrides = {
            key.removeprefix(PREFIX).lower(): value
            for key, value in env.items()
            if key.startswith(PREFIX) and not key.endswith("_FILE")
        }
        return Settings(**{**overrides, **_secrets_from_files(env)})
    except ValidationError as exc:
        problems = [
            f"{PREFIX}{'.'.join(str(part) for part in error['loc']).upper() or '(settings)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return load_settings()
