"""The compose stack as users run it: docker-compose.yml and the Dockerfile, unchanged, under
podman and podman-compose (`make test-compose`; skipped by a plain pytest run).

One stack for the module: a copy of the repository (its files as a clone has them), the demo's
secret files given to uid 10001 with mode 0600 as docs/deploy.md says, images built, every
service but Grafana started (it has no Debian package for a stand-in), every healthcheck
passed. Afterwards the project's containers, networks and volumes are removed, and checked
gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox.net import port_open, wait_until
from tests.compose import context, standins
from tests.compose.podman import Podman, available

REPO = Path(__file__).resolve().parents[2]
ENABLE_ENV = "DDB_COMPOSE_TESTS"
CLOUD = "sandbox"  # the demo's stand-in for AWS and DigitalOcean
PROBER = "exporter"
SERVICES = ("sandbox", "exporter", "responder", "prometheus", "alertmanager", "blackbox-exporter")
IMAGES = tuple(standins.STANDINS)
# The images docker-compose.yml builds from the Dockerfile, by the service that builds each.
BUILT = {
    "sandbox": "localhost/ddb-failover-sandbox:local",
    "responder": "localhost/ddb-failover:local",
}
PUBLISHED = (9745, 9746, 9090, 9093)
SERVICE_UID = 10001
HEALTHY_WITHIN = 240.0
_used: dict[str, str] = {}  # image -> how it was had, for the summary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ENABLE_ENV) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"the compose stack runs with `make test-compose` ({ENABLE_ENV}=1)"
    )
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _used:
        terminalreporter.section("compose images")
        for image, how in _used.items():
            terminalreporter.write_line(f"{image}: {how}")
        terminalreporter.write_line("grafana/grafana-oss: left out (no Debian package)")


@dataclass
class Stack:
    """The running project: its directory, name, and each service's container."""

    podman: Podman
    directory: Path
    project: str
    containers: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.podman.compose(self.directory, "-p", self.project, *args, timeout=timeout)

    def exec(
        self,
        service: str,
        *argv: str,
        user: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        options = ["--user", user] if user else []
        return self.podman.run(
            "exec", *options, self.containers[service], *argv, timeout=timeout, check=check
        )

    def responder(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """ddb-responder in the responder's container, with its config and tokens."""
        return self.exec("responder", "ddb-responder", *argv, check=check)

    def status(self) -> dict[str, Any]:
        return json.loads(self.responder("status", "--json").stdout)

    def find_containers(self) -> dict[str, str]:
        out = self.podman.run(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "json",
        ).stdout
        return {
            c["Labels"]["com.docker.compose.service"]: c["Names"][0]
            for c in json.loads(out or "[]")
        }

    def healthy(self, service: str) -> bool:
        """Run the container's healthcheck now: podman has no timers without systemd."""
        return (
            self.podman.run("healthcheck", "run", self.containers[service], check=False).returncode
            == 0
        )

    def logs(self, service: str) -> str:
        result = self.podman.run("logs", self.containers[service], check=False)
        return result.stdout + result.stderr

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, args in {
            "containers": ("ps", "-a", "--filter", label, "--format", "{{.Names}}"),
            "networks": ("network", "ls", "--filter", label, "--format", "{{.Name}}"),
            "volumes": ("volume", "ls", "--filter", label, "--format", "{{.Name}}"),
            "pods": ("pod", "ps", "--filter", f"name={self.project}", "--format", "{{.Name}}"),
        }.items():
            found[kind] = self.podman.run(*args).stdout.split()
        return found


def copy_repository(target: Path) -> None:
    """The repository's files as a clone has them (with uncommitted work, without ignored)."""
    listed = (
        subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_file():
            continue  # deleted but not yet committed
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def ownership_commands() -> str:
    """docs/deploy.md's commands that give each secret file to its user with mode 0600."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "docs" / "deploy.md").read_text(), re.S)
    (block,) = [b for b in blocks if "chmod 0600 ./*" in b]
    return str(block)


def own_secrets(directory: Path) -> None:
    """Run docs/deploy.md's commands on the demo's secrets, as a user would."""
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", ownership_commands()],
        cwd=directory,
        env={**os.environ, "DDB_FAILOVER_ETC": str(directory / "docker" / "demo")},
        check=True,
    )


def prometheus_api(path: str) -> Any:
    """The published Prometheus's API: the answer's `data`."""
    with urllib.request.urlopen(f"http://127.0.0.1:9090/api/v1/{path}", timeout=5) as response:
        return json.load(response)["data"]


def prometheus_targets() -> list[dict[str, Any]]:
    return list(prometheus_api("targets")["activeTargets"])


def prometheus_query(expr: str) -> list[dict[str, Any]]:
    return list(prometheus_api(f"query?query={urllib.parse.quote(expr)}")["result"])


def build_images(stack: Stack) -> None:
    """Build the Dockerfile's images, one at a time (parallel builds can hang), unless the
    image was built from the same context (tests/compose/context.py)."""
    sources = context.digest(stack.directory)
    for service, image in BUILT.items():
        started = time.monotonic()
        built = stack.podman.image_exists(image) and stack.podman.image_labels(image)
        if built and built.get(context.CONTEXT_LABEL) == sources:
            _used[image] = "built before from the same context"
            continue
        label = f"--label {context.CONTEXT_LABEL}={sources}"
        stack.compose(
            "--podman-build-args",
            f"{stack.podman.build_args()} {label}",
            "build",
            service,
            timeout=1800,
        )
        _used[image] = f"built ({time.monotonic() - started:.0f} s)"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = available()
    if missing:
        pytest.fail(missing)
    busy = [port for port in PUBLISHED if port_open(port)]
    if busy:
        pytest.fail(f"compose publishes ports {busy} on 127.0.0.1, which are in use")
    podman = Podman()
    for image in IMAGES:
        started = time.monotonic()
        how = standins.ensure(podman, image)
        _used[image] = f"{how} ({time.monotonic() - started:.0f} s)"
    directory = tmp_path_factory.mktemp("compose") / "ddb-failover"
    directory.mkdir()
    copy_repository(directory)
    own_secrets(directory)
    stack = Stack(podman, directory, f"ddbcompose{os.getpid()}")
    try:
        build_images(stack)
        # The demo's cloud first, as docs/deploy.md says: podman 4.3 ignores depends_on
        # conditions, and an exporter probing regions that do not answer yet sees the primary
        # down long enough to fail over.
        stack.compose("up", "-d", CLOUD)
        stack.containers = stack.find_containers()
        wait_until(lambda: stack.healthy(CLOUD), HEALTHY_WITHIN, 1.0, "the sandbox healthy")
        # Then the exporter last, alone, as docs/deploy.md says for podman: a container
        # started with several others can wait tens of seconds for its first name lookups
        # (aardvark-dns), and the exporter's first probes are lookups of "sandbox".
        rest = [s for s in SERVICES if s not in (CLOUD, PROBER)]
        stack.compose("up", "-d", *rest)
        stack.containers = stack.find_containers()
        wait_until(
            lambda: all(stack.healthy(s) for s in rest), HEALTHY_WITHIN, 1.0, "the others healthy"
        )
        stack.compose("up", "-d", PROBER)
        stack.containers = stack.find_containers()
        assert set(stack.containers) == set(SERVICES), stack.containers
        wait_until(
            lambda: all(stack.healthy(s) for s in SERVICES),
            HEALTHY_WITHIN,
            1.0,
            "every service's healthcheck passing",
        )
        yield stack
    finally:
        if stack.containers:
            for service in stack.containers:
                print(f"--- {service} ---\n{stack.logs(service)[-3000:]}")
        stack.compose("down", "-v", "-t", "5", timeout=300)
        left = stack.leftovers()
        assert left == {k: [] for k in left}, f"left after down -v: {left}"
