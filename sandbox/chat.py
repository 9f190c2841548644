"""A local Slack-compatible incoming-webhook sink: validates messages and records them.

    python -m sandbox.chat --port P --token-file F

POST /hooks/TOKEN takes a message as Slack, Mattermost and Rocket.Chat do ({"text"}
and/or {"blocks"}; 200 "ok"), 404 for another token, 400 naming the problem;
GET /messages lists the accepted ones, oldest first, each with the Idempotency-Key it
came with. POST /_sandbox/faults {"status": 429, "count": N, "retry_after": S}
answers the next N messages with that status; DELETE /_sandbox/faults clears them.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ddb_failover import logs
from sandbox.jsonhttp import CountedFaults, JsonHandler
from sandbox.net import serve_until_stopped

log = logging.getLogger("sandbox.chat")
MAX_TEXT = 40_000  # Slack truncates beyond it
MAX_BLOCKS = 50


def validate_message(message: Any) -> list[str]:
    """Every reason a Slack incoming webhook would refuse message; empty when valid."""
    if not isinstance(message, dict):
        return ["the message must be a JSON object"]
    errors = []
    text, blocks = message.get("text"), message.get("blocks")
    if text is None and blocks is None:
        errors.append("no_text: give 'text' or 'blocks'")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        errors.append("'text' must be a non-empty string")
    elif isinstance(text, str) and len(text) > MAX_TEXT:
        errors.append(f"'text' is longer than {MAX_TEXT} characters")
    if blocks is not None and (
        not isinstance(blocks, list)
        or len(blocks) > MAX_BLOCKS
        or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
    ):
        errors.append(f"'blocks' must be a list of at most {MAX_BLOCKS} objects with a 'type'")
    return errors


def make_server(token: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The sink on host:port; only /hooks/token takes messages."""
    messages: list[dict[str, Any]] = []
    lock = threading.Lock()
    faults = CountedFaults()

    class Handler(JsonHandler):
        server_version = "chat-sandbox"

        def do_GET(self) -> None:
            if self.path == "/messages":
                with lock:
                    self.reply(200, {"messages": list(messages)})
            elif self.path == "/healthz":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": f"no such path {self.path}"})

        def do_DELETE(self) -> None:
            if not self.control(faults):
                self.reply(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self.control(faults):
                return
            if self.path != f"/hooks/{token}":
                self.reply(404, {"error": "no_service"})  # Slack's answer to a wrong URL
                return
            if self.faulted(faults):
                return
            try:
                message = json.loads(self.read_body())
            except ValueError:
                self.reply(400, {"error": "invalid_payload"})
                return
            errors = validate_message(message)
            if errors:
                self.reply(400, {"error": "invalid_payload", "errors": errors})
                return
            record = {
                "received_at": time.time(),
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "text": message.get("text"),
                "blocks": message.get("blocks"),
            }
            with lock:
                messages.append(record)
            log.info(logs.kv(message=record["idempotency_key"]))
            self.reply(200, {"ok": True})

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    """Run the sink until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.chat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logs.setup("INFO")
    token = args.token_file.read_text(encoding="utf-8").strip()
    if not token:
        parser.error(f"token file {args.token_file} is empty")
    serve_until_stopped(make_server(token, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
