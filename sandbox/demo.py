"""`make demo`: the whole stack on loopback, a primary outage, failover and failback.

DEMO_EXIT=1 exits after the scenario (0 only if failover and failback both
happened); DEMO_TIMELINE=FILE writes the timeline as JSON; DEMO_DIR=DIR keeps
the sandbox's files there instead of a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sandbox.control import send_chaos
from sandbox.net import wait_until
from sandbox.stack import stop_process
from sandbox.users import User, outage
from sandbox.watch import StackView, http_json, metric

FAILBACK_WINDOW = "1m"
FAILOVER_DEADLINE = 180.0
FAILBACK_DEADLINE = 420.0
COMPONENTS = (
    "exporter",
    "prometheus",
    "alertmanager",
    "responder",
    "pagerduty",
    "chat",
    "do_api",
    "blackbox",
    "glb",
)


class Timeline:
    """Events in seconds since the outage's onset, printed as they happen."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.onset = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def add(self, event: str, once_key: str | None = None, **details: Any) -> None:
        """Record and print an event now; with once_key, only the first time."""
        self.add_at(time.monotonic() - self.onset, event, once_key, **details)

    def add_at(self, at: float, event: str, once_key: str | None = None, **details: Any) -> None:
        """Record and print an event that happened at seconds since onset."""
        key = once_key or event
        if key in self.seen:
            return
        self.seen.add(key)
        t = round(at, 2)
        self.events.append({"t": t, "event": event, **details})
        self.events.sort(key=lambda e: float(e["t"]))  # users' events come in late
        if self.quiet:
            return
        extra = "  ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in details.items()
        )
        print(f"  +{t:7.2f}s  {event:<22} {extra}", flush=True)

    def has(self, event: str) -> bool:
        """True once event has been recorded."""
        return any(e["event"] == event for e in self.events)

    def at(self, event: str) -> float | None:
        """Seconds from onset to the first event of that name, or None."""
        return next((e["t"] for e in self.events if e["event"] == event), None)


