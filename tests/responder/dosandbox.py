"""The DigitalOcean API sandbox as a process for the DO action tests, and its control API."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from responder.actions.base import Transition
from sandbox.net import free_port, port_open, wait_until

SEED_PATH = Path(__file__).parent / "testdata" / "actions_do_seed.json"
SEED: dict[str, Any] = json.loads(SEED_PATH.read_text())
TOKEN = "test-token-not-a-secret"
EAST, WEST = "us-east-1", "eu-west-1"


def transition(to: str = WEST, dry_run: bool = False) -> Transition:
    frm = EAST if to == WEST else WEST
    return Transition(id="t-9", kind="failover", from_region=frm, to_region=to, dry_run=dry_run)


class Sandbox:
    """The DigitalOcean API sandbox process and its control endpoints."""

    def __init__(self, workdir: Path) -> None:
        token_file = workdir / "do-token"
        token_file.write_text(TOKEN)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "do_api.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "sandbox.do_api", "--port", str(self.port)),
                    *("--token-file", str(token_file), "--seed", str(SEED_PATH)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: port_open(self.port), 30, message="DigitalOcean API sandbox")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def fault(self, **fault: Any) -> None:
        self.control("POST", "/_sandbox/faults", fault)

    def reseed(self, **app_changes: Any) -> None:
        """Reset to the seed, its app changed (e.g. deploy_seconds=5)."""
        seed = copy.deepcopy(SEED)
        seed["apps"][0].update(app_changes)
        self.control("POST", "/_sandbox/state", {"seed": seed})

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "/_sandbox/requests")["requests"])

    def writes(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests() if r["method"] != "GET"]

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "/_sandbox/state"))

    def record(self, record_id: int) -> dict[str, Any]:
        records = self.state()["domains"][0]["records"]
        return next(r for r in records if r["id"] == record_id)

    def load_balancer(self, index: int = 0) -> dict[str, Any]:
        return dict(self.state()["load_balancers"][index])

    def app(self) -> dict[str, Any]:
        return dict(self.state()["apps"][0])

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """For a module-scoped fixture: one sandbox process, stopped at the end."""
    server = Sandbox(tmp_path_factory.mktemp("do_api"))
    yield server
    server.close()


def fresh(server: Sandbox) -> Iterator[Sandbox]:
    """For a test's fixture: the sandbox reset to the seed, with no requests or faults."""
    server.control("POST", "/_sandbox/state", {"seed": SEED})
    yield server
    # Whatever a test did, every answer the sandbox gave must have matched the spec.
    assert server.control("GET", "/_sandbox/violations")["violations"] == []
