"""A quiet JSON request handler base for the sandbox's small stdlib HTTP servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any


class CountedFaults:
    """Answer the next `count` requests with a status (a sink pretending to be overloaded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[dict[str, int]] = []

    def add(self, body: Any) -> dict[str, int]:
        """Queue {"status": 429|500|503, "count": N, "retry_after": S}; ValueError if bad."""
        if not isinstance(body, dict) or set(body) - {"status", "count", "retry_after"}:
            raise ValueError('body must be {"status", "count", "retry_after"}')
        status, count = body.get("status"), body.get("count", 1)
        if status not in (429, 500, 503) or not isinstance(count, int) or count < 1:
            raise ValueError("status must be 429, 500 or 503 and count a positive integer")
        fault = {"status": status, "count": count, "retry_after": int(body.get("retry_after", 1))}
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self) -> dict[str, int] | None:
        """The fault this request gets, if any."""
        with self._lock:
            if not self._pending:
                return None
            fault = self._pending[0]
            fault["count"] -= 1
            if fault["count"] == 0:
                self._pending.pop(0)
            return dict(fault)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


class JsonHandler(BaseHTTPRequestHandler):
    """Answers with JSON bodies; logs nothing per request (callers log what matters)."""

    def reply(self, code: int, body: Mapping[str, Any], headers: Mapping[str, str] = {}) -> None:
        """Send code with body as JSON."""
        data = json.dumps(body).encode()
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        """The request body, as long as Content-Length says."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def faulted(self, faults: CountedFaults) -> bool:
        """Answer with the next queued fault, if there is one; True when it did."""
        fault = faults.take()
        if fault is None:
            return False
        retry = {"Retry-After": str(fault["retry_after"])} if fault["status"] == 429 else {}
        self.reply(fault["status"], {"status": "error", "message": "injected fault"}, retry)
        return True

    def control(self, faults: CountedFaults) -> bool:
        """POST/DELETE /_sandbox/faults; True when the request was one of those."""
        if self.path != "/_sandbox/faults":
            return False
        if self.command == "DELETE":
            faults.clear()
            self.reply(200, {"cleared": True})
            return True
        try:
            self.reply(201, {"fault": faults.add(json.loads(self.read_body() or b"{}"))})
        except ValueError as exc:
            self.reply(400, {"error": str(exc)})
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass
