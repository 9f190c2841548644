"""The shipped Prometheus config and rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.components import prometheus as prometheus_component

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
RULE_TESTS = sorted((Path(__file__).parent / "testdata" / "rules").glob("*.test.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
CONTRACT_ALERTS = {
    "DynamoDBRegionDown",
    "DynamoDBRegionDegraded",
    "DynamoDBReplicationLagHigh",
    "DynamoDBFailbackReady",
    "DynamoDBExporterDown",
    "FailoverResponderDown",
    "FailoverBlocked",
    "FailoverActionFailing",
    "FailoverStalled",
    "FailoverSplitState",
    "FailoverStateStoreDown",
    "FailoverAwaitingApproval",
    "FailoverPlanNotReady",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def test_shipped_config_and_rules_pass_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_shipped_rules_pass_promtool_check_rules() -> None:
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.stem)
def test_rule_unit_tests(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    # A RegionDown without its sustained window must fail the blip test.
    rules = tmp_path / "prometheus" / "rules"
    rules.mkdir(parents=True)
    for source in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        (rules / source.name).write_text(source.read_text().replace("for: 10s", "for: 0s"))
    tests = tmp_path / "tests" / "alerting" / "testdata" / "rules"
    tests.mkdir(parents=True)
    test_file = tests / "region_down.test.yml"
    test_file.write_text((RULE_TESTS[0].parent / "region_down.test.yml").read_text())
    result = promtool("test", "rules", str(test_file))
    assert result.returncode != 0
    assert "blip shorter than the window does not fire" in result.stdout + result.stderr


def test_every_contract_alert_is_shipped_with_labels_and_annotations() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == CONTRACT_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{rule['alert']} has no {key}"


def test_every_runbook_url_points_at_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith("/docs/runbook.md"), url
        assert anchor in anchors, f"{rule['alert']}: no '## {anchor}' section in docs/runbook.md"


def test_failback_window_is_stated_once() -> None:
    [failback] = [r for r in alert_rules() if r["alert"] == "DynamoDBFailbackReady"]
    assert failback["for"] == prometheus_component.SHIPPED_FAILBACK_WINDOW


def shipped_config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())


def test_loopback_rendering_changes_only_targets_and_rule_path(tmp_path: Path) -> None:
    shipped = shipped_config()
    rendered = prometheus_component.render_config(
        shipped,
        rules_dir=PROMETHEUS_DIR / "rules",
        targets={
            "prometheus": ["127.0.0.1:1"],
            "ddb_exporter": ["127.0.0.1:2"],
            "ddb_failover_responder": ["127.0.0.1:3"],
            "alertmanager": ["127.0.0.1:4"],
        },
        alertmanagers=["127.0.0.1:4"],
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert rendered["rule_files"] == [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    jobs = {job["job_name"]: job for job in rendered["scrape_configs"]}
    assert jobs["ddb_exporter"]["static_configs"] == [{"targets": ["127.0.0.1:2"]}]
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:4"
    ]

    def strip(config: dict[str, Any]) -> dict[str, Any]:
        config = yaml.safe_load(yaml.safe_dump(config))
        config.pop("rule_files")
        for job in config["scrape_configs"]:
            job.pop("static_configs")
        config["alerting"]["alertmanagers"][0].pop("static_configs")
        return config

    assert strip(rendered) == strip(shipped)
    assert shipped["scrape_configs"][1]["static_configs"] == [{"targets": ["exporter:9745"]}]


def test_rendering_rejects_an_unknown_job() -> None:
    with pytest.raises(ValueError, match="no scrape job ddb_exportr"):
        prometheus_component.render_config(
            shipped_config(),
            rules_dir=PROMETHEUS_DIR / "rules",
            targets={"ddb_exportr": ["127.0.0.1:2"]},
            alertmanagers=[],
        )


def test_demo_failback_window_changes_only_that_window(tmp_path: Path) -> None:
    out = prometheus_component.render_rules(PROMETHEUS_DIR / "rules", tmp_path, "1m")
    result = promtool("check", "rules", *sorted(str(p) for p in out.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr

    def load(directory: Path) -> dict[str, Any]:
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yml"))}

    shipped, rendered = load(PROMETHEUS_DIR / "rules"), load(out)
    changed = []
    for name, data in rendered.items():
        for group, original in zip(data["groups"], shipped[name]["groups"], strict=True):
            for rule, before in zip(group["rules"], original["rules"], strict=True):
                if rule != before:
                    changed.append(rule.get("alert"))
                    assert rule["for"] == "1m"
                    assert "(1m)" in rule["annotations"]["description"]
    assert changed == ["DynamoDBFailbackReady"]
