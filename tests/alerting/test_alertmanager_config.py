"""The shipped Alertmanager config, checked and route-tested by the real amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.components import alertmanager as alertmanager_component

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "alertmanager.yml"

# (labels of an alert, the receivers it must reach, in routing-tree order)
ROUTES = [
    # The failover trigger acts and pages.
    ("alertname=DynamoDBRegionDown severity=critical region=us-east-1 table=posts",
     "responder,pagerduty"),
    # Failback only acts: nothing for a person to do.
    ("alertname=DynamoDBFailbackReady severity=info region=us-east-1", "responder"),
    # Pages: what the responder cannot fix.
    ("alertname=DynamoDBReplicationLagHigh severity=critical region=eu-west-1 "
     "source_region=us-east-1 table=posts", "pagerduty"),
    ("alertname=DynamoDBExporterDown severity=critical instance=exporter:9745", "pagerduty"),
    ("alertname=FailoverResponderDown severity=critical instance=responder:9746", "pagerduty"),
    ("alertname=FailoverBlocked severity=critical kind=failover from_region=us-east-1",
     "pagerduty"),
    ("alertname=FailoverActionFailing severity=warning action=www", "null"),
    ("alertname=FailoverStalled severity=critical", "pagerduty"),
    ("alertname=FailoverAwaitingApproval severity=critical transition=t-1", "pagerduty"),
    ("alertname=FailoverSplitState severity=critical action=www region=us-east-1", "pagerduty"),
    ("alertname=FailoverStateStoreDown severity=critical instance=r1", "pagerduty"),
    # Users get errors: the responder fails over and a person is paged. A standby region's
    # dead site is a ticket.
    ("alertname=WordPressSiteDownInActiveRegion severity=critical region=us-east-1",
     "responder,pagerduty"),
    ("alertname=WordPressSiteDown severity=warning region=eu-west-1", "null"),
    # A replica disabled or inaccessible pages (DynamoDB removes it after 20 hours); the
    # responder cannot fix it. One being changed only warns.
    ("alertname=DynamoDBReplicaNotActive severity=critical region=us-east-2 table=posts "
     "status=REGION_DISABLED", "pagerduty"),
    ("alertname=DynamoDBReplicaNotActive severity=warning region=us-east-2 table=posts "
     "status=UPDATING", "null"),
    # Warnings reach no one (Alertmanager UI and Grafana only).
    ("alertname=DynamoDBRegionDegraded severity=warning region=us-east-1 table=posts", "null"),
    # A plan that would not pass is a ticket: never the pager, never the responder's webhook.
    ("alertname=FailoverPlanNotReady severity=warning region=eu-west-1 action=www", "null"),
    # Drift is a person's call: never the pager, never the webhook (never repaired by itself).
    ("alertname=FailoverDrift severity=warning action=www", "null"),
    # No practice run succeeded lately: a ticket.
    ("alertname=FailoverPracticeOverdue severity=warning", "null"),
    # A RegionDown without severity still reaches the responder, never the pager.
    ("alertname=DynamoDBRegionDown region=us-east-1 table=posts", "responder"),
]  # fmt: skip


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text())


def test_shipped_config_passes_amtool_check_config() -> None:
    result = amtool("check-config", str(SHIPPED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout


@pytest.mark.parametrize(("labels", "receivers"), ROUTES, ids=[r[0].split()[0] for r in ROUTES])
def test_routes(labels: str, receivers: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={SHIPPED}",
        f"--verify.receivers={receivers}", *labels.split(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_route_verification_catches_a_wrong_receiver() -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={SHIPPED}",
        "--verify.receivers=pagerduty", "alertname=DynamoDBFailbackReady", "severity=info",
    )  # fmt: skip
    assert result.returncode != 0


def test_failover_route_settings() -> None:
    [responder_route] = [r for r in shipped()["route"]["routes"] if r["receiver"] == "responder"]
    assert responder_route["group_by"] == ["alertname", "region"]
    assert responder_route["continue"] is True
    [receiver] = [r for r in shipped()["receivers"] if r["name"] == "responder"]
    [hook] = receiver["webhook_configs"]
    assert hook["send_resolved"] is True
    assert hook["url"].endswith("/webhook")
    assert hook["http_config"]["authorization"]["credentials_file"].startswith("/run/secrets/")


def test_regiondown_inhibits_the_regions_other_alerts() -> None:
    [rule] = shipped()["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="DynamoDBRegionDown"']
    assert rule["equal"] == ["region"]
    [targets] = rule["target_matchers"]
    inhibited = set(targets.removeprefix('alertname=~"').removesuffix('"').split("|"))
    assert inhibited == {
        "DynamoDBRegionDegraded",
        "DynamoDBReplicationLagHigh",
        "WordPressSiteDown",
        "WordPressSiteDownInActiveRegion",
    }


def test_loopback_rendering_changes_only_urls_and_paths(tmp_path: Path) -> None:
    token, key = tmp_path / "token", tmp_path / "key"
    token.write_text("t\n")
    key.write_text("k\n")
    rendered = alertmanager_component.render_config(
        shipped(),
        templates_dir=REPO / "alertmanager" / "templates",
        webhook_url="http://127.0.0.1:1/webhook",
        webhook_token_file=token,
        pagerduty_url="http://127.0.0.1:2/v2/enqueue",
        pagerduty_key_file=key,
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(rendered))
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert rendered["route"] == shipped()["route"]
    assert rendered["inhibit_rules"] == shipped()["inhibit_rules"]
    receivers = {r["name"]: r for r in rendered["receivers"]}
    hook = receivers["responder"]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:1/webhook"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(token)
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key_file"] == str(key)
    assert rendered["global"]["pagerduty_url"] == "http://127.0.0.1:2/v2/enqueue"
    for name, receiver in receivers.items():
        original = next(r for r in shipped()["receivers"] if r["name"] == name)
        assert receiver.keys() == original.keys()
    assert shipped()["global"]["pagerduty_url"] == "https://events.pagerduty.com/v2/enqueue"


def test_the_shipped_tls_sample_is_valid_alertmanager_config(tmp_path: Path) -> None:
    """Uncommented as docs/security.md says, the responder's tls_config passes amtool."""
    text = SHIPPED.read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# tls_config:")
    for index in range(start, start + 4):
        lines[index] = lines[index].replace("# ", "", 1)
    enabled = "\n".join(lines).replace("http://responder:9746/webhook", "https://responder/webhook")
    for name in ("responder-ca.pem", "alertmanager-cert.pem", "alertmanager-key.pem"):
        enabled = enabled.replace(f"/run/secrets/{name}", str(tmp_path / name))
    config = yaml.safe_load(enabled)
    tls = config["receivers"][1]["webhook_configs"][0]["http_config"]["tls_config"]
    assert set(tls) == {"ca_file", "cert_file", "key_file"}
    (tmp_path / "alertmanager.yml").write_text(enabled)
    (tmp_path / "templates").symlink_to(SHIPPED.parent / "templates")
    result = amtool("check-config", str(tmp_path / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
