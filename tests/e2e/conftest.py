"""One full sandbox stack shared by the end-to-end tests of a session."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from sandbox.cli import send_chaos
from sandbox.demo import start_stack, wait_stack
from sandbox.net import wait_until
from sandbox.stack import stop_process
from sandbox.watch import StackView, http_json, metric

PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
FAILBACK_WINDOW_SECONDS = 30
# The bound the e2e tests hold detection to, with the sandbox's 2 s probe
# interval: the shipped rules' arithmetic (docs/alerting.md) plus the actions.
FAILOVER_BOUND_SECONDS = 40


class PlanWatch:
    """Samples the responder's plan twice a second for the whole session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plan-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.samples.append((time.time(), http_json(f"{self.url}/api/v1/plan")))
            except OSError:
                continue  # a busy moment; the next sample counts


@dataclass(frozen=True)
class E2EStack(StackView):
    """A StackView with the helpers the end-to-end tests share."""

    # (time, region, op) of every chaos operation, for judging the plan's answers.
    chaos_log: list[tuple[float, str, str]] = field(default_factory=list)
    plan_watch: list[PlanWatch] = field(default_factory=list)

    def chaos(self, region: str, op: str) -> None:
        """Apply a chaos operation through the supervisor, as a user would."""
        self.chaos_log.append((time.time(), region, op))
        send_chaos(self.dir, {"region": region, "op": op})

    def down_between(self, region: str, start: float, end: float) -> bool:
        """True if region was paused or stopped at any moment from start to end."""
        down = False
        for moment, name, op in self.chaos_log:
            if name != region:
                continue
            if moment > end:
                break
            if op in ("pause", "stop"):
                down = True
                if moment >= start:
                    return True
            elif op in ("resume", "start"):
                if down and moment >= start:
                    return True
                down = False
        return down

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
        """Events the PagerDuty sink accepted."""
        return list(http_json(f"{self.urls['pagerduty']}/events")["events"])

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """Prometheus's firing alerts of that name."""
        return [a for a in self.alerts(alertname) if a["state"] == "firing"]

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

    def actions(self) -> dict[str, dict[str, Any]]:
        """The responder's configured actions, by name, from the generated config."""
        config = yaml.safe_load((self.dir / "ddb-failover.yml").read_text())
        return {a["name"]: a for a in config["responder"]["actions"]}

    def do_get(self, path: str) -> Any:
        """GET a DigitalOcean API path from the sandbox with the generated token."""
        token = (self.dir / "secrets" / "do-token").read_text().strip()
        request = urllib.request.Request(
            f"{self.urls['do_api']}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def outside_state(self) -> dict[str, Any]:
        """What DNS and the load balancer point at now, read through the API."""
        www, lb = self.actions()["www"], self.actions()["wordpress-lb"]
        fqdn = f"{www['record_name']}.{www['domain']}"
        records = self.do_get(f"/v2/domains/{www['domain']}/records?type=A&name={fqdn}")
        balancer = self.do_get(f"/v2/load_balancers/{lb['load_balancer_id']}")["load_balancer"]
        return {
            "www": [r["data"] for r in records["domain_records"]],
            "wordpress-lb": {"tag": balancer.get("tag")}
            if balancer.get("tag")
            else {"droplet_ids": sorted(balancer.get("droplet_ids", []))},
        }

    def desired_state(self, region: str) -> dict[str, Any]:
        """What DNS and the load balancer should point at for region, per the config."""
        actions = self.actions()
        return {
            "www": [actions["www"]["values"][region]],
            "wordpress-lb": actions["wordpress-lb"]["values"][region],
        }

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
    proc = start_stack(directory, "--failback-window", window, "--alertmanager-replicas", "2")
    try:
        view = wait_stack(directory, proc)
        e2e = E2EStack(view.dir, view.urls, view.token)
        e2e.wait_quiet(timeout=120)
        watch = PlanWatch(view.urls["responder"])
        e2e.plan_watch.append(watch)
        watch.start()
        yield e2e
        watch.stop()
    finally:
        stop_process(proc, grace=60)
