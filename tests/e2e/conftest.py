"""One full sandbox stack shared by the end-to-end tests of a session."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.cli import send_chaos
from sandbox.demo import start_stack, wait_stack
from sandbox.net import wait_until
from sandbox.stack import stop_process
from sandbox.watch import StackView, http_json, metric

PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
CONFIG = "ddb-failover.yml"
FAILBACK_WINDOW_SECONDS = 30
# The bound the e2e tests hold detection to, with the sandbox's 2 s probe
# interval: the shipped rules' arithmetic (docs/alerting.md) plus the actions.
FAILOVER_BOUND_SECONDS = 40
# Short enough that a 90 s provider outage in the middle of a failover stalls it.
TRANSITION_DEADLINE_SECONDS = 30
# The sandbox responder's backoff cap (sandbox/components/responder.py).
BACKOFF_CAP_SECONDS = 2.0


class E2EStack(StackView):
    """A StackView with the helpers the end-to-end tests share."""

    def chaos(self, region: str, op: str) -> None:
        """Apply a chaos operation through the supervisor, as a user would."""
        send_chaos(self.dir, {"region": region, "op": op})

    def do_api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call one of the DigitalOcean sandbox's control endpoints."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.urls['do_api']}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def do_writes(self) -> list[dict[str, Any]]:
        """Successful changing calls the DigitalOcean sandbox has answered."""
        requests = self.do_api("/_sandbox/requests")["requests"]
        return [r for r in requests if r["method"] != "GET" and r["status"] < 300]

    def alertmanager_replicas(self) -> list[str]:
        """Every Alertmanager replica's URL, from stack.json."""
        return list(json.loads((self.dir / "stack.json").read_text())["alertmanager_replicas"])

    def pages(self) -> list[dict[str, Any]]:
        """Alert events (pages) the PagerDuty sink accepted."""
        events = http_json(f"{self.urls['pagerduty']}/events")["events"]
        return [e for e in events if e["kind"] == "alert"]

    def told(self) -> dict[str, list[str]]:
        """The responder's notifications each receiver got, by idempotency key, oldest first."""
        events = http_json(f"{self.urls['pagerduty']}/events")["events"]
        messages = http_json(f"{self.urls['chat']}/messages")["messages"]
        return {
            "pagerduty": [e["idempotency_key"] for e in events if e["kind"] == "change"],
            "chat": [m["idempotency_key"] for m in messages],
        }

    def chat_fault(self, status: int, count: int) -> None:
        """Make the chat sink answer the next count messages with status."""
        body = json.dumps({"status": status, "count": count, "retry_after": 1}).encode()
        request = urllib.request.Request(
            f"{self.urls['chat']}/_sandbox/faults", data=body, method="POST"
        )
        urllib.request.urlopen(request, timeout=5).close()

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """Prometheus's firing alerts of that name."""
        return [a for a in self.alerts(alertname) if a["state"] == "firing"]

    def fault(self, status: int, path_prefix: str, **lasting: Any) -> None:
        """Make the DigitalOcean sandbox answer status under path_prefix (until cleared)."""
        body = {"status": status, "path_prefix": path_prefix, **lasting}
        self.do_api("/_sandbox/faults", method="POST", body=body)

    def clear_faults(self) -> None:
        """Let the DigitalOcean sandbox answer normally again."""
        self.do_api("/_sandbox/faults", method="DELETE")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """ddb-responder against the stack, as an operator types it."""
        return subprocess.run(
            [sys.executable, "-m", "responder", *args, "--config", str(self.dir / CONFIG)],
            capture_output=True,
            text=True,
            timeout=180,
        )

    def wait_quiet(self, timeout: float = 90) -> None:
        """Wait until no region alert is pending or firing and the responder is steady."""

        def quiet() -> bool:
            healthy = all(
                metric(self.urls["exporter"], "dynamodb_probe_success", region=r, operation="read")
                == 1
                for r in (PRIMARY, SECONDARY)
            )
            return healthy and not self.alerts("DynamoDBRegionDown")

        wait_until(quiet, timeout, interval=0.5, message="stack quiet")

    def outside_state(self) -> dict[str, Any]:
        """Where the DNS record and the Global Load Balancer send users, read through the API."""
        return self.traffic()

    def desired_state(self, region: str) -> dict[str, Any]:
        """What the DNS record and the Global Load Balancer should say for region, per config.

        The record holds the IP of region's own load balancer; the Global Load Balancer
        has region's DigitalOcean region first.
        """
        actions = self.actions()
        return {
            "www": [actions["www"]["values"][region]],
            "wordpress-glb": actions["wordpress-glb"]["values"][region],
        }

    def regional_load_balancers(self) -> dict[str, dict[str, Any]]:
        """Every regional load balancer, by region slug, read through the API."""
        balancers = self.do_get("/v2/load_balancers")["load_balancers"]
        return {lb["region"]["slug"]: lb for lb in balancers if lb.get("type") != "GLOBAL"}

    def env_region(self) -> str | None:
        """The DYNAMODB_REGION the env_file action wrote for WordPress."""
        path = self.dir / "wordpress" / "dynamodb.env"
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            if line.startswith("DYNAMODB_REGION="):
                return line.split("=", 1)[1].strip('"')
        return None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    """The whole stack, with two clustered Alertmanager replicas, for the session."""
    directory = tmp_path_factory.mktemp("e2e-stack")
    window = f"{FAILBACK_WINDOW_SECONDS}s"
    proc = start_stack(
        directory,
        *("--failback-window", window, "--alertmanager-replicas", "2"),
        *("--transition-deadline-seconds", str(TRANSITION_DEADLINE_SECONDS)),
    )
    try:
        view = wait_stack(directory, proc)
        e2e = E2EStack(view.dir, view.urls, view.token)
        e2e.wait_quiet(timeout=120)
        yield e2e
    finally:
        stop_process(proc, grace=60)
