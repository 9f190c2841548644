"""The demo stack in containers: healthchecks, users and secrets, scrapes, and a failover and
failback through the containers with a responder restarted in the middle of a transition."""

from __future__ import annotations

import json
import time
from typing import Any

from sandbox.net import wait_until
from tests.compose.conftest import (
    SERVICE_UID,
    SERVICES,
    Stack,
    prometheus_query,
    prometheus_targets,
)

NOBODY = 65534
# Each service's user and the secrets it reads (docker-compose.yml, docs/deploy.md).
SECRETS = {
    "exporter": (SERVICE_UID, ["exporter-aws-credentials"]),
    "responder": (
        SERVICE_UID,
        [
            "responder-aws-credentials",
            "webhook-token",
            "operator-token",
            "viewer-token",
            "digitalocean-token",
        ],
    ),
    "sandbox": (SERVICE_UID, ["digitalocean-token"]),
    "alertmanager": (NOBODY, ["webhook-token", "pagerduty-routing-key"]),
}
PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
# Onset to failover: DynamoDBRegionDown within 23 s (docs/alerting.md), then the webhook,
# the decision and the three actions; with room for two cores shared by many tests.
FAILOVER_WITHIN = 180.0
# Failback: the region healthy again, DynamoDBFailbackReady held for its `for: 5m`
# (prometheus/rules/dynamodb.yml, as shipped), then the auto failback.
FAILBACK_WITHIN = 600.0
FAILBACK_WINDOW = 300.0  # the shipped DynamoDBFailbackReady's for: 5m
EVIDENCE_ALERTS = ("DynamoDBRegionDown", "DynamoDBFailbackReady")
# What the demo's sandbox answers DNS updates with while the fault is on: a transition in
# progress, retried with backoff, until it is cleared.
DNS_OUTAGE = {"status": 503, "path_prefix": "/v2/domains", "method": "PATCH"}


def test_every_service_passes_its_healthcheck(stack: Stack) -> None:
    for service in SERVICES:
        health = stack.podman.run(
            "inspect", "--format", "{{.State.Health.Status}}", stack.containers[service]
        ).stdout.strip()
        assert health == "healthy", f"{service}: {health}"
    # Built with --format docker: the Dockerfile's HEALTHCHECKs are in the images.
    for service in ("responder", "sandbox"):
        image = stack.podman.run(
            "inspect", "--format", "{{.ImageName}}", stack.containers[service]
        ).stdout.strip()
        check = json.loads(
            stack.podman.run("image", "inspect", "--format", "{{json .HealthCheck}}", image).stdout
        )
        assert check and check["Test"][0] == "CMD", (service, check)


def test_services_run_as_their_user_with_private_secrets_and_read_only_configs(
    stack: Stack,
) -> None:
    for service, (uid, names) in SECRETS.items():
        assert stack.exec(service, "id", "-u").stdout.strip() == str(uid), service
        stranger = str(uid + 1)  # any other user
        for name in names:
            path = f"/run/secrets/{name}"
            owner_mode = stack.exec(service, "stat", "-L", "-c", "%u %a", path).stdout.split()
            assert owner_mode == [str(uid), "600"], (service, path)
            other = stack.exec(service, "cat", path, user=stranger, check=False)
            assert other.returncode != 0 and "Permission denied" in other.stderr, (service, path)
    configs = {
        "exporter": "/etc/ddb-failover/ddb-failover.yml",
        "responder": "/etc/ddb-failover/ddb-failover.yml",
        "prometheus": "/etc/prometheus/prometheus.yml",
        "alertmanager": "/etc/alertmanager/alertmanager.yml",
    }
    for service, path in configs.items():
        written = stack.exec(service, "sh", "-c", f"echo >> {path}", user="0", check=False)
        assert written.returncode != 0 and "Read-only file system" in written.stderr, service
    for service in ("exporter", "responder"):
        assert "secret file" not in stack.logs(service), service
    # The demo's secrets as the repository has them would be readable by every user: warned.
    exposed = stack.exec(
        "responder",
        "sh",
        "-c",
        "cp /run/secrets/webhook-token /tmp/t && chmod 644 /tmp/t && "
        "sed 's#/run/secrets/webhook-token#/tmp/t#' /etc/ddb-failover/ddb-failover.yml "
        "> /tmp/c.yml && ddb-responder check-config --config /tmp/c.yml",
    )
    assert "warning: secret file /tmp/t is readable by its group and every user" in exposed.stderr
    assert stack.exec("prometheus", "id", "-u").stdout.strip() == str(NOBODY)  # as upstream


def test_prometheus_scrapes_every_service(stack: Stack) -> None:
    def all_up() -> list[dict[str, Any]] | None:
        targets = prometheus_targets()
        scraped = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        wanted = {"prometheus", "ddb_exporter", "ddb_failover_responder", "alertmanager"}
        return targets if wanted <= scraped else None

    wait_until(all_up, 60, 1.0, "Prometheus scraping every service")

    def vantages() -> set[str] | None:
        found = prometheus_query("count by (vantage) (dynamodb_probe_success)")
        return {r["metric"].get("vantage", "") for r in found} or None

    # The exporter's metrics carry the vantage its config names (exporter.vantage).
    assert wait_until(vantages, 60, 1.0, "the exporter's probes in Prometheus") == {"demo"}


