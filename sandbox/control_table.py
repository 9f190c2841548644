"""The DynamoDB control table for tests and `bench chaos`: a moto server answering one request
at a time.

moto's DynamoDB is not safe under concurrent requests: a conditional write
checks its condition and then writes, with no lock in between, so two racing
requests can both pass. Real DynamoDB makes each item's conditional writes
atomic; one request at a time gives moto that guarantee, so a race our tests
find is a race in our code, not in the emulator.

python -m sandbox.control_table --port P     serve until SIGTERM
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sandbox.net import free_port, port_open, wait_until

REPO = Path(__file__).resolve().parents[1]


class Serialised:
    """WSGI middleware: one request inside the app at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self.lock:
            # Produce the whole answer inside the lock; close what the app returned.
            answer = self.app(environ, start_response)
            try:
                return list(answer)
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


def main(argv: list[str] | None = None) -> int:
    """Serve moto's DynamoDB on 127.0.0.1:PORT until SIGTERM."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(prog="python -m sandbox.control_table")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = Serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


class ControlTableServer:
    """The server process: start, pause (black hole), resume, close."""

    def __init__(self, workdir: Path, region: str = "us-west-2") -> None:
        self.workdir = workdir
        self.region = region
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self, table: str = "ddb-failover-control", **extra: Any) -> dict[str, Any]:
        """The responder.state config block for a table on this server."""
        return {
            "backend": "dynamodb",
            "table": table,
            "region": self.region,
            "endpoint_url": self.url,
            **extra,
        }

    def start(self) -> ControlTableServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "control-table.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.control_table", "--port", str(self.port)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self._up, 30, 0.05, f"control table server on port {self.port}")
        return self

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"control table server exited; see {self.workdir}")
        return port_open(self.port)

    def pause(self) -> None:
        """Black-hole it: connections are accepted by the kernel and never answered."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGCONT)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())
