"""The DigitalOcean API sandbox as a test process: start it, call it raw or through pydo."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydo
from azure.core.exceptions import HttpResponseError

from sandbox.do_api.seed import default_seed
from sandbox.net import free_port, wait_until
from sandbox.stack import stop_process

REPO = Path(__file__).resolve().parents[2]
SERVE = (sys.executable, "-m", "sandbox.do_api")
REGIONS = ("us-east-1", "eu-west-1")
PRIMARY, SECONDARY = REGIONS
SEED, OBJECTS = default_seed(REGIONS)
# pydo refuses bearer tokens over plain http unless told, per call.
HTTP: dict[str, Any] = {"enforce_https": False}


@dataclass
class Server:
    """A running sandbox process and how to reach it."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """A raw HTTP call: (status, headers, parsed JSON body or None)."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, head, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, head, raw = error.code, dict(error.headers), error.read()
        return status, head, json.loads(raw) if raw else None

    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, _, payload = self.call(method, "/_sandbox/" + path, body, token=None)
        assert status in (200, 201), (status, payload)
        return payload

    def client(self, retries: int = 0, token: str | None = None) -> pydo.Client:
        return pydo.Client(
            token=token or self.token,
            endpoint=self.url,
            retry_total=retries,
            retry_backoff_factor=0.01,
            connection_timeout=5,
            read_timeout=10,
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests")["requests"])

    def violations(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "violations")["violations"])

    def reseed(self, seed: dict[str, Any]) -> None:
        """Replace every object with seed's (the request log and faults are cleared too)."""
        self.control("POST", "state", {"seed": seed})


def start_server(tmp: Path, seed: Path) -> Server:
    token = "sandbox-test-token"
    (tmp / "token").write_text(token + "\n")
    port = free_port()
    log = tmp / "do_api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--port", str(port), "--token-file", str(tmp / "token"), "--seed", str(seed)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", token, process, log)

    def answering() -> bool:
        assert process.poll() is None, log.read_text()
        return server.call("GET", "/_sandbox/violations", token=None)[0] == 200

    try:
        wait_until(answering, timeout=30, message="do_api answering")
    except BaseException:
        stop_process(process)
        raise
    return server


def response_of(error: HttpResponseError) -> Any:
    """The HTTP response pydo attached to an error (always there for status errors)."""
    assert error.response is not None
    return error.response


def writes(server: Server, path: str) -> list[dict[str, Any]]:
    """Successful changes to the object at path, from the request log."""
    return [
        r
        for r in server.requests()
        if r["path"] == path and r["method"] in ("POST", "PUT", "PATCH", "DELETE")
        if r["status"] < 300
    ]
