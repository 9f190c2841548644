"""Running one `bench chaos` schedule on the shared stack: apply, quiesce, check.

Every request the harness makes to a responder is kept (a Call) for check (e). Live
details come from the stack as the events are applied: the transition an approve names
is the one in progress, an alert's startsAt is when its region went down.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import chaos_checks as checks
from bench.chaos_schedule import ACTIVE, BROKEN, Event, Schedule
from bench.chaos_stack import DELAY_PAST_TIMEOUT, SQLITE_BUSY_SECONDS, ChaosStack, Replica
from sandbox.control import send_chaos

QUIESCE_SECONDS = 60.0
REQUEST_TIMEOUT = checks.HANG_SECONDS + 1.0
# After a store outage ends, requests that waited on it may still answer 503 for this long.
STORE_GRACE_SECONDS = SQLITE_BUSY_SECONDS + 2.0
KILL_GRACE_SECONDS = 1.0
STALL_SETTLE_SECONDS = 8.0
# How long after the system settled the plan has to report drift (it evaluates every 2 s).
DRIFT_REPORT_SECONDS = 12.0
IN_PROGRESS = ("failing_over", "failing_back")


def _rfc3339(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class _Stillness:
    """How long the responder's status has stayed the same (a stalled transition past its
    deadline may still be moving: it has settled only when it stops changing)."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.since = time.monotonic()

    def held(self, status: dict[str, Any] | None) -> float:
        now = time.monotonic()
        keys = ("phase", "in_progress", "last_transition", "actions")
        seen = json.dumps({k: (status or {}).get(k) for k in keys}, sort_keys=True)
        if seen != self.last:
            self.last, self.since = seen, now
        return now - self.since


@dataclass
class Outcome:
    """What one schedule did and found."""

    seed: int
    seconds: float
    violations: list[str]
    transitions: int
    phase: str
    described: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    notes: dict[str, Any] = field(default_factory=dict)  # for a violation's kept files

    def replay(self) -> str:
        """The one command that replays it."""
        return f"BENCH_CHAOS_SEEDS={self.seed} python -m bench chaos"


