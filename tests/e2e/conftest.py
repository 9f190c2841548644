"""One full sandbox stack shared by the end-to-end tests of a session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from sandbox.control import send_chaos
from sandbox.demo import start_stack, wait_stack
from sandbox.net import wait_until
from sandbox.stack import stop_process
from sandbox.watch import StackView, http_json, metric
from tests.responder.weblib import rfc_unix

PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
View = TypeVar("View", bound=StackView)
CONFIG = "ddb-failover.yml"
FAILBACK_WINDOW_SECONDS = 30
# The bound the e2e tests hold detection to, with the sandbox's 2 s probe
# interval: the shipped rules' arithmetic (docs/alerting.md) plus the actions.
FAILOVER_BOUND_SECONDS = 40
# Short enough that a 90 s provider outage in the middle of a failover stalls it.
TRANSITION_DEADLINE_SECONDS = 30
# The sandbox responder's backoff cap (sandbox/components/responder.py).
BACKOFF_CAP_SECONDS = 2.0


class PlanWatch:
    """Samples the responder's plan twice a second for the whole session."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
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
                plan = http_json(f"{self.url}/api/v1/plan", self.token)
            except OSError:
                continue  # a busy moment; the next sample counts
            self.samples.append((time.time(), plan))


@dataclass
class FaultWindow:
    """A DigitalOcean sandbox fault a test set: from when, to when (None: not cleared yet)."""

    status: int
    path_prefix: str
    method: str | None
    start: float
    end: float | None


# The plan problem kind each injected status stands for (responder/actions/do_client.py).
FAULT_KINDS = {401: "credentials", 403: "credentials", 429: "rate_limited"}


def fault_kind(status: int) -> str:
    return FAULT_KINDS.get(status, "unreachable" if status >= 500 else "error")


def plan_reads(action: dict[str, Any]) -> list[str]:
    """The DigitalOcean paths an action's plan inspection GETs (none for other actions)."""
    kind = action["type"]
    if kind == "do_dns_record":
        return [f"/v2/domains/{action['domain']}/records"]
    if kind in ("do_load_balancer", "do_global_load_balancer"):
        droplets = ["/v2/droplets"] if kind == "do_load_balancer" else []
        return [f"/v2/load_balancers/{action['load_balancer_id']}", *droplets]
    if kind == "do_app_env":
        return [f"/v2/apps/{action['app_id']}"]
    return []


