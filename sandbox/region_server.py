"""One sandbox region: moto's DynamoDB server behind a wire-latency knob.

Run as ``python -m sandbox.region_server --port P``. ``POST /_sandbox/delay?ms=N``
sets the latency added before every request is answered; ``GET /_sandbox/delay``
reads it. SIGSTOP on this process is a black hole, killing it a refused connection.

With ``--strong-tables T,... --region R --coordinator URL`` those tables answer as
region R of a multi-Region strongly consistent table (sandbox/mrsc_adapter.py);
with ``--witness`` the server is that table's witness.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.serving import make_server

CONTROL_PATH = "/_sandbox/delay"


class LatencyMiddleware:
    """Delay every request by a settable number of milliseconds."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.delay_ms = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        return self.app(environ, start_response)

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] == "POST":
            query = dict(
                part.split("=", 1) for part in environ.get("QUERY_STRING", "").split("&") if part
            )
            try:
                delay = int(query.get("ms", ""))
                if delay < 0:
                    raise ValueError
            except ValueError:
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error": "ms must be a non-negative integer"}']
            self.delay_ms = delay
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"delay_ms": self.delay_ms}).encode()]


def build_app(
    region: str = "",
    strong_tables: Sequence[str] = (),
    coordinator_url: str = "",
    witness: bool = False,
) -> LatencyMiddleware:
    """moto's multi-service WSGI app, as a region of STRONG tables if asked, with the knob."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    app: Callable[..., Iterable[bytes]] = DomainDispatcherApplication(create_backend_app)
    if coordinator_url:
        from sandbox.mrsc_adapter import StrongConsistency

        app = StrongConsistency(app, region, strong_tables, coordinator_url, witness)
    return LatencyMiddleware(app)


def _exit_when_orphaned(server: Any) -> None:
    """Shut down when the process that started us dies without stopping us (a killed test run)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1.0)
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Serve one region until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.region_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", default="", help="this region's name (strong consistency)")
    parser.add_argument(
        "--strong-tables", default="", help="tables in STRONG mode, comma separated"
    )
    parser.add_argument("--coordinator", default="", help="the supervisor's quorum coordinator")
    parser.add_argument("--witness", action="store_true", help="serve as the tables' witness")
    args = parser.parse_args(argv)
    tables = [t for t in args.strong_tables.split(",") if t]
    app = build_app(args.region, tables, args.coordinator, args.witness)
    server = make_server(args.host, args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=_exit_when_orphaned, args=(server,), daemon=True).start()
    print(f"listening address={args.host}:{server.server_port}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
