"""A local Alertmanager webhook receiver for tests: checks the bearer token and the v4 shape."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from sandbox.jsonhttp import JsonHandler
from tests.alerting.loopback import LoopbackServer

PAYLOAD_KEYS = {
    "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
    "commonLabels", "commonAnnotations", "externalURL", "alerts",
}  # fmt: skip
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"}


def shape_errors(payload: Any) -> list[str]:
    """What makes payload not an Alertmanager version-4 webhook notification."""
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    errors = [f"missing {key}" for key in sorted(PAYLOAD_KEYS - payload.keys())]
    if payload.get("version") != "4":
        errors.append(f"version is {payload.get('version')!r}, not '4'")
    for alert in payload.get("alerts") or []:
        errors.extend(f"alert missing {key}" for key in sorted(ALERT_KEYS - alert.keys()))
    return errors


class WebhookSink(LoopbackServer):
    """Records every well-formed, correctly authenticated notification with its arrival time."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.rejected: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def payloads(self) -> list[dict[str, Any]]:
        """Notifications received so far, oldest first."""
        with self._lock:
            return [payload for _, payload in self.received]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                if self.path != "/webhook":
                    return self._reply(404, f"no such path {self.path}")
                if self.headers.get("Authorization") != f"Bearer {sink.token}":
                    return self._reply(401, "bad or missing bearer token")
                try:
                    payload = json.loads(body)
                except ValueError:
                    return self._reply(400, "body is not JSON")
                errors = shape_errors(payload)
                if errors:
                    return self._reply(400, "; ".join(errors))
                with sink._lock:
                    sink.received.append((time.monotonic(), payload))
                return self._reply(202, "accepted")

            def _reply(self, code: int, message: str) -> None:
                if code >= 400:
                    with sink._lock:
                        sink.rejected.append((code, message))
                self.reply(code, {"message": message})

        return Handler
