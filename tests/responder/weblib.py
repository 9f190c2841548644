"""Helpers for the responder's web, CLI and gunicorn tests: configs, payloads, heartbeats."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ddb_failover import heartbeat
from ddb_failover.config import Config, load
from sandbox.net import free_port, wait_until
from tests.conftest import CANARY_KEY, CANARY_VALUE
from tests.responder.fakes import AUDIT_KEY_FILE

TOKEN = "test-webhook-token-4f1c2a"  # Alertmanager's: POST /webhook only
OPERATOR = "test-operator-token-9d3e7b"
VIEWER = "test-viewer-token-2a8c5f"
REGIONS = ("us-east-1", "eu-west-1")
RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def closed_url() -> str:
    """A loopback URL nobody listens on: a region that refuses connections."""
    return f"http://127.0.0.1:{free_port()}"


def write_config(
    directory: Path,
    *,
    region_urls: Mapping[str, str] | None = None,
    actions: Sequence[Mapping[str, Any]] = (),
    policy: Mapping[str, Any] | None = None,
    listen: str = "127.0.0.1:9746",
    max_body_bytes: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a responder config (and its token file) into directory; return its path."""
    urls = region_urls or {name: closed_url() for name in REGIONS}
    for name, value in (("webhook", TOKEN), ("operator", OPERATOR), ("viewer", VIEWER)):
        (directory / f"{name}-token").write_text(value + "\n", encoding="utf-8")
    responder: dict[str, Any] = {
        "listen": listen,
        "webhook_token": {"file": str(directory / "webhook-token")},
        "auth": {
            "tokens": [
                {"name": name, "role": name, "secret": {"file": str(directory / f"{name}-token")}}
                for name in ("operator", "viewer")
            ]
        },
        "state": {"backend": "sqlite", "path": str(directory / "state" / "state.db")},
        "audit": {"key_file": str(AUDIT_KEY_FILE)},
        "policy": {"readiness_timeout_seconds": 0.5, "min_dwell_seconds": 0, **(policy or {})},
        "retry": {"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.5},
        "actions": [dict(a) for a in actions],
    }
    if max_body_bytes is not None:
        responder["max_body_bytes"] = max_body_bytes
    responder.update(extra or {})
    data = {
        "tables": ["wordpress_posts"],
        "canary": {"key": CANARY_KEY, "value": CANARY_VALUE},
        "regions": [{"name": name, "endpoint_url": url} for name, url in urls.items()],
        "responder": responder,
    }
    path = directory / "ddb-failover.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def config_at(path: Path) -> Config:
    """The validated config at path."""
    return load(path)


def rfc3339(moment: float) -> str:
    """Unix seconds as Alertmanager writes them."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc_unix(text: str) -> float:
    """An RFC 3339 time from the API as Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def alert(
    name: str = "DynamoDBRegionDown",
    region: str | None = "us-east-1",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts_at: float | None = None,
    status: str = "firing",
) -> dict[str, Any]:
    """One alert of a version-4 payload."""
    labels = {"alertname": name, "severity": "critical", "table": "wordpress_posts"}
    if region is not None:
        labels["region"] = region
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} {region}"},
        "startsAt": rfc3339(starts_at if starts_at is not None else time.time() - 60),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(time.time()),
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A version-4 notification carrying alerts (one region-down alert by default)."""
    items = list(alerts) or [alert()]
    status = "firing" if any(a["status"] == "firing" for a in items) else "resolved"
    common = dict(items[0]["labels"]) if len(items) == 1 else {}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DynamoDBRegionDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "ddb-failover",
        "groupLabels": {"alertname": items[0]["labels"].get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "alerts": items,
    }


def put_heartbeat(region: Any, source: str, written_at: float | None = None) -> None:
    """Write source's heartbeat into region's tables, as replication would."""
    client = region.client()
    for table in region.tables:
        item = heartbeat.item(CANARY_KEY, source, written_at or time.time(), "test")
        client.put_item(TableName=table, Item=item)


def auth(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for token (the webhook's, by default)."""
    return {"Authorization": f"Bearer {token}"}


def viewing(app: Any, token: str = VIEWER) -> Any:
    """A Flask test client that sends the viewer token unless a request says otherwise."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


class Responder:
    """`ddb-responder serve` (gunicorn) as a process group on a free loopback port."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        workers: int = 3,
        lease: float = 3.0,
        port: int | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.context = context  # the client side, when the responder serves HTTPS
        self.config = config
        self.workdir = workdir
        self.workers = workers
        self.lease = lease
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Responder:
        """Start and wait until every worker's app answers /readyz."""
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
            "DDB_RESPONDER_LEASE_SECONDS": str(self.lease),
            "DDB_RESPONDER_POLL_SECONDS": "0.5",
        }
        env.pop("DDB_FAILOVER_CONFIG", None)
        log = open(self.workdir / "responder.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "responder", "serve", "--config", str(self.config),
             "--listen", f"127.0.0.1:{self.port}", "--workers", str(self.workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_until(self._ready, 30, 0.1, f"responder on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"responder exited: {self.log()[-2000:]}")
        return http("GET", f"{self.url}/readyz", context=self.context)[0] == 200

    def log(self) -> str:
        return (self.workdir / "responder.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole gunicorn: master and workers, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Graceful stop, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def history(self) -> Any:
        return http("GET", f"{self.url}/api/v1/history?limit=500", headers=auth(VIEWER))[1]

    def webhook(self, body: Any) -> tuple[int, Any]:
        return http("POST", f"{self.url}/webhook", body, auth())


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    """One request on a fresh connection; (status, decoded JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def lines(path: Path) -> int:
    """How many lines a file has; 0 when it does not exist yet."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def appender(name: str, log: Path) -> dict[str, Any]:
    """A command action that appends one line per run: counts outside changes."""
    return {"name": name, "type": "command", "command": ["sh", "-c", f"echo run >> {log}"]}


def blocking(name: str, starts: Path, gate: Path, log: Path) -> dict[str, Any]:
    """A command action that notes its pid and its parent's (the worker), then waits for gate.

    It gives up after two minutes, so a failed test never leaves it behind.
    """
    script = (
        f"echo $$ $PPID >> {starts}; i=0; while [ ! -e {gate} ] && [ $i -lt 2400 ]; "
        f"do sleep 0.05; i=$((i+1)); done; [ -e {gate} ] && echo run >> {log}"
    )
    return {
        "name": name,
        "type": "command",
        "timeout_seconds": 150,
        "command": ["sh", "-c", script],
    }
