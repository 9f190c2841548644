"""A local PagerDuty Events API v2 sink: validates events like PagerDuty and records them.

    python -m sandbox.pagerduty --port P --routing-key-file F --log FILE

POST /v2/enqueue answers 202 (as PagerDuty does) for a valid event and 400 with
the reasons for an invalid one; so does POST /v2/change/enqueue for a change
event. GET /events lists the accepted events of both kinds ("kind": alert or
change), oldest first, without their routing keys; a change event keeps the
Idempotency-Key it came with. Each accepted event is also appended to FILE as
one JSON line. POST /_sandbox/faults {"status": 429, "count": N} answers the
next N events with that status; DELETE /_sandbox/faults clears them.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ddb_failover import logs
from sandbox.jsonhttp import CountedFaults, JsonHandler
from sandbox.net import serve_until_stopped

log = logging.getLogger("sandbox.pagerduty")

ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
MAX_BODY_BYTES = 512 * 1024  # PagerDuty's limit per event
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _check_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger events and must be an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is required and must be a non-empty string")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
    if not _is_text(payload.get("source")):
        errors.append("'payload.source' is required and must be a non-empty string")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    for key in ("component", "group", "class"):
        if key in payload and not isinstance(payload[key], str):
            errors.append(f"'payload.{key}' must be a string")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            errors.append("'payload.timestamp' must be an ISO 8601 date-time")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
        errors.append("'payload.custom_details' must be an object or a string")
    return errors


def _check_links(event: Mapping[str, Any]) -> list[str]:
    errors = []
    for key, required in (("links", "href"), ("images", "src")):
        items = event.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and _is_text(item.get(required)) for item in items
        ):
            errors.append(f"'{key}' must be a list of objects each with a '{required}'")
    return errors


def validate_change(event: Any, routing_key: str) -> list[str]:
    """Every reason PagerDuty would reject a change event; empty when valid."""
    if not isinstance(event, dict):
        return ["the event must be a JSON object"]
    errors = []
    if event.get("routing_key") != routing_key:
        errors.append("'routing_key' is missing or is not a valid integration key")
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return [*errors, "'payload' is required and must be an object"]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is required and must be a non-empty string")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            errors.append("'payload.timestamp' must be an ISO 8601 date-time")
    if "source" in payload and not isinstance(payload["source"], str):
        errors.append("'payload.source' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    errors.extend(_check_links(event))
    return errors


def validate_event(event: Any, routing_key: str) -> list[str]:
    """Every reason PagerDuty's Events API v2 would reject event; empty when valid."""
    if not isinstance(event, dict):
        return ["the event must be a JSON object"]
    errors = []
    if event.get("routing_key") != routing_key:
        errors.append("'routing_key' is missing or is not a valid integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (
        not isinstance(dedup_key, str) or not dedup_key or len(dedup_key) > MAX_DEDUP_KEY
    ):
        errors.append(f"'dedup_key' must be a non-empty string of at most {MAX_DEDUP_KEY} chars")
    if action in ("acknowledge", "resolve") and dedup_key is None:
        errors.append(f"'dedup_key' is required for {action} events")
    if action == "trigger":
        errors.extend(_check_payload(event.get("payload")))
    for key in ("client", "client_url"):
        if key in event and not isinstance(event[key], str):
            errors.append(f"'{key}' must be a string")
    errors.extend(_check_links(event))
    return errors


class EventLog:
    """Accepted events in memory and, one JSON line each, in a file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(
        self,
        event: Mapping[str, Any],
        dedup_key: str,
        kind: str = "alert",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Record an accepted event, without its routing key (a secret)."""
        record = {
            "received_at": time.time(),
            "kind": kind,
            "dedup_key": dedup_key,
            "idempotency_key": idempotency_key,
            "event": {k: v for k, v in event.items() if k != "routing_key"},
        }
        with self._lock:
            self._events.append(record)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
        return record

    def all(self) -> list[dict[str, Any]]:
        """Every accepted event, oldest first."""
        with self._lock:
            return list(self._events)


def make_server(
    routing_key: str, events: EventLog, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """An HTTP server speaking the Events API v2 enqueue endpoints on host:port."""
    faults = CountedFaults()

    class Handler(JsonHandler):
        server_version = "pagerduty-sandbox"

        def do_GET(self) -> None:
            if self.path == "/events":
                self.reply(200, {"events": events.all()})
            elif self.path == "/healthz":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"status": "not found", "message": f"no such path {self.path}"})

        def do_DELETE(self) -> None:
            if not self.control(faults):
                self.reply(404, {"status": "not found", "message": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self.control(faults):
                return
            if self.path not in (ENQUEUE_PATH, CHANGE_PATH):
                self.reply(404, {"status": "not found", "message": f"no such path {self.path}"})
                return
            if self.faulted(faults):
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.reply(413, {"status": "invalid event", "message": "Request too large"})
                return
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type != "application/json":
                self._invalid(["Content-Type must be application/json"])
                return
            try:
                event = json.loads(body)
            except ValueError:
                self._invalid(["the body is not valid JSON"])
                return
            if self.path == CHANGE_PATH:
                self._change(event)
                return
            errors = validate_event(event, routing_key)
            if errors:
                self._invalid(errors)
                return
            dedup_key = event.get("dedup_key") or uuid.uuid4().hex
            events.add(event, dedup_key)
            log.info(logs.kv(event_action=event["event_action"], dedup_key=dedup_key))
            self.reply(
                202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
            )

        def _change(self, event: Any) -> None:
            errors = validate_change(event, routing_key)
            if errors:
                self._invalid(errors)
                return
            key = self.headers.get("Idempotency-Key")
            events.add(event, uuid.uuid4().hex, "change", key)
            log.info(logs.kv(change=key))
            self.reply(202, {"status": "success", "message": "Change event processed"})

        def _invalid(self, errors: list[str]) -> None:
            log.warning(logs.kv(rejected=len(errors), first_error=errors[0]))
            self.reply(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    """Run the sink until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.pagerduty", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--routing-key-file", type=Path, required=True)
    parser.add_argument("--log", type=Path, help="append accepted events here, one JSON a line")
    args = parser.parse_args(argv)
    logs.setup("INFO")
    try:
        routing_key = args.routing_key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        parser.error(f"cannot read routing key file {args.routing_key_file}: {exc.strerror}")
    if not routing_key:
        parser.error(f"routing key file {args.routing_key_file} is empty")
    server = make_server(routing_key, EventLog(args.log), args.host, args.port)
    log.info(logs.kv(listening=f"http://{args.host}:{server.server_address[1]}{ENQUEUE_PATH}"))
    serve_until_stopped(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