def start_stack(directory: Path, *options: str) -> subprocess.Popen[bytes]:
    """Run `python -m sandbox up` in its own session, logging to DIR/sandbox-up.log."""
    log = open(directory / "sandbox-up.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--dir", str(directory), *options],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def wait_stack(
    directory: Path, proc: subprocess.Popen[bytes], components: Sequence[str] = COMPONENTS
) -> StackView:
    """Wait until every component of the stack (or those named) is up; RuntimeError if it
    died."""

    def ready() -> StackView | None:
        if proc.poll() is not None:
            tail = (directory / "sandbox-up.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"sandbox up exited with {proc.returncode}:\n{tail}")
        view = StackView.load(directory)
        return view if all(name in view.urls for name in components) else None

    return wait_until(ready, 180, interval=0.5, message="the sandbox stack")


def _watch(view: StackView, timeline: Timeline, primary: str, phase: str) -> None:
    """Emit the events of one phase (failover or failback) as they become visible."""
    exporter, responder = view.urls["exporter"], view.urls["responder"]
    alert = "DynamoDBRegionDown" if phase == "failover" else "DynamoDBFailbackReady"
    webhooks_before = 0.0
    known_steps: set[str] = set()
    start_count = len(view.history()["transitions"])

    def tick() -> bool:
        nonlocal webhooks_before
        success = metric(exporter, "dynamodb_probe_success", region=primary, operation="read")
        if phase == "failover" and success == 0:
            timeline.add("probe_failed", region=primary)
        if phase == "failback" and success == 1:
            timeline.add("probe_ok", region=primary)
        for entry in view.alerts(alert):
            state = entry["state"]
            event = "alert_pending" if state == "pending" else "alert_firing"
            timeline.add(f"{event}", f"{phase}:{event}", alert=alert, region=primary)
        # Count deliveries only once the alert fires: resolved notifications of
        # the previous phase's alert arrive in between.
        webhooks = metric(responder, "responder_webhook_requests_total") or 0.0
        if f"{phase}:alert_firing" not in timeline.seen:
            webhooks_before = webhooks
        elif webhooks > webhooks_before:
            timeline.add("webhook_received", f"{phase}:webhook", alert=alert)
        # The responder's notifications, as the chat room sees them: once per event.
        for message in http_json(f"{view.urls['chat']}/messages")["messages"]:
            key = f"chat:{message['idempotency_key']}"
            timeline.add("notified", key, text=message["text"])
        transitions = view.history()["transitions"]
        if len(transitions) <= start_count:
            return False
        current = transitions[0]
        timeline.add(
            "decision",
            f"{phase}:decision",
            kind=current["kind"],
            to=current["to_region"],
            data_at_risk_seconds=current.get("data_at_risk_seconds"),
        )
        for step in current["steps"]:
            if step["action"] not in known_steps and step["result"] != "failed":
                known_steps.add(step["action"])
                timeline.add(
                    "action",
                    f"{phase}:{step['action']}",
                    action=step["action"],
                    result=step["result"],
                )
        if current["result"] == "completed":
            timeline.add(f"{phase}_completed", active=view.status()["active_region"])
            timeline.add("traffic", f"{phase}:traffic", **_traffic(view))
            return True
        if current["result"] == "failed":
            timeline.add(f"{phase}_failed", error=current.get("error"))
            return True
        return False

    deadline = FAILOVER_DEADLINE if phase == "failover" else FAILBACK_DEADLINE
    _poll(tick, deadline)


def _traffic(view: StackView) -> dict[str, str]:
    """Where DigitalOcean sends users: each record's load balancer, each GLB's first region."""
    balancers = view.do_get("/v2/load_balancers")["load_balancers"]
    names = {lb["ip"]: lb["name"] for lb in balancers}
    shown = {}
    for name, where in view.traffic().items():
        if isinstance(where, list):
            shown[name] = ", ".join(f"{ip} (load balancer {names.get(ip, '?')})" for ip in where)
        else:
            shown[name] = f"{where} first"
    return shown


def _poll(tick: Callable[[], bool], deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if tick():
                return
        except OSError:
            pass  # a component busy or restarting: look again
        time.sleep(0.2)
    print(f"  (gave up waiting after {deadline:.0f}s)", flush=True)


def _users_view(
    timeline: Timeline, user: User, since: float, phase: str, home: str | None = None
) -> None:
    """The user's side of a phase: when their requests failed, when they were served again.

    With home, a phase users never noticed ends when their requests come from home: the
    load balancer's front follows the move a request or two after its last step.
    """
    wall_onset = time.time() - (time.monotonic() - timeline.onset)
    seen = outage(user.requests, since)
    if seen is None:
        failing = next((r for r in user.requests if r.at >= since and not r.ok), None)
        if failing is None:
            if home is not None:
                with contextlib.suppress(TimeoutError):  # then said as it is, below
                    wait_until(lambda: user.requests[-1].region == home, 10, message="home")
            last = user.requests[-1].region if user.requests else None
            if not timeline.quiet and last is not None:
                print(f"  users served throughout, now from {last}", flush=True)
            return
        try:  # the last step is verified; users are served once the sites answer again
            seen = wait_until(lambda: outage(user.requests, since), 30, message="users served")
        except TimeoutError:
            timeline.add_at(failing.at - wall_onset, "users_failing", f"{phase}:users")
            return
    timeline.add_at(seen.first_failure - wall_onset, "users_failing", f"{phase}:users_failing")
    at = seen.back - wall_onset
    timeline.add_at(
        at,
        "users_served",
        f"{phase}:users_served",
        region=seen.region,
        outage_s=round(seen.seconds, 1),
        failed_requests=seen.failed,
    )
    if not timeline.quiet:
        print(f"  users served from {seen.region} again at +{at:.1f} s", flush=True)


def run_scenario(view: StackView, quiet: bool = False) -> Timeline:
    """Pause the primary until failover, then resume it and wait for failback.

    A user asks the Global Load Balancer's front for the front page every 100 ms all
    along; the timeline says when their requests failed and when they were served again.
    """
    status = view.status()
    primary = status.get("primary_region") or status["active_region"]
    if not quiet:
        print(f"\nScenario: black-hole {primary} (SIGSTOP), wait for failover, then failback.")
        print(f"The failback window is shortened to {FAILBACK_WINDOW} for the demo (default 5m).\n")
    user = User(f"{view.urls['glb']}/")
    user.start()
    try:
        timeline = Timeline(quiet)
        send_chaos(view.dir, {"region": primary, "op": "pause"})
        since = time.time()
        timeline.add("onset", region=primary, chaos="pause")
        _watch(view, timeline, primary, "failover")
        _users_view(timeline, user, since, "failover")
        if timeline.has("failover_completed"):
            send_chaos(view.dir, {"region": primary, "op": "resume"})
            since = time.time()
            timeline.add("recovery", region=primary, chaos="resume")
            _watch(view, timeline, primary, "failback")
            _users_view(timeline, user, since, "failback", home=primary)
    finally:
        user.stop()
    return timeline


def _print_urls(view: StackView) -> None:
    print("\nddb-failover sandbox is up:")
    for name in (
        *("responder", "prometheus", "alertmanager", "exporter", "do_api", "pagerduty"),
        *("glb", "blackbox"),
    ):
        print(f"  {name:<13} {view.urls[name]}")
    print(f"  files         {view.dir}")
    print(
        "\nDigitalOcean, as its API allows: one load balancer per region, each over its own"
        "\nregion's droplets. Failover moves the DNS record www to the target region's load"
        "\nbalancer (users follow within its TTL) and puts that region first in the Global"
        "\nLoad Balancer's priorities (no DNS, no TTL)."
    )
    for name, where in _traffic(view).items():
        print(f"  {name:<13} {where}")


def main() -> int:
    """Run the demo; see the module docstring for the environment knobs."""
    directory = Path(os.environ.get("DEMO_DIR") or tempfile.mkdtemp(prefix="ddb-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"Starting the stack in {directory} (regions, DO API, exporter, Prometheus, ...)")
    proc = start_stack(directory, "--failback-window", FAILBACK_WINDOW)
    try:
        view = wait_stack(directory, proc)
        _print_urls(view)
        timeline = run_scenario(view)
        ok = timeline.has("failover_completed") and timeline.has("failback_completed")
        target = os.environ.get("DEMO_TIMELINE")
        if target:
            Path(target).write_text(json.dumps({"events": timeline.events}, indent=2))
        print(f"\nScenario {'complete' if ok else 'INCOMPLETE'}.")
        if os.environ.get("DEMO_EXIT") == "1":
            return 0 if ok else 1
        print("The stack stays up; Ctrl-C stops it. Break a region by hand:")
        print(f"  .venv/bin/python -m sandbox chaos --dir {directory} us-east-1 pause")
        proc.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_process(proc, grace=30)
