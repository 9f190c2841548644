"""docker/sandbox_service.py, the compose demo's sandbox, run for real on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ddb_failover.config import ConfigError, parse
from sandbox.net import free_port, port_open, wait_until
from sandbox.regions import dynamodb_client
from tests.conftest import sandbox_chaos

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "docker" / "sandbox_service.py"
DEMO_CONFIG = REPO / "docker" / "demo" / "ddb-failover.yml"
TOKEN = "sandbox-service-test-token"


def load_service() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sandbox_service", SERVICE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_data() -> dict[str, Any]:
    return dict(yaml.safe_load(DEMO_CONFIG.read_text()))


def test_forwards_come_from_the_config_ports() -> None:
    forwards = load_service().forwards(parse(demo_data()))
    assert forwards == {"region:us-east-1": 8001, "region:eu-west-1": 8002, "do_api": 8080}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["regions"][0].pop("endpoint_url"), "regions.0.endpoint_url"),
        (lambda d: d["regions"][1].update(endpoint_url="http://sandbox"), "names no port"),
        (lambda d: d["regions"][1].update(endpoint_url="http://sandbox:8001"), "distinct"),
    ],
)
def test_forwards_reject_a_config_the_demo_cannot_serve(change: Any, message: str) -> None:
    data = demo_data()
    change(data)
    with pytest.raises(ConfigError, match=message):
        load_service().forwards(parse(data))


@dataclass
class Running:
    directory: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]


def distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("sandbox-service")
    token = home / "do-token"
    token.write_text(TOKEN + "\n")
    east, west, api = distinct_ports(3)
    data = demo_data()
    data["regions"][0]["endpoint_url"] = f"http://127.0.0.1:{east}"
    data["regions"][1]["endpoint_url"] = f"http://127.0.0.1:{west}"
    data["responder"]["digitalocean"] = {
        "api_url": f"http://127.0.0.1:{api}",
        "token": {"file": str(token)},
    }
    config = home / "ddb-failover.yml"
    config.write_text(yaml.safe_dump(data))
    directory = home / "sandbox"
    argv = [sys.executable, str(SERVICE), "--config", str(config), "--dir", str(directory)]
    with open(home / "service.log", "wb") as log:
        process = subprocess.Popen(
            [*argv, "--listen-host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    module = load_service()

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError((home / "service.log").read_text()[-3000:])
        return bool(module.check(directory) == 0)

    try:
        wait_until(ready, 120, interval=0.2, message="sandbox service forwards")
        yield Running(directory, {"us-east-1": east, "eu-west-1": west, "do_api": api}, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def canary(running: Running, region: str, timeout: float = 2.0) -> dict[str, Any]:
    client = dynamodb_client(region, f"http://127.0.0.1:{running.ports[region]}", timeout)
    item = client.get_item(
        TableName="wordpress_posts", Key={"health_check_id": {"S": "ping"}}, ConsistentRead=True
    )
    return dict(item["Item"])


def chaos(running: Running, region: str, op: str) -> None:
    sandbox_chaos(running.directory, region, op)


def do_api(running: Running, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.ports['do_api']}{path}",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.slow
def test_regions_answer_through_their_forwarded_ports(service: Running) -> None:
    for region in ("us-east-1", "eu-west-1"):
        assert canary(service, region)["purpose"] == {"S": "canary"}


@pytest.mark.slow
def test_do_api_answers_through_its_port_with_the_responders_token(service: Running) -> None:
    status, body = do_api(service, "/v2/domains/example.test/records?name=www.example.test", TOKEN)
    assert status == 200, body
    assert [r["data"] for r in body["domain_records"] if r["type"] == "A"] == ["203.0.113.10"]
    status, _ = do_api(service, "/v2/domains/example.test/records", "wrong-token")
    assert status == 401


@pytest.mark.slow
def test_a_paused_region_hangs_and_a_stopped_one_refuses_through_the_forward(
    service: Running,
) -> None:
    chaos(service, "us-east-1", "pause")
    try:
        with pytest.raises((ReadTimeoutError, ConnectTimeoutError)):
            canary(service, "us-east-1", timeout=1.0)
    finally:
        chaos(service, "us-east-1", "resume")
    assert canary(service, "us-east-1")
    chaos(service, "eu-west-1", "stop")
    try:
        started = time.monotonic()
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            canary(service, "eu-west-1", timeout=30.0)
        assert time.monotonic() - started < 10.0, "a stopped region must fail fast, not hang"
        assert canary(service, "us-east-1"), "the other region is unaffected"
    finally:
        chaos(service, "eu-west-1", "start")
    wait_until(lambda: canary(service, "eu-west-1"), 30, message="eu-west-1 back")


@pytest.mark.slow
def test_sigterm_stops_the_stack_and_the_forwards(service: Running) -> None:
    state = json.loads((service.directory / "stack.json").read_text())
    pids = [entry["pid"] for entry in state["components"].values() if entry["pid"]]
    os.killpg(service.process.pid, signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert all(gone(pid) for pid in pids), "sandbox components outlived the service"
    assert not any(port_open(port) for port in service.ports.values())