def test_the_plan_is_ready_before_the_first_failover(stack: Stack) -> None:
    # No env file yet in the responder's volume: the failover creates it (issue 27, 1).
    moved = stack.status()["last_transition"]
    assert moved is None, f"moved before any outage was made: {moved}"
    assert (
        stack.exec(
            "responder", "test", "-e", "/var/lib/ddb-failover/wordpress.env", check=False
        ).returncode
        != 0
    )

    def ready() -> str | None:
        result = stack.responder("plan", check=False)
        return result.stdout if result.returncode == 0 else None

    out = wait_until(ready, 90, 2.0, "the plan ready")
    assert f"failover to {SECONDARY}: READY" in out, out
    # A cold start is no outage: with the sandbox healthy before the exporter's first probe
    # (and the exporter started last, its lookups answered), no region was seen down.
    status = stack.status()
    assert (status["active_region"], status["last_transition"]) == (PRIMARY, None), status


def sandbox_faults(stack: Stack, method: str, body: dict[str, Any] | None = None) -> None:
    """The DigitalOcean API sandbox's fault control, from inside its container."""
    script = (
        "import json, sys, urllib.request; "
        "data = sys.argv[2].encode() if sys.argv[2] != 'null' else None; "
        "request = urllib.request.Request('http://127.0.0.1:8080/_sandbox/faults', data=data, "
        "method=sys.argv[1], headers={'Content-Type': 'application/json'}); "
        "urllib.request.urlopen(request, timeout=10).read()"
    )
    stack.exec("sandbox", "python", "-c", script, method, json.dumps(body))


def chaos(stack: Stack, region: str, op: str) -> None:
    stack.exec("sandbox", "python", "-m", "sandbox", "chaos", "--dir", "/sandbox", region, op)


def test_failover_survives_a_responder_restart_mid_transition(stack: Stack) -> None:
    assert stack.status()["active_region"] == PRIMARY
    sandbox_faults(stack, "POST", DNS_OUTAGE)
    chaos(stack, PRIMARY, "pause")

    def in_progress() -> dict[str, Any] | None:
        status = stack.status()
        return status["last_transition"] if status["in_progress"] else None

    started = wait_until(in_progress, FAILOVER_WITHIN, 2.0, "a failover in progress")
    assert (started["to_region"], started["result"]) == (SECONDARY, "in_progress"), started
    stack.compose("restart", "responder", timeout=180)
    wait_until(lambda: stack.healthy("responder"), 120, 1.0, "the restarted responder healthy")
    sandbox_faults(stack, "DELETE")

    def done() -> dict[str, Any] | None:
        status = stack.status()
        return status if status["active_region"] == SECONDARY else None

    status = wait_until(done, FAILOVER_WITHIN, 2.0, f"the failover to {SECONDARY} done")
    last = status["last_transition"]
    assert last["id"] == started["id"] and last["result"] == "completed", last
    env = stack.exec("responder", "cat", "/var/lib/ddb-failover/wordpress.env").stdout
    assert f"DYNAMODB_REGION={SECONDARY}" in env


def test_failback_through_the_containers(stack: Stack) -> None:
    chaos(stack, PRIMARY, "resume")
    resumed = time.monotonic()

    def back() -> dict[str, Any] | None:
        status = stack.status()
        last = status.get("last_transition") or {}
        done = status["active_region"] == PRIMARY and last.get("result") == "completed"
        return status if done else None

    status = wait_until(back, FAILBACK_WITHIN, 2.0, f"the failback to {PRIMARY}")
    # Slow to flap: the primary must stay healthy for DynamoDBFailbackReady's whole window.
    waited = time.monotonic() - resumed
    # A failover home (the secondary seen down) would pass the wait below for a failback.
    assert status["last_transition"]["kind"] == "failback", failback_evidence(stack)
    assert waited >= FAILBACK_WINDOW, (waited, failback_evidence(stack))
    env = stack.exec("responder", "cat", "/var/lib/ddb-failover/wordpress.env").stdout
    assert f"DYNAMODB_REGION={PRIMARY}" in env


def failback_evidence(stack: Stack) -> dict[str, Any]:
    """What moved traffic home: the responder's history and the rule's inputs over 15 min."""
    series = ["ALERTS", "ddb:region_healthy:bool", "responder_active_region"]
    samples = {
        name: [
            (r["metric"], [(t, v) for t, v in r["values"][:: max(1, len(r["values"]) // 40)]])
            for r in prometheus_query(f"{name}[15m]")
            if r["metric"].get("alertname", "DynamoDBRegionDown") in EVIDENCE_ALERTS
        ]
        for name in series
    }
    history = stack.responder("--json", "history", check=False).stdout
    return {"samples": samples, "history": history[-6000:], "now": time.time()}
