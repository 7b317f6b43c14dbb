"""`syncworker sandbox salesforce` refuses bad switch values before it listens."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from syncworker.sandbox.cli import app

BASE = ("salesforce", "--client-id", "c", "--client-secret", "s", "--port", "0")


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (("--visibility-delay", "2:90"), "SHARE:SECONDS, SHARE in 0..1"),
        (("--visibility-delay", "half"), "not 'half'"),
        (("--query-scan-limit", "-1"), "must be 0 (no limit) or more"),
    ],
    ids=["share-above-one", "not-share-seconds", "negative-scan-limit"],
)
def test_a_bad_switch_value_is_refused_naming_what_is_expected(
    option: tuple[str, str], says: str
) -> None:
    result = CliRunner().invoke(app, [*BASE, *option])
    assert result.exit_code == 2
    assert says in " ".join(result.output.replace("│", " ").split())