@dataclass(frozen=True)
class E2EStack(StackView):
    """A StackView with the helpers the end-to-end tests share."""

    # What the tests broke on purpose, and when, for judging the plan's answers.
    chaos_log: list[tuple[float, str, str]] = field(default_factory=list)
    fault_log: list[FaultWindow] = field(default_factory=list)
    plan_watch: list[PlanWatch] = field(default_factory=list)

    def chaos(self, region: str, op: str) -> None:
        """Apply a chaos operation through the supervisor, as a user would."""
        self.chaos_log.append((time.time(), region, op))
        send_chaos(self.dir, {"region": region, "op": op})
        if op == "restart":
            self.chaos_log.append((time.time(), region, "restarted"))

    def restarting(self, component: str, at: float, settle: float) -> bool:
        """True if component was restarting at `at`, or had come back less than settle s before."""
        began = None
        for moment, name, op in self.chaos_log:
            if name != component:
                continue
            if op == "restart":
                began = moment
            elif op == "restarted" and began is not None:
                if began <= at <= moment + settle:
                    return True
                began = None
        return began is not None and at >= began

    def down_between(
        self,
        region: str,
        start: float,
        end: float,
        breaks: tuple[str, ...] = ("pause", "stop"),
        mends: tuple[str, ...] = ("resume", "start"),
    ) -> bool:
        """True if region was broken (by default: its DynamoDB paused or stopped) at any
        moment from start to end; breaks=("site-down",), mends=("site-up",) for its site."""
        down = False
        for moment, name, op in self.chaos_log:
            if name != region:
                continue
            if moment > end:
                break
            if op in breaks:
                down = True
                if moment >= start:
                    return True
            elif op in mends:
                if down and moment >= start:
                    return True
                down = False
        return down

    def site_down_between(self, region: str, start: float, end: float) -> bool:
        """True if region's WordPress could not answer: its site stopped, or its table down."""
        return self.down_between(region, start, end) or self.down_between(
            region, start, end, ("site-down",), ("site-up",)
        )

    def faulted_between(
        self, action: dict[str, Any], problem: dict[str, Any], start: float, end: float
    ) -> bool:
        """True if a fault the tests set explains problem of action's plan read in [start, end].

        It must have been live then, cover a path the inspection GETs, and answer the
        status the problem's kind and message name. A read not made while a 429 still
        holds (it names the 429) is explained by any live 429: the budget is the token's.
        """
        after_429 = problem["kind"] == "ratelimit" and "HTTP 429" in problem["message"]
        for fault in self.fault_log:
            live = fault.start <= end and (fault.end is None or fault.end >= start)
            if live and after_429 and fault.status == 429:
                return True
            covers = any(path.startswith(fault.path_prefix) for path in plan_reads(action))
            if (
                live
                and covers
                and fault.method in (None, "GET")
                and problem["kind"] == fault_kind(fault.status)
                and f"HTTP {fault.status}" in problem["message"]
            ):
                return True
        return False

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

    def blocked_decisions(self, since: float, timeout: float) -> list[dict[str, Any]]:
        """Wait for a blocked decision made (or repeated) since that Unix time; those, newest
        first."""

        def blocked() -> list[dict[str, Any]]:
            return [
                d
                for d in self.history()["decisions"]
                if d["kind"] == "blocked" and rfc_unix(d["last_at"]) >= since
            ]

        return list(wait_until(blocked, timeout, interval=0.5, message="a blocked decision"))

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
        start = time.time()
        self.do_api("/_sandbox/faults", method="POST", body=body)
        # A count of calls lasts until used up: judged as lasting until cleared.
        seconds = lasting.get("duration_seconds")
        end = time.time() + seconds if seconds is not None else None
        window = FaultWindow(status, path_prefix, lasting.get("method"), start, end)
        self.fault_log.append(window)

    def clear_faults(self) -> None:
        """Let the DigitalOcean sandbox answer normally again."""
        self.do_api("/_sandbox/faults", method="DELETE")
        now = time.time()
        for fault in self.fault_log:
            if fault.end is None or fault.end > now:
                fault.end = now

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


@contextmanager
def small_stack(
    factory: pytest.TempPathFactory,
    needed: Sequence[str],
    *options: str,
    only: Sequence[str] = (),
) -> Iterator[StackView]:
    """A stack of the needed components only (and what they need), up; stopped at the end.

    only names what to start when that differs from what must be up (sites come with the glb).
    """
    directory = factory.mktemp("small-stack")
    proc = start_stack(directory, "--only", ",".join(only or needed), *options)
    try:

        def up() -> StackView | None:
            if proc.poll() is not None:
                raise RuntimeError((directory / "sandbox-up.log").read_text()[-3000:])
            if not (directory / "stack.json").exists():
                return None
            view = StackView.load(directory)
            return view if all(name in view.urls for name in needed) else None

        yield wait_until(up, 180, 0.5, f"a stack of {', '.join(needed)}")
    finally:
        stop_process(proc, grace=60)


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
        # The watch judges every plan it reads: start it once there is a first one.
        wait_until(
            lambda: not http_json(f"{view.urls['responder']}/api/v1/plan", view.token)["stale"],
            60,
            interval=0.5,
            message="the first plan evaluation",
        )
        watch = PlanWatch(view.urls["responder"], view.token)
        e2e.plan_watch.append(watch)
        watch.start()
        yield e2e
        watch.stop()
    finally:
        stop_process(proc, grace=60)
