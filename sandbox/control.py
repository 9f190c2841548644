"""The supervisor's loopback control endpoint, through which `chaos` reaches regions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def serve(handle: Handler, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Serve POST /chaos on a free port in a daemon thread; return the server and its URL."""

    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/chaos":
                self._reply(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("body must be a JSON object")
                self._reply(200, handle(request))
            except (ValueError, KeyError, RuntimeError) as exc:
                self._reply(400, {"error": str(exc)})

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Control)
    threading.Thread(target=server.serve_forever, name="sandbox-control", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"
