"""The compose `demo` profile's sandbox: local regions and DigitalOcean API for other containers.

`python -m sandbox up` binds loopback on free ports, which other containers cannot reach.
This runs it with only the regions and the DigitalOcean API sandbox, then forwards fixed
ports on every interface to them. The fixed ports come from the config the exporter and the
responder mount: each region's endpoint_url port forwards to that region, and the port of
responder.digitalocean.api_url to the DigitalOcean API sandbox, whose bearer token is the
one the responder reads (responder.digitalocean.token).

A forward keeps the chaos semantics: a paused region still accepts connections and then
hangs; a stopped one refuses, and the forward closes the client's connection at once.

    python sandbox_service.py [--config FILE] [--dir DIR] [--listen-host HOST]
    python sandbox_service.py --check       # healthcheck: every forward accepts connections
    docker compose exec sandbox python -m sandbox chaos --dir /sandbox us-east-1 pause
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from ddb_failover.config import Config, ConfigError, load
from sandbox.net import port_open

START_TIMEOUT = 120.0
READY_FILE = "forwards.json"
POLL_SECONDS = 0.2
COPY_CHUNK = 65536


def _port(url: str, where: str) -> int:
    port = urllib.parse.urlsplit(url).port
    if port is None:
        raise ConfigError(f"{where}: {url} names no port; the demo needs an explicit one")
    return port


def forwards(config: Config) -> dict[str, int]:
    """Sandbox component name -> the fixed port other containers reach it on."""
    wanted: dict[str, int] = {}
    for index, region in enumerate(config.regions):
        if region.endpoint_url is None:
            raise ConfigError(f"regions.{index}.endpoint_url: the demo needs one per region")
        wanted[f"region:{region.name}"] = _port(region.endpoint_url, f"regions.{index}")
    wanted["do_api"] = _port(config.responder.digitalocean.api_url, "responder.digitalocean")
    if len(set(wanted.values())) != len(wanted):
        raise ConfigError(f"the demo's ports must be distinct, got {wanted}")
    return wanted


def seed_do_token(config: Config, directory: Path) -> None:
    """Make the DigitalOcean sandbox accept exactly the token the responder sends."""
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    path = secrets_dir / "do-token"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(config.responder.digitalocean.token.read() + "\n")


def backends(directory: Path) -> dict[str, int]:
    """Component name -> loopback port, from the running stack's stack.json."""
    try:
        state = json.loads((directory / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for name, entry in state.get("components", {}).items():
        port = urllib.parse.urlsplit(str(entry.get("url", ""))).port
        if port is not None:
            found[name] = port
    return found


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _forward(
    backend_port: int, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", backend_port)
    except OSError:
        client_writer.close()  # a stopped region: the client sees its connection closed
        return
    await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))


async def serve_forward(listen_host: str, public: int, backend: int) -> asyncio.Server:
    """Listen on the public port and forward every connection to the loopback backend."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _forward(backend, reader, writer)

    return await asyncio.start_server(handle, listen_host, public)


def start_stack(config: Config, directory: Path) -> subprocess.Popen[bytes]:
    """`python -m sandbox up` with only the regions and the DigitalOcean API."""
    argv = [sys.executable, "-m", "sandbox", "up", "--dir", str(directory)]
    argv += ["--only", "regions,do_api", "--regions", ",".join(config.region_names)]
    argv += ["--tables", ",".join(config.tables)]
    return subprocess.Popen(argv, start_new_session=True)


async def forward_as_started(
    process: subprocess.Popen[bytes], directory: Path, listen_host: str, wanted: Mapping[str, int]
) -> list[asyncio.Server]:
    """Open each forward as soon as its component runs (regions long before the API)."""
    servers: dict[str, asyncio.Server] = {}
    deadline = time.monotonic() + START_TIMEOUT
    while len(servers) < len(wanted):
        if process.poll() is not None:
            raise RuntimeError(f"sandbox up exited with {process.returncode}")
        if time.monotonic() > deadline:
            missing = sorted(set(wanted) - set(servers))
            raise RuntimeError(f"{', '.join(missing)} not running within {START_TIMEOUT:g}s")
        found = backends(directory)
        for name in sorted(set(found) & set(wanted) - set(servers)):
            servers[name] = await serve_forward(listen_host, wanted[name], found[name])
        await asyncio.sleep(POLL_SECONDS)
    return list(servers.values())


async def run(config: Config, directory: Path, listen_host: str) -> int:
    """Start the stack, forward its ports, and stop both on SIGTERM or SIGINT."""
    wanted = forwards(config)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.json").unlink(missing_ok=True)  # a previous run's ports are stale
    (directory / READY_FILE).unlink(missing_ok=True)
    seed_do_token(config, directory)
    process = start_stack(config, directory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers: list[asyncio.Server] = []
    try:
        starting = asyncio.ensure_future(
            forward_as_started(process, directory, listen_host, wanted)
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            return 0
        stopping.cancel()
        servers = starting.result()
        (directory / READY_FILE).write_text(json.dumps({"host": listen_host, "forwards": wanted}))
        print(f"sandbox: forwarding {json.dumps(wanted)} on {listen_host}", flush=True)
        while not stop.is_set() and process.poll() is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        return 0 if stop.is_set() else 1
    finally:
        for server in servers:
            server.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # sandbox up stops what it started
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def check(directory: Path) -> int:
    """Healthcheck: 0 when every forward accepts connections."""
    try:
        state = json.loads((directory / READY_FILE).read_text())
    except (OSError, ValueError):
        return 1
    host = "127.0.0.1" if state["host"] in ("0.0.0.0", "::", "") else state["host"]
    return 0 if all(port_open(port, host) for port in state["forwards"].values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("DDB_FAILOVER_CONFIG"))
    parser.add_argument("--dir", type=Path, default=Path("/sandbox"))
    parser.add_argument("--listen-host", default="0.0.0.0")
    parser.add_argument("--check", action="store_true", help="healthcheck and exit")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.dir)
    try:
        config = load(args.config)
        forwards(config)
        config.responder.digitalocean.token.read()
    except ConfigError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(config, args.dir.resolve(), args.listen_host))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
