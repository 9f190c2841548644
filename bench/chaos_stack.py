"""The one sandbox stack every `bench chaos` schedule shares, and how it is reset between them.

The sandbox (`python -m sandbox up --only responder,exporter`) runs the regions, the
DigitalOcean API sandbox, the PagerDuty and chat sinks, the AWS services moto server and
an exporter (which writes the heartbeats readiness reads). The sandbox's own responder
is stopped: the harness runs its own, one or two responder process groups (gunicorn
with the responder's settings, two workers each, bench/_chaos_gunicorn.py), from a
config derived from the generated one, so that a
schedule can choose its store and approval policy, kill a worker or a whole replica and
restart it. Two replicas share a DynamoDB control table on a moto server of their own,
answering one request at a time as DynamoDB's conditional writes are atomic
(sandbox/control_table.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config as BotoConfig

from ddb_failover.config import CONFIG_ENV
from sandbox.control import send_chaos
from sandbox.control_table import ControlTableServer
from sandbox.demo import start_stack
from sandbox.net import free_port, wait_until
from sandbox.regions import SANDBOX_CREDENTIALS
from sandbox.stack import SANDBOX_AWS_ENV, stop_process
from sandbox.watch import StackView

# The responder's gunicorn settings, with its workers' libraries loaded before the fork.
GUNICORN_CONF = Path(__file__).with_name("_chaos_gunicorn.py")
REGIONS = ("us-east-1", "eu-west-1", "us-west-2")
WORKERS = 2
LEASE_SECONDS = 3.0
DO_TIMEOUT_SECONDS = 2.0  # the responder's DigitalOcean timeout; delay faults go past it
DELAY_PAST_TIMEOUT = DO_TIMEOUT_SECONDS + 1.0
TRANSITION_DEADLINE_SECONDS = 20.0
SQLITE_BUSY_SECONDS = 5.0
STACK_ATTEMPTS = 3  # the SQLite store's busy timeout: a write waits that long


def pids_under(parent: int) -> list[int]:
    """The pids whose parent is parent (gunicorn's workers under its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent:
                found.append(int(entry.name))
    return sorted(found)


class Replica:
    """One responder process group (gunicorn master + workers) on its own port."""

    def __init__(self, index: int, config: Path, workdir: Path) -> None:
        self.index = index
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers /readyz."""
        self.spawn()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the started replica answers /readyz."""
        wait_until(self._ready, 90, 0.1, f"responder replica {self.index}")

    def spawn(self) -> None:
        """Start the process group (its metrics directory wiped), not waiting for it."""
        metrics = self.workdir / "metrics"
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        env = {
            **os.environ,
            **SANDBOX_AWS_ENV,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "DDB_RESPONDER_LEASE_SECONDS": str(LEASE_SECONDS),
            "DDB_RESPONDER_POLL_SECONDS": "0.5",
            "DDB_FAILOVER_STATE_DIR": str(self.workdir / "records"),
        }
        # gunicorn itself, as `ddb-responder serve` execs it, without that interpreter's start.
        env[CONFIG_ENV] = str(self.config.resolve())
        with open(self.workdir / "responder.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF),
                 "--bind", f"127.0.0.1:{self.port}", "--workers", str(WORKERS)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = (self.workdir / "responder.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"responder replica {self.index} exited:\n{tail}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crashed machine would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kill_worker(self) -> int | None:
        """SIGKILL one gunicorn worker (the master starts another); its pid, None if none."""
        if not self.alive:
            return None
        assert self.process is not None
        workers = pids_under(self.process.pid)
        if not workers:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(workers[0], signal.SIGKILL)
        return workers[0]


class StoreOutage:
    """Makes the state store unavailable for a while: the control table black-holed
    (SIGSTOP), or the SQLite file write-locked by another connection."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []
        self._threads: list[threading.Thread] = []
        self._stop_watch: threading.Event | None = None

    def sqlite(self, path: Path, seconds: float) -> None:
        started = time.time()

        def hold() -> None:
            try:
                db = sqlite3.connect(path, timeout=1.0, isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                time.sleep(seconds)  # the outage itself, not a synchronisation
                db.execute("ROLLBACK")
                db.close()
            except sqlite3.Error:
                pass  # the store was busy already: that is an outage too
            finally:
                self.windows.append((started, time.time()))

        thread = threading.Thread(target=hold, name="store-outage", daemon=True)
        thread.start()
        self._threads.append(thread)

    def control_table(self, server: ControlTableServer, seconds: float) -> None:
        started = time.time()
        server.pause()

        def mend() -> None:
            time.sleep(seconds)  # the outage itself
            server.resume()
            self.windows.append((started, time.time()))

        thread = threading.Thread(target=mend, name="store-outage", daemon=True)
        thread.start()
        self._threads.append(thread)

    def watch(self, state: dict[str, Any], seconds: float = 2.0) -> None:
        """Probe the control table twice a second, as the responder's client would (a 2 s
        read timeout): a probe that fails or takes longer than seconds is a window of outage
        too, however it came (a busy machine slows the serialised control table)."""
        stop = threading.Event()
        client = boto3.client(
            "dynamodb",
            region_name=state["region"],
            endpoint_url=state["endpoint_url"],
            config=BotoConfig(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1}),
            **SANDBOX_CREDENTIALS,
        )

        def probe() -> None:
            while not stop.wait(0.5):
                began = time.time()
                try:
                    client.describe_table(TableName=state["table"])
                except Exception:  # any failure is the store down, as the responder sees it
                    self.windows.append((began, time.time()))
                    continue
                if time.time() - began > seconds:
                    self.windows.append((began, time.time()))

        thread = threading.Thread(target=probe, name="store-probe", daemon=True)
        thread.start()
        self._stop_watch = stop

    def unwatch(self) -> None:
        """Stop probing the control table."""
        if self._stop_watch is not None:
            self._stop_watch.set()

    def end(self) -> None:
        """Wait for every outage to be over."""
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()

    def down_at(self, moment: float, grace: float) -> bool:
        """True if the store was down at moment (or came back less than grace before)."""
        live = [t for t in self._threads if t.is_alive()]
        return bool(live) or any(s <= moment <= e + grace for s, e in self.windows)


class ChaosStack:
    """The shared sandbox, the harness's responder replicas, and the reset between schedules."""

    def __init__(self, directory: Path | None = None, regions: Sequence[str] = REGIONS) -> None:
        self.own_dir = directory is None  # removed at close unless a violation wants it kept
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ddb-bench-chaos-"))
        self.keep = False
        self.regions = tuple(regions)
        self.proc: subprocess.Popen[bytes] | None = None
        self.view: StackView | None = None
        self.base: dict[str, Any] = {}
        self.replicas: list[Replica] = []
        self.control: ControlTableServer | None = None
        self.outage = StoreOutage()
        self.down: dict[str, str] = {}  # region -> pause|stop, as the schedule left it
        self.config_path = self.dir / "chaos.yml"
        self.backend = "sqlite"
        self.sink_mark: dict[str, int] = {}
        self.state: dict[str, Any] = {}  # the schedule's responder.state block
        self._clients: dict[str, Any] = {}

    # -- the stack ------------------------------------------------------------------

    def start(self) -> None:
        """Start the sandbox, stop its responder, start the control table server."""
        os.environ.update(SANDBOX_AWS_ENV)  # the harness's own AWS calls: never real ones
        args = ("--only", "responder,exporter", "--regions", ",".join(self.regions))
        for attempt in range(1, STACK_ATTEMPTS + 1):
            self.proc = start_stack(self.dir, *args)
            try:
                self.view = wait_until(self._up, 240, 0.5, "the sandbox stack")
                break
            except (RuntimeError, TimeoutError):
                # On a loaded machine a component can outlast the sandbox's start timeout.
                stop_process(self.proc, grace=60)
                if attempt == STACK_ATTEMPTS:
                    raise
                (self.dir / "stack.json").unlink(missing_ok=True)
        state = json.loads((self.dir / "stack.json").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state["components"]["responder"]["pid"], signal.SIGKILL)
        self.base = yaml.safe_load((self.dir / "ddb-failover.yml").read_text())
        self.aws = state["aws_services"]
        self.control = ControlTableServer(self.dir / "control-table").start()

    def _up(self) -> StackView | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = (self.dir / "sandbox-up.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"sandbox up exited with {self.proc.returncode}:\n{tail}")
        if not (self.dir / "stack.json").exists():
            return None
        view = StackView.load(self.dir)
        return view if {"responder", "exporter"} <= set(view.urls) else None

    def close(self) -> None:
        """Stop the replicas, the control table server and the sandbox."""
        for replica in self.replicas:
            replica.kill()
        if self.control is not None:
            self.control.close()
        if self.proc is not None:
            stop_process(self.proc, grace=60)
        if self.own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def urls(self) -> dict[str, str]:
        assert self.view is not None
        return self.view.urls

    def token(self, name: str) -> str:
        """A generated secret (webhook-token, operator-token, viewer-token, do-token)."""
        return (self.dir / "secrets" / name).read_text().strip()

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.base["responder"]["actions"])

    @property
    def sqlite_path(self) -> Path:
        return self.dir / "chaos-state" / "responder.db"

    # -- reset ----------------------------------------------------------------------

    def reset(self, seed: int, replicas: int, approval: str) -> None:
        """Put the world back as it was at startup and start fresh responders for a schedule."""
        for replica in self.replicas:
            replica.kill()
        self.outage.end()
        self.outage.unwatch()
        self.outage = StoreOutage()
        self.mend_regions()
        self.do_control("/_sandbox/state", "POST", {})
        self._reset_aws()
        self._reset_env_file()
        self.backend = "dynamodb" if replicas > 1 else "sqlite"
        self.sink_mark = {}
        self.sink_mark = {name: len(got) for name, got in self.sink_events().items()}
        self._write_config(seed, approval)
        self.replicas = []
        for index in range(replicas):
            workdir = self.dir / "replicas" / f"replica-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            self.replicas.append(Replica(index, self.config_path, workdir))
        if self.backend == "dynamodb":
            self.outage.watch(self.state)
        for replica in self.replicas:  # booting together, as replicas on separate machines
            replica.spawn()
        for replica in self.replicas:
            replica.wait_ready()

    def preserve(self, seed: int, notes: dict[str, Any]) -> Path:
        """Keep the schedule's SQLite store, the DigitalOcean request log and notes (the
        harness's calls and the last status) past the reset."""
        kept = self.dir / "kept" / f"seed-{seed}"
        kept.mkdir(parents=True, exist_ok=True)
        (kept / "notes.json").write_text(json.dumps(notes, indent=1, default=str))
        if self.backend == "sqlite" and self.sqlite_path.parent.exists():
            shutil.copytree(self.sqlite_path.parent, kept / "state", dirs_exist_ok=True)
        requests = self.do_control("/_sandbox/requests")
        (kept / "do-requests.json").write_text(json.dumps(requests, indent=1))
        self.keep = True
        return kept

    def mend_regions(self) -> None:
        """Resume or start every region the schedule broke."""
        for region, op in sorted(self.down.items()):
            send_chaos(self.dir, {"region": region, "op": "resume" if op == "pause" else "start"})
        self.down.clear()

    def _write_config(self, seed: int, approval: str) -> None:
        config = json.loads(json.dumps(self.base))
        responder = config["responder"]
        policy = responder["policy"]
        policy.update(
            approval=approval,
            min_dwell_seconds=2.0,
            transition_deadline_seconds=TRANSITION_DEADLINE_SECONDS,
            max_transitions_per_hour=30,
        )
        responder["plan"] = {"interval_seconds": 2.0}
        responder["digitalocean"]["timeout_seconds"] = DO_TIMEOUT_SECONDS
        # The delay faults answer DELAY_PAST_TIMEOUT after the call: no change lands later.
        responder["digitalocean"]["late_write_seconds"] = DELAY_PAST_TIMEOUT + 0.5
        if self.backend == "dynamodb":
            assert self.control is not None
            responder["state"] = self.state = self.control.state(
                f"ddb-failover-control-{seed}",
                lease_seconds=LEASE_SECONDS,
                renew_seconds=LEASE_SECONDS / 3,
            )
        else:
            shutil.rmtree(self.sqlite_path.parent, ignore_errors=True)
            self.sqlite_path.parent.mkdir(parents=True)
            responder["state"] = {"backend": "sqlite", "path": str(self.sqlite_path)}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if self.backend == "dynamodb":
            from ddb_failover.config import load
            from responder.state.dynamodb.create_table import create_control_table

            create_control_table(load(self.config_path))

    def _aws(self, service: str) -> Any:
        """A client of the stack's AWS services moto server (made once: boto3 is slow to)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                region_name=self.regions[0],
                endpoint_url=self.aws["url"],
                **SANDBOX_CREDENTIALS,
            )
        return self._clients[service]

    def _action(self, kind: str) -> dict[str, Any]:
        return next(a for a in self.actions if a["type"] == kind)

    def _reset_aws(self) -> None:
        record = self._action("route53_record")
        value = record["values"][self.regions[0]]
        change = {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": record["record_name"],
                "Type": "A",
                "TTL": record["ttl"],
                "ResourceRecords": [{"Value": value}],
            },
        }
        self._aws("route53").change_resource_record_sets(
            HostedZoneId=record["hosted_zone_id"], ChangeBatch={"Changes": [change]}
        )
        parameter = self._action("ssm_parameter")["parameter"]
        self._aws("ssm").put_parameter(
            Name=parameter, Value=self.regions[0], Type="String", Overwrite=True
        )

    def _reset_env_file(self) -> None:
        path = Path(self._action("env_file")["path"])
        path.write_text(f"DYNAMODB_REGION={self.regions[0]}\n")

    # -- reading the world ------------------------------------------------------------

    def do_json(self, path: str, method: str = "GET", body: Any = None, auth: bool = False) -> Any:
        """One JSON call to the DigitalOcean sandbox: its API (auth) or its control endpoints."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token('do-token')}"
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.urls['do_api']}{path}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def sink_control(self, sink: str, method: str, body: Any = None) -> None:
        """Add (POST) or clear (DELETE) a PagerDuty or chat sink's faults."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.urls[sink]}/_sandbox/faults", data=data, method=method
        )
        urllib.request.urlopen(request, timeout=10).close()

    def do_control(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call the DigitalOcean sandbox's control endpoints (/_sandbox/...)."""
        return self.do_json(path, method, body)

    def do_get(self, path: str) -> Any:
        """GET a DigitalOcean API path with the stack's token."""
        return self.do_json(path, auth=True)

    def live_state(self) -> dict[str, Any]:
        """Every configured action's live state, read from the sandboxes, in the form its
        config's per-region values take (or the region, for the SSM parameter and env file)."""
        seen: dict[str, Any] = {}
        for action in self.actions:
            name, kind = action["name"], action["type"]
            if kind == "do_dns_record":
                fqdn = f"{action['record_name']}.{action['domain']}"
                query = f"type={action['record_type']}&name={fqdn}"
                found = self.do_get(f"/v2/domains/{action['domain']}/records?{query}")
                seen[name] = sorted(r["data"] for r in found["domain_records"])
            elif kind == "do_global_load_balancer":
                lb = self.do_get(f"/v2/load_balancers/{action['load_balancer_id']}")
                priorities = lb["load_balancer"]["glb_settings"]["region_priorities"]
                seen[name] = min(priorities, key=priorities.get)
            elif kind == "route53_record":
                sets = self._aws("route53").list_resource_record_sets(
                    HostedZoneId=action["hosted_zone_id"],
                    StartRecordName=action["record_name"],
                    StartRecordType="A",
                    MaxItems="1",
                )["ResourceRecordSets"]
                seen[name] = [r["Value"] for r in sets[0]["ResourceRecords"]] if sets else []
            elif kind == "ssm_parameter":
                value = self._aws("ssm").get_parameter(Name=action["parameter"])
                seen[name] = value["Parameter"]["Value"]
            elif kind == "env_file":
                text = Path(action["path"]).read_text()
                seen[name] = next(
                    (
                        line.split("=", 1)[1].strip().strip('"')
                        for line in text.splitlines()
                        if line.startswith(f"{action['variable']}=")
                    ),
                    None,
                )
        return seen

    def desired_state(self, region: str) -> dict[str, Any]:
        """What each action's live state should be with region active, in live_state's form."""
        wanted: dict[str, Any] = {}
        for action in self.actions:
            name, kind = action["name"], action["type"]
            if kind in ("do_dns_record", "route53_record"):
                wanted[name] = [action["values"][region]]
            elif kind == "do_global_load_balancer":
                wanted[name] = action["values"][region]
            elif kind in ("ssm_parameter", "env_file"):
                wanted[name] = region
        return wanted

    def sink_events(self) -> dict[str, list[dict[str, Any]]]:
        """What the PagerDuty (change events) and chat sinks received, oldest first."""
        with urllib.request.urlopen(f"{self.urls['pagerduty']}/events", timeout=10) as r:
            events = json.load(r)["events"]
        with urllib.request.urlopen(f"{self.urls['chat']}/messages", timeout=10) as r:
            messages = json.load(r)["messages"]
        received = {
            "pagerduty": [
                {"key": e["idempotency_key"], "text": json.dumps(e["event"], sort_keys=True)}
                for e in events
                if e["kind"] == "change"
            ],
            "chat": [{"key": m["idempotency_key"], "text": m["text"]} for m in messages],
        }
        # Only what came since the schedule began (the mark is taken at reset).
        return {name: got[self.sink_mark.get(name, 0) :] for name, got in received.items()}
