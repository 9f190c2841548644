"""A quiet JSON request handler base for the sandbox's small stdlib HTTP servers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """Answers with JSON bodies; logs nothing per request (callers log what matters)."""

    def reply(self, code: int, body: Mapping[str, Any]) -> None:
        """Send code with body as JSON."""
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        """The request body, as long as Content-Length says."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:
        pass
