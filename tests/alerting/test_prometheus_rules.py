"""The shipped Prometheus config and rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddb_failover.config import ExporterConfig
from sandbox import profiles
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
    "FailoverDrift",
    "WordPressSiteDown",
    "WordPressSiteDownInActiveRegion",
    "DynamoDBReplicaNotActive",
    "FailoverPracticeOverdue",
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
    assert "3 rule files found" in result.stdout


def test_shipped_rules_pass_promtool_check_rules() -> None:
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.stem)
def test_rule_unit_tests(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    # A RegionDown with half its window must fail the blip test.
    rules = tmp_path / "prometheus" / "rules"
    rules.mkdir(parents=True)
    for source in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        text = source.read_text()
        (rules / source.name).write_text(text.replace(">= bool 10)", ">= bool 5)"))
    tests = tmp_path / "tests" / "alerting" / "testdata" / "rules"
    tests.mkdir(parents=True)
    test_file = tests / "region_down.test.yml"
    test_file.write_text((RULE_TESTS[0].parent / "region_down.test.yml").read_text())
    result = promtool("test", "rules", str(test_file))
    assert result.returncode != 0
    # The blip test's query (promtool names no group for a promql test that fails).
    assert '[2m])", time: 2m' in result.stdout + result.stderr


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
    rule_files = profiles.load("shipped").rule_files
    rendered = prometheus_component.render_config(
        shipped,
        rule_files=rule_files,
        targets={
            "prometheus": ["127.0.0.1:1"],
            "ddb_exporter": ["127.0.0.1:2"],
            "ddb_failover_responder": ["127.0.0.1:3"],
            "alertmanager": ["127.0.0.1:4"],
        },
        alertmanagers=["127.0.0.1:4"],
        probes={
            "us-east-1": "http://127.0.0.1:5/healthz",
            "eu-west-1": "http://127.0.0.1:6/healthz",
        },
        prober="127.0.0.1:7",
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert rendered["rule_files"] == [str(p) for p in sorted((PROMETHEUS_DIR / "rules").glob("*"))]
    jobs = {job["job_name"]: job for job in rendered["scrape_configs"]}
    assert jobs["ddb_exporter"]["static_configs"] == [{"targets": ["127.0.0.1:2"]}]
    # One target per region, labelled, scraped through the blackbox_exporter.
    assert jobs["wordpress"]["static_configs"] == [
        {"targets": ["http://127.0.0.1:5/healthz"], "labels": {"region": "us-east-1"}},
        {"targets": ["http://127.0.0.1:6/healthz"], "labels": {"region": "eu-west-1"}},
    ]
    [address] = [r for r in jobs["wordpress"]["relabel_configs"] if "replacement" in r]
    assert address == {"target_label": "__address__", "replacement": "127.0.0.1:7"}
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:4"
    ]

    def strip(config: dict[str, Any]) -> dict[str, Any]:
        config = yaml.safe_load(yaml.safe_dump(config))
        config.pop("rule_files")
        for job in config["scrape_configs"]:
            job.pop("static_configs")
            for relabel in job.get("relabel_configs", []):
                if relabel.get("target_label") == "__address__":
                    relabel.pop("replacement")
        config["alerting"]["alertmanagers"][0].pop("static_configs")
        return config

    assert strip(rendered) == strip(shipped)
    assert shipped["scrape_configs"][1]["static_configs"] == [{"targets": ["exporter:9745"]}]


def test_without_a_prober_the_wordpress_job_probes_nothing(tmp_path: Path) -> None:
    rendered = prometheus_component.render_config(
        shipped_config(), rule_files=[], targets={}, alertmanagers=[]
    )
    [job] = [j for j in rendered["scrape_configs"] if j["job_name"] == "wordpress"]
    assert job["static_configs"] == []
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_rejects_an_unknown_job() -> None:
    with pytest.raises(ValueError, match="no scrape job ddb_exportr"):
        prometheus_component.render_config(
            shipped_config(),
            rule_files=[],
            targets={"ddb_exportr": ["127.0.0.1:2"]},
            alertmanagers=[],
        )


@pytest.mark.parametrize("name", ["shipped", "fast"])
def test_demo_failback_window_changes_only_that_window(name: str, tmp_path: Path) -> None:
    profile = profiles.load(name)
    out = prometheus_component.render_rules(profile.rule_files, tmp_path, "1m")
    result = promtool("check", "rules", *map(str, out))
    assert result.returncode == 0, result.stdout + result.stderr

    def load(directory: Path) -> dict[str, Any]:
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yml"))}

    shipped = {p.name: yaml.safe_load(p.read_text()) for p in profile.rule_files}
    rendered = load(tmp_path)
    changed = []
    for name, data in rendered.items():
        for group, original in zip(data["groups"], shipped[name]["groups"], strict=True):
            for rule, before in zip(group["rules"], original["rules"], strict=True):
                if rule != before:
                    changed.append(rule.get("alert"))
                    assert rule["for"] == "1m"
                    assert "(1m)" in rule["annotations"]["description"]
    assert changed == ["DynamoDBFailbackReady"]


def test_fast_profile_files_are_generated_from_the_shipped_ones() -> None:
    assert profiles.stale_files() == [], "run: .venv/bin/python -m sandbox.profiles"
    fast = PROMETHEUS_DIR / "fast" / "prometheus.yml"
    result = promtool("check", "config", str(fast))
    assert result.returncode == 0, result.stdout + result.stderr
    # The fast profile loads every shipped rule file but the region rules, and its own copy.
    shipped = {p.name for p in profiles.load("shipped").rule_files}
    loaded = profiles.load("fast").rule_files
    assert {p.name for p in loaded} == shipped
    assert [p for p in loaded if p.parent != PROMETHEUS_DIR / "rules"] == [
        PROMETHEUS_DIR / "fast" / "rules" / "dynamodb.yml"
    ]


def test_fast_rules_differ_from_the_shipped_only_in_the_window() -> None:
    def rules(path: Path) -> list[dict[str, Any]]:
        return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]

    shipped = rules(PROMETHEUS_DIR / "rules" / "dynamodb.yml")
    fast = rules(PROMETHEUS_DIR / "fast" / "rules" / "dynamodb.yml")
    changed = [
        (a.get("record") or a.get("alert")) for a, b in zip(shipped, fast, strict=True) if a != b
    ]
    assert changed == ["ddb:region_down_vantages:ratio", "DynamoDBRegionDown"]
    [down] = [r for r in fast if r.get("alert") == "DynamoDBRegionDown"]
    assert "at least 5 s" in down["annotations"]["description"]


@pytest.mark.parametrize(
    ("name", "timings", "immunity", "bound_fast_scrape", "bound_slow_scrape"),
    [
        # P, T, S, scrape timeout, E, W
        ("shipped", (5, 2, 5, 4, 1, 10), 10, 23.01, 27),
        ("fast", (1, 0.5, 1, 0.8, 1, 5), 5, 8.51, 9.3),
    ],
)
def test_profile_figures_and_promises(
    name: str,
    timings: tuple[float, ...],
    immunity: float,
    bound_fast_scrape: float,
    bound_slow_scrape: float,
) -> None:
    # The figures docs/alerting.md states, read from the files a deployment uses.
    profile = profiles.load(name)
    assert (
        profile.probe_interval,
        profile.probe_timeout,
        profile.scrape_interval,
        profile.scrape_timeout,
        profile.evaluation_interval,
        profile.window,
    ) == timings
    assert profile.immunity() == immunity
    assert profile.detection_bound(0.01) == pytest.approx(bound_fast_scrape)
    assert profile.detection_bound() == pytest.approx(bound_slow_scrape)


def test_fast_profile_exporter_settings_are_valid() -> None:
    data = yaml.safe_load((REPO / "examples" / "fast-profile.yml").read_text())
    assert set(data) == {"exporter"}
    settings = ExporterConfig.model_validate(data["exporter"])
    assert (settings.interval_seconds, settings.timeout_seconds) == (1, 0.5)


def test_profile_durations() -> None:
    assert profiles.duration("800ms") == 0.8
    assert profiles.duration("1m30s") == 90
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        profiles.duration("5 s")
