"""Component "pagerduty": the local PagerDuty Events API v2 sink Alertmanager pages into."""

from __future__ import annotations

import sys

from sandbox.net import free_port, port_open
from sandbox.stack import Stack, component

ROUTING_KEY_SECRET = "pagerduty-routing-key"
ENQUEUE_PATH = "/v2/enqueue"


def events_log(stack: Stack) -> str:
    """Where the sink appends accepted events, one JSON a line."""
    return str(stack.logs_dir / "pagerduty-events.jsonl")


@component("pagerduty")
def start_pagerduty(stack: Stack) -> None:
    """Run the sink on a free port with a generated routing key."""
    port = free_port()
    stack.spawn(
        "pagerduty",
        [
            sys.executable,
            "-m",
            "sandbox.pagerduty",
            "--port",
            str(port),
            "--routing-key-file",
            str(stack.secret(ROUTING_KEY_SECRET)),
            "--log",
            events_log(stack),
        ],
        url=f"http://127.0.0.1:{port}",
        ready=lambda: port_open(port),
    )
