"""Fixtures for the deployment files: a real, empty Prometheus and the resolved compose model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.net import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"

PromQuery = Callable[[str], tuple[int, dict[str, Any]]]


@pytest.fixture(scope="module")
def prometheus_query(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromQuery]:
    """Query a real Prometheus with an empty TSDB: (HTTP status, JSON body) of /api/v1/query."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("no prometheus binary: run scripts/bootstrap.sh")
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text("global: {scrape_interval: 5s}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError((home / "prometheus.log").read_text()[-2000:])
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)

    def query(expr: str) -> tuple[int, dict[str, Any]]:
        data = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    try:
        wait_until(ready, 30, interval=0.1, message="prometheus ready")
        yield query
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def docker_compose() -> str:
    """The docker-compose binary (Debian's package, installed by the bootstrap)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose not installed: apt-get install --no-install-recommends "
            "docker-compose (scripts/bootstrap.sh)"
        )
    return binary


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    """Run docker-compose on file with the defaults: no .env file, no DDB_* variables."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.env"  # a developer's .env must not change what is tested
        empty.write_text("")
        argv = [docker_compose(), "--project-directory", str(REPO), "--env-file", str(empty)]
        return subprocess.run(
            [*argv, "-f", str(file), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )


@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    """docker-compose.yml as Compose resolves it, with the demo profile and default variables."""
    result = compose("--profile", "demo", "config")
    assert result.returncode == 0, result.stderr
    model = yaml.safe_load(result.stdout)
    assert isinstance(model, dict)
    return model
