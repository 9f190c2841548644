"""The sandbox supervisor: starts components in dependency order and records them."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddb_failover.logs import kv
from sandbox.net import wait_until

log = logging.getLogger("sandbox")

START_TIMEOUT = 60.0
# Every sandbox process gets dummy AWS credentials: real ones must never reach it.
SANDBOX_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Running:
    """A started component: its process (if it has its own) and its URL."""

    name: str
    pid: int | None
    url: str
    process: subprocess.Popen[bytes] | None = None


@dataclass(frozen=True)
class Spec:
    """How to start one component, what it needs first, and its config fragment."""

    name: str
    start: Callable[[Stack], None]
    needs: tuple[str, ...] = ()
    configure: Callable[[Stack], None] | None = None


COMPONENTS: dict[str, Spec] = {}
CONFIG = "config"


def component(
    name: str, needs: Sequence[str] = (), configure: Callable[[Stack], None] | None = None
) -> Callable[[Callable[[Stack], None]], Callable[[Stack], None]]:
    """Register a component's start function under name."""

    def register(start: Callable[[Stack], None]) -> Callable[[Stack], None]:
        COMPONENTS[name] = Spec(name, start, tuple(needs), configure)
        return start

    return register


@dataclass
class Stack:
    """Everything started under one sandbox directory."""

    dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    config_data: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Running] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).resolve()
        for path in (self.dir, self.secrets_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)

    @property
    def secrets_dir(self) -> Path:
        """DIR/secrets: generated tokens, one file each."""
        return self.dir / "secrets"

    @property
    def logs_dir(self) -> Path:
        """DIR/logs: one log file per spawned process."""
        return self.dir / "logs"

    @property
    def config_path(self) -> Path:
        """DIR/ddb-failover.yml: the generated configuration."""
        return self.dir / "ddb-failover.yml"

    @property
    def state_path(self) -> Path:
        """DIR/stack.json: what runs where."""
        return self.dir / "stack.json"

    def secret(self, name: str) -> Path:
        """The path of a generated secret, created on first use."""
        path = self.secrets_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        return path

    def register(self, running: Running) -> Running:
        """Record a started component in stack.json."""
        self.components[running.name] = running
        self.save()
        return running

    def on_close(self, cleanup: Callable[[], None]) -> None:
        """Run cleanup when the stack stops, last registered first."""
        self._cleanups.append(cleanup)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        url: str,
        env: Mapping[str, str] | None = None,
        ready: Callable[[], object] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Running:
        """Start a process in its own session, logging to DIR/logs, and wait until ready."""
        log_path = self.logs_dir / f"{name.replace(':', '-')}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **SANDBOX_AWS_ENV, **(env or {})},
                cwd=self.dir,
                start_new_session=True,
            )
        running = Running(name, process.pid, url, process)
        self.on_close(lambda: stop_process(process))
        if ready is not None:

            def check() -> object:
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
                return ready()

            try:
                wait_until(check, timeout, interval=0.1, message=f"{name} ready")
            except TimeoutError as exc:
                raise RuntimeError(f"{exc}; see {log_path}") from None
        return self.register(running)

    def write_config(self) -> None:
        """Write DIR/ddb-failover.yml from config_data, without sandbox-internal keys."""
        public = {k: v for k, v in self.config_data.items() if not k.startswith("_")}
        # Atomic: components and tests read it while the stack comes up (and on reload).
        _replace(self.config_path, yaml.safe_dump(public, sort_keys=False))

    def save(self) -> None:
        """Write DIR/stack.json atomically."""
        data = {
            "components": {
                name: {"pid": r.pid, "url": r.url} for name, r in self.components.items()
            },
            **{k: v for k, v in self.published.items() if k != "components"},
        }
        _replace(self.state_path, json.dumps(data, indent=2))

    def close(self) -> None:
        """Stop everything started, in reverse order."""
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                log.warning(
                    kv(msg="cleanup failed", cleanup=getattr(cleanup, "__name__", "?"), error=exc)
                )


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process (its whole group when it leads one), then SIGKILL after grace."""
    if process.poll() is not None:
        return

    def send(signum: int) -> None:
        try:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except ProcessLookupError:
            pass

    send(signal.SIGCONT)
    send(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(timeout=grace)


def plan(only: Iterable[str] | None) -> list[str]:
    """The components to start, dependencies first, with 'config' after the infrastructure."""
    wanted = list(COMPONENTS) if only is None else list(only)
    unknown = [name for name in wanted if name not in COMPONENTS]
    if unknown:
        raise ValueError(
            f"unknown component {', '.join(unknown)}; known: {', '.join(sorted(COMPONENTS))}"
        )
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in order or name == CONFIG:
            return
        if name in trail:
            raise ValueError(f"dependency cycle: {' -> '.join((*trail, name))}")
        for need in COMPONENTS[name].needs:
            visit(need, (*trail, name))
        order.append(name)

    for name in wanted:
        visit(name, ())
    infra = [n for n in order if not _needs_config(n)]
    services = [n for n in order if _needs_config(n)]
    return [*infra, CONFIG, *services]


def _needs_config(name: str, seen: frozenset[str] = frozenset()) -> bool:
    needs = COMPONENTS[name].needs
    return CONFIG in needs or any(
        _needs_config(n, seen | {name}) for n in needs if n != CONFIG and n not in seen
    )


def start(stack: Stack, order: Sequence[str]) -> None:
    """Start components in order; writing the config when its turn comes."""
    for name in order:
        if name == CONFIG:
            for other in order:
                spec = COMPONENTS.get(other)
                if spec is not None and spec.configure is not None:
                    spec.configure(stack)
            stack.write_config()
            continue
        COMPONENTS[name].start(stack)


def _replace(path: Path, text: str) -> None:
    """Write path whole or not at all: a reader sees the old file or the new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