@dataclass
class Run:
    """One schedule on the stack: its events applied, its calls kept."""

    stack: ChaosStack
    schedule: Schedule
    calls: list[checks.Call] = field(default_factory=list)
    disruptions: list[tuple[int, float, float]] = field(default_factory=list)  # replica, from, to
    down_since: dict[str, float] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    repaired: bool = False  # quiesce asked for a repair of reported drift
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _booting: list[threading.Thread] = field(default_factory=list)
    _store: Any = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.schedule.seed * 7919 + 1)

    # -- talking to the responders ------------------------------------------------------

    def replica(self) -> Replica:
        """A live replica, chosen at random (the first when none lives)."""
        alive = [r for r in self.stack.replicas if r.alive]
        return self.rng.choice(alive) if alive else self.stack.replicas[0]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str = "operator-token",
        to: Any = None,
    ) -> tuple[int | None, Any]:
        """One request to a responder, kept for check (e); (status, decoded body)."""
        replica = to or self.replica()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.stack.token(token)}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{replica.url}{path}", data=data, method=method, headers=headers
        )
        started = time.time()
        status: int | None = None
        error: str | None = None
        answer: Any = None
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            error, raw = f"{type(exc).__name__}: {exc}", b""
        if raw:
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
        with self._lock:
            self.calls.append(
                checks.Call(started, time.time(), method, path, replica.index, status, error)
            )
        return status, answer

    def read(self, path: str) -> Any:
        """GET a viewer endpoint from any live replica, trying each (None if none answers)."""
        for replica in [r for r in self.stack.replicas if r.alive]:
            status, body = self.call("GET", path, token="viewer-token", to=replica)
            if status == 200:
                return body
        return None

    # -- events ---------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        getattr(self, f"_{event.kind}")(**event.args)

    def resolve(self, region: str) -> str:
        """A region the event names by role (@active, @down) as it is now."""
        active = (self.read("/api/v1/status") or {}).get("active_region", self.stack.regions[0])
        if region == BROKEN and self.stack.down:
            return self.rng.choice(sorted(self.stack.down))
        return str(active) if region in (ACTIVE, BROKEN) else region

    def _region(self, op: str, region: str | None = None) -> None:
        if op == "mend":
            if not self.stack.down:
                return
            region = self.rng.choice(sorted(self.stack.down))
            mend = "resume" if self.stack.down.pop(region) == "pause" else "start"
            send_chaos(self.stack.dir, {"region": region, "op": mend})
            self.down_since.pop(region, None)
            return
        assert region is not None
        up = [r for r in self.stack.regions if r not in self.stack.down]
        region = self.resolve(region)
        if region not in up:
            if not up:
                return
            region = self.rng.choice(up)
        send_chaos(self.stack.dir, {"region": region, "op": op})
        self.stack.down[region] = op
        self.down_since.setdefault(region, time.time())

    def _alert_payload(self, name: str, region: str, status: str) -> dict[str, Any]:
        fingerprint = hashlib.sha256(f"{name}/{region}".encode()).hexdigest()[:16]
        onset = self.down_since.get(region, time.time() - 30)
        labels = {"alertname": name, "severity": "critical", "region": region}
        if name != "DynamoDBFailbackReady":
            labels["table"] = "wordpress_posts"
        alert = {
            "status": status,
            "labels": labels,
            "annotations": {"summary": f"{name} {region}"},
            "startsAt": _rfc3339(onset),
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else _rfc3339(time.time()),
            "generatorURL": "http://prometheus.test/graph",
            "fingerprint": fingerprint,
        }
        return {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "ddb-failover",
            "groupLabels": {"alertname": name},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.test:9093",
            "alerts": [alert],
        }

    def _webhook(self, body: dict[str, Any]) -> None:
        self.call("POST", "/webhook", body, token="webhook-token")

    def _alert(self, name: str, region: str, status: str, delivery: str) -> None:
        region = self.resolve(region)
        body = self._alert_payload(name, region, status)
        if delivery == "once":
            self._webhook(body)
        elif delivery == "duplicate":
            self._webhook(body)
            self._webhook(body)
        elif delivery == "concurrent":
            barrier = threading.Barrier(3)

            def send() -> None:
                barrier.wait(10)
                self._webhook(body)

            threads = [threading.Thread(target=send) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        else:  # out of order: the newer state first, then the stale one
            other = "resolved" if status == "firing" else "firing"
            self._webhook(self._alert_payload(name, region, other))
            self._webhook(body)

    def _do_fault(self, method: str | None = None, **fault: Any) -> None:
        body: dict[str, Any] = {}
        if fault.get("delay"):
            body = {"delay_seconds": DELAY_PAST_TIMEOUT, "apply": fault["apply"]}
        else:
            body = {"status": fault["status"]}
        if "count" in fault:
            body["count"] = fault["count"]
        if "seconds" in fault:
            body["duration_seconds"] = fault["seconds"]
        if method is not None:
            body["method"] = method
        self.stack.do_control("/_sandbox/faults", "POST", body)

    def _sink_fault(self, sink: str, status: int, count: int) -> None:
        body = {"status": status, "count": count, "retry_after": 1}
        self.stack.sink_control(sink, "POST", body)

    def _kill_worker(self, replica: int) -> None:
        now = time.time()
        if self.stack.replicas[replica % len(self.stack.replicas)].kill_worker() is not None:
            self.disruptions.append((replica, now, now + KILL_GRACE_SECONDS))

    def _kill_replica(self, replica: int) -> None:
        target = self.stack.replicas[replica % len(self.stack.replicas)]
        if target.alive:
            target.kill()
            self.disruptions.append((target.index, time.time(), float("inf")))

    def _restart_replica(self, replica: int) -> None:
        """Start a killed replica again; the schedule goes on while it boots."""
        target = self.stack.replicas[replica % len(self.stack.replicas)]
        if target.alive:
            return
        target.spawn()

        def booted() -> None:
            try:
                target.wait_ready()
            finally:
                self._mark_restarted(target.index)

        thread = threading.Thread(target=booted, name="replica-boot", daemon=True)
        thread.start()
        self._booting.append(thread)

    def _mark_restarted(self, index: int) -> None:
        with self._lock:
            self.disruptions = [
                (i, start, time.time() if i == index and end == float("inf") else end)
                for i, start, end in self.disruptions
            ]

    def _store_outage(self, seconds: float) -> None:
        if self.stack.backend == "sqlite":
            self.stack.outage.sqlite(self.stack.sqlite_path, seconds)
        else:
            assert self.stack.control is not None
            self.stack.outage.control_table(self.stack.control, seconds)

    def _pending_id(self) -> str:
        status = self.read("/api/v1/status") or {}
        running = status.get("in_progress") or status.get("last_transition") or "none"
        return str(running.get("id") if isinstance(running, dict) else running)

    def _operator(self, op: str, action: str | None = None, region: str | None = None) -> None:
        reason = {"reason": f"chaos seed {self.schedule.seed}"}
        if op in ("freeze", "unfreeze", "retry"):
            self.call("POST", f"/api/v1/{op}", reason)
        elif op == "skip":
            self.call("POST", "/api/v1/skip", {**reason, "action": action})
        elif op == "repair":
            self.call("POST", "/api/v1/repair", {**reason, "action": action})
        elif op in ("abort", "abort_rollback"):
            self.call("POST", "/api/v1/abort", {**reason, "rollback": op == "abort_rollback"})
        elif op in ("approve", "decline"):
            self.call("POST", f"/api/v1/{op}", {**reason, "transition_id": self._pending_id()})
        elif op == "failover":
            self.call("POST", "/api/v1/failover", {**reason, "to": region})

    # -- quiesce and check ------------------------------------------------------------

    def quiesce(self) -> dict[str, Any] | None:
        """Clear faults, mend regions and replicas, unfreeze, settle; the final status."""
        self.stack.outage.end()
        self.stack.do_control("/_sandbox/faults", "DELETE")
        for sink in ("pagerduty", "chat"):
            self.stack.sink_control(sink, "DELETE")
        self.stack.mend_regions()
        self.down_since.clear()
        for replica in self.stack.replicas:
            if not replica.alive:
                self._restart_replica(replica.index)
        for thread in self._booting:
            thread.join(120)
        self._operator("unfreeze")
        retried = declined = False
        deadline = time.monotonic() + QUIESCE_SECONDS
        still = _Stillness()
        while time.monotonic() < deadline:
            status = self.read("/api/v1/status")
            phase = (status or {}).get("phase")
            held = still.held(status)
            if phase == "awaiting_approval" and self._repairing(status):
                self._operator("approve")
            elif phase == "awaiting_approval" and not declined:
                self._operator("decline")
                declined = True
            elif phase == "stalled" and not retried:
                self._operator("retry")
                retried = True
            elif phase == "frozen":
                self._operator("unfreeze")
            elif (
                self._settled(status, retried, held)
                and self._notices_delivered()
                and (self.repaired or not self._repair_drift(status))
            ):
                return status
            time.sleep(0.25)  # polling the stack while it settles
        self.last_status = status
        return None

    def _repairing(self, status: dict[str, Any] | None) -> bool:
        running = (status or {}).get("in_progress") or {}
        return self.repaired and isinstance(running, dict) and running.get("kind") == "repair"

    def _repair_drift(self, status: dict[str, Any] | None) -> bool:
        """(a) A world that differs from the record must be reported as drift, and repair
        must clear it: once the plan reports every difference, ask for the repair (True).
        False when the world equals the record, or the plan does not report it in time
        (check (a) then names it)."""
        if status is None or status.get("phase") == "stalled":
            return False
        wanted = self.stack.desired_state(status["active_region"])
        settled_at = time.time()
        deadline = time.monotonic() + DRIFT_REPORT_SECONDS
        while time.monotonic() < deadline:
            live = self.stack.live_state()
            differ = {name for name, want in wanted.items() if live.get(name) != want}
            if not differ:
                return False
            plan = self.read("/api/v1/plan") or {}
            reported = {d["action"] for d in plan.get("drift") or []}
            if differ <= reported and (plan.get("evaluated_at_unix") or 0) > settled_at:
                self._operator("repair")
                self.repaired = True
                return True
            time.sleep(0.5)  # the plan's next evaluation
        return False

    @staticmethod
    def _settled(status: dict[str, Any] | None, retried: bool, held: float) -> bool:
        """Nothing left to wait for: no transition moving, or one stalled that stays so."""
        phase = (status or {}).get("phase")
        if status is None or phase in (*IN_PROGRESS, "awaiting_approval"):
            return False
        return phase != "stalled" or (retried and held >= STALL_SETTLE_SECONDS)

    def _notices_delivered(self) -> bool:
        from ddb_failover.config import load
        from responder.state.backends import open_store

        if self._store is None:  # opened once per quiesce: a DynamoDB client is slow to make
            self._store = open_store(load(self.stack.config_path))
        return not self._store.notices(time.time() + 3600, limit=5)

    def close(self) -> None:
        """Close the store the quiesce read the outbox from."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def audit(self) -> tuple[int, str]:
        """`ddb-responder audit verify` against the schedule's store (in this process: one
        interpreter start less per schedule)."""
        from responder.cli.main import main as responder_cli

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = responder_cli(["audit", "verify", "--config", str(self.stack.config_path)])
        return code, out.getvalue()

    def disrupted(self, call: checks.Call) -> bool:
        """True if the call's replica (or a worker of it) was killed while it was in flight."""
        return any(
            index == call.replica and start <= call.ended and call.started <= end
            for index, start, end in self.disruptions
        )

    def check(self, status: dict[str, Any] | None) -> list[str]:
        """Every invariant, after quiesce."""
        if status is None:
            last = self.last_status or {}
            running = last.get("in_progress")
            return [
                f"(e) the system did not quiesce within {QUIESCE_SECONDS:.0f}s: phase "
                f"{last.get('phase')}, in progress {running if running else None}"
            ]
        found: list[str] = []
        history = self.read("/api/v1/history?limit=500") or {"transitions": []}
        plan = self.read("/api/v1/plan") or {}
        # After its repair, drift excuses nothing: the repair had to clear it.
        judged = {**status, "drift": [] if self.repaired else plan.get("drift", [])}
        active = status["active_region"]
        found += checks.world_equals_record(
            judged, self.stack.live_state(), self.stack.desired_state(active)
        )
        exit_code, output = self.audit()
        found += checks.history_holds(exit_code, output, status, history, time.time())
        found += checks.notices_arrive(history, self.stack.sink_events())
        requests = self.stack.do_control("/_sandbox/requests")["requests"]
        found += checks.no_overlapping_writes(requests)
        found += checks.every_request_answered(
            self.calls,
            lambda start, end: (
                self.stack.outage.down_at(start, STORE_GRACE_SECONDS)
                or self.stack.outage.down_at(end, STORE_GRACE_SECONDS)
            ),
            self.disrupted,
        )
        return found


def run_schedule(stack: ChaosStack, schedule: Schedule, sink_offsets: bool = True) -> Outcome:
    """Reset the stack, apply the schedule, quiesce, check."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        timings[stage] = round(time.monotonic() - started - sum(timings.values()), 2)

    stack.reset(schedule.seed, schedule.replicas, schedule.approval)
    lap("reset")
    run = Run(stack, schedule)
    for event in schedule.events:
        time.sleep(event.gap)  # the schedule's own pacing between faults
        run.apply(event)
    lap("events")
    try:
        status = run.quiesce()
    finally:
        run.close()
    lap("quiesce")
    violations = run.check(status)
    history = run.read("/api/v1/history?limit=500") or {"transitions": []}
    lap("check")
    notes = {
        "calls": [vars(c) for c in run.calls],
        "status": status or run.last_status,
        "history": history,
        "store_down": run.stack.outage.windows,
        "disruptions": run.disruptions,
    }
    return Outcome(
        schedule.seed,
        round(time.monotonic() - started, 2),
        violations,
        len(history["transitions"]),
        (status or {}).get("phase", "?"),
        schedule.describe(),
        timings,
        notes if violations else {},
    )
