"""The ops/ files stay true to the code: alert rules, dashboard and Flower config."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from syncworker.metrics import EXPORTED

OPS = Path(__file__).resolve().parents[2] / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "syncworker-dashboard.json"
RUNBOOK = OPS / "runbook.md"
FLOWER_CONFIG = OPS / "flower" / "flowerconfig.py"
METRIC_NAME = re.compile(r"\bsyncworker_[a-z0-9_]+")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def runbook_anchors() -> set[str]:
    """GitHub's anchors: headings lower-cased, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_when_how_bad_and_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["expr"].strip()
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys()
    anchor = rule["annotations"]["runbook_url"].partition("#")[2]
    assert anchor in runbook_anchors(), f"{rule['alert']}: no runbook section #{anchor}"


def test_alerts_use_only_metrics_the_exporter_exports() -> None:
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used
    assert used <= EXPORTED, sorted(used - EXPORTED)


def test_the_dashboard_shows_every_exported_metric_and_nothing_else() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    assert used == EXPORTED, {"unknown": used - EXPORTED, "missing": EXPORTED - used}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_flower_config_sets_only_options_flower_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    from flower.options import default_options

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:secret")
    config = runpy.run_path(str(FLOWER_CONFIG))
    settings = {
        name: value
        for name, value in config.items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert [name for name in settings if name not in default_options] == []
    assert settings["basic_auth"] == "ops:secret"
    assert settings["read_only"] is True
    assert settings["persistent"] is False


def test_the_flower_config_refuses_to_run_without_basic_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    with pytest.raises(SystemExit, match="FLOWER_BASIC_AUTH"):
        runpy.run_path(str(FLOWER_CONFIG))
