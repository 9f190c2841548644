"""The supervisor's loopback control endpoint, through which `chaos` reaches regions; its client."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.jsonhttp import JsonHandler

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# What `python -m sandbox chaos REGION OP` can do: to the region's process, to
# replication into it, to what DescribeTable reports for it (STRONG tables only),
# and `responder restart`.
REGION_OPS = ("pause", "resume", "stop", "start", "slow", "fast")
REPLICATION_OPS = ("replication-pause", "replication-resume", "replication-delay")
REGION_CHAOS = (*REGION_OPS, *REPLICATION_OPS, "replica-status")
CHAOS_OPS = (*REGION_CHAOS, "restart", "site-down", "site-up")


def serve(handle: Handler, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Serve POST /chaos on a free port in a daemon thread; return the server and its URL."""

    class Control(JsonHandler):
        def do_POST(self) -> None:
            if self.path != "/chaos":
                self.reply(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                request = json.loads(self.read_body() or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("body must be a JSON object")
                self.reply(200, handle(request))
            except (ValueError, KeyError, RuntimeError) as exc:
                self.reply(400, {"error": str(exc)})

    server = ThreadingHTTPServer((host, 0), Control)
    threading.Thread(target=server.serve_forever, name="sandbox-control", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def send_chaos(directory: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Ask a running stack's supervisor to apply a chaos operation."""
    try:
        state = json.loads((directory / "stack.json").read_text())
        url = state["supervisor"]["url"]
    except (OSError, ValueError, KeyError):
        raise RuntimeError(f"no running sandbox in {directory} (no usable stack.json)") from None
    body = json.dumps(request).encode()
    req = urllib.request.Request(
        f"{url}/chaos", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(json.load(exc).get("error", str(exc))) from None
    except urllib.error.URLError as exc:
        raise RuntimeError(f"sandbox supervisor at {url} unreachable: {exc.reason}") from None
