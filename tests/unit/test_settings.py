"""Configuration fails early with messages that name the variable; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncworker.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        pytest.param(
            "POLL_INTERVAL_SECONDS", "soon", "SYNCWORKER_POLL_INTERVAL_SECONDS", id="not-a-number"
        ),
        pytest.param("POLL_INTERVAL_SECONDS", "0", "greater than 0", id="zero-interval"),
        pytest.param(
            "DATABASE_URL",
            "mysql://x/y",
            "expected a postgresql:// or sqlite:// URL",
            id="wrong-db",
        ),
        pytest.param("BROKER_URL", "amqp://guest@x//", "expected a redis://", id="wrong-broker"),
        pytest.param(
            "ZENVIA_BUSINESS_HOURS",
            "19:00-07:00",
            "start of the business hours",
            id="hours-reversed",
        ),
        pytest.param("ZENVIA_TIMEZONE", "Mars/Olympus", "unknown time zone", id="bad-timezone"),
        pytest.param("SALESFORCE_API_VERSION", "40.0", "46.0 or newer", id="old-api"),
        pytest.param(
            "HISTORY_RETENTION_DAYS", "0", "greater than or equal to 1", id="no-history-kept"
        ),
        pytest.param("FLOWER_ALLOW_CONTROL", "maybe", "valid boolean", id="flower-switch"),
        pytest.param(
            "ZENVIA_RATE_WINDOW_SECONDS", "60.5", "valid integer", id="window-not-whole-seconds"
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_expected(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({f"SYNCWORKER_{variable}": value})
    message = str(caught.value)
    assert f"SYNCWORKER_{variable}" in message
    assert expected in message


def test_postgres_urls_are_normalised_to_psycopg3() -> None:
    settings = load_settings({"SYNCWORKER_DATABASE_URL": "postgres://u@db:5432/sync"})
    assert settings.database_url == "postgresql+psycopg://u@db:5432/sync"


def test_redis_url_defaults_to_the_broker() -> None:
    settings = load_settings({"SYNCWORKER_BROKER_URL": "redis://broker:6379/2"})
    assert settings.effective_redis_url == "redis://broker:6379/2"


def test_secrets_can_come_from_files_and_never_show_in_reprs(tmp_path: Path) -> None:
    secret = tmp_path / "zenvia_token"
    secret.write_text("tok-from-file-123\n")
    settings = load_settings({"SYNCWORKER_ZENVIA_TOKEN_FILE": str(secret)})
    assert settings.zenvia_token is not None
    assert settings.zenvia_token.get_secret_value() == "tok-from-file-123"
    assert "tok-from-file-123" not in repr(settings)
    assert "tok-from-file-123" not in str(settings.model_dump())


def test_an_unreadable_secret_file_is_reported_with_its_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="SYNCWORKER_SALESFORCE_CLIENT_SECRET_FILE: cannot read"):
        load_settings({"SYNCWORKER_SALESFORCE_CLIENT_SECRET_FILE": str(missing)})


def test_tls_verification_cannot_be_switched_off_for_a_real_remote() -> None:
    with pytest.raises(ConfigError, match="only when every remote is on loopback"):
        load_settings({"SYNCWORKER_VERIFY_TLS": "false"})


def test_missing_credentials_are_listed_together() -> None:
    settings = load_settings({})
    with pytest.raises(
        ConfigError, match="SYNCWORKER_ZENVIA_TOKEN, SYNCWORKER_SALESFORCE_CLIENT_ID"
    ):
        settings.require("zenvia_token", "salesforce_client_id")


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com"])
def test_client_credentials_on_a_shared_login_host_fail_at_start_up_naming_my_domain(
    host: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SYNCWORKER_SALESFORCE_LOGIN_URL": f"https://{host}",
                "SYNCWORKER_SALESFORCE_CLIENT_ID": "cid",
                "SYNCWORKER_SALESFORCE_CLIENT_SECRET": "secret",
            }
        )
    message = str(caught.value)
    assert "SYNCWORKER_SALESFORCE_LOGIN_URL" in message
    assert "https://NAME.my.salesforce.com" in message


def test_the_salesforce_login_url_has_no_default_that_cannot_work() -> None:
    settings = load_settings({"SYNCWORKER_SALESFORCE_CLIENT_ID": "cid"})
    assert settings.salesforce_login_url is None
    with pytest.raises(ConfigError, match="SYNCWORKER_SALESFORCE_LOGIN_URL"):
        settings.require("salesforce_login_url")


def test_a_my_domain_login_url_is_accepted_and_assignment_rules_stay_off_by_default() -> None:
    settings = load_settings(
        {
            "SYNCWORKER_SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com/",
            "SYNCWORKER_SALESFORCE_CLIENT_ID": "cid",
        }
    )
    assert settings.salesforce_login_url == "https://acme.my.salesforce.com"
    assert settings.salesforce_assignment_rules_on_create is False
    on = load_settings({"SYNCWORKER_SALESFORCE_ASSIGNMENT_RULES_ON_CREATE": "true"})
    assert on.salesforce_assignment_rules_on_create is True


def test_a_static_token_needs_no_my_domain_login_url() -> None:
    settings = load_settings(
        {
            "SYNCWORKER_SALESFORCE_LOGIN_URL": "https://login.salesforce.com",
            "SYNCWORKER_SALESFORCE_CLIENT_ID": "cid",
            "SYNCWORKER_SALESFORCE_ACCESS_TOKEN": "token",
        }
    )
    assert settings.salesforce_access_token is not None


def test_building_the_connectors_without_a_login_url_names_my_domain() -> None:
    from syncworker.runtime import build_connectors, build_gates

    settings = load_settings(
        {
            "SYNCWORKER_ZENVIA_TOKEN": "t",
            "SYNCWORKER_SALESFORCE_CLIENT_ID": "cid",
            "SYNCWORKER_SALESFORCE_CLIENT_SECRET": "secret",
        }
    )
    with pytest.raises(ConfigError, match=r"SALESFORCE_LOGIN_URL: .*NAME\.my\.salesforce\.com"):
        build_connectors(settings, build_gates(settings))


def test_the_runtime_refuses_a_mapping_for_another_crm_than_syncworker_crm(tmp_path: Path) -> None:
    from syncworker.runtime import build_runtime

    path = tmp_path / "hubspot.yaml"
    path.write_text(
        "crm_system: hubspot\n"
        "fields:\n"
        "  subject: {crm: subject, zenvia: subject, conflict: newest_wins}\n",
        encoding="utf-8",
    )
    settings = load_settings({}).model_copy(update={"mapping_file": path})
    with pytest.raises(ConfigError) as failure:
        build_runtime(settings, enqueue_sync=lambda side, record_id: None, syncs_waiting=lambda: 0)
    assert str(failure.value) == (
        f"{path}: crm_system 'hubspot' is not the CRM SYNCWORKER_CRM names ('salesforce')"
    )


def test_syncworker_crm_must_name_a_crm_syncworker_can_wire() -> None:
    from syncworker.runtime import build_gates

    settings = load_settings({"SYNCWORKER_CRM": "hubspot"})
    with pytest.raises(ConfigError) as failure:
        build_gates(settings)
    assert str(failure.value) == (
        "SYNCWORKER_CRM='hubspot' is not a CRM syncworker can wire (known: salesforce)"
    )
