"""Component "responder": ddb-responder under gunicorn, acting on the sandbox's objects."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from typing import Any

from sandbox.components.chat import URL_SECRET
from sandbox.components.pagerduty import ROUTING_KEY_SECRET
from sandbox.net import free_port
from sandbox.stack import Stack, component

ENV_FILE = "wordpress/dynamodb.env"


def _actions(stack: Stack) -> list[dict[str, Any]]:
    do = stack.config_data.get("_sandbox", {}).get("do_api")
    actions: list[dict[str, Any]] = list(do["actions"]) if do is not None else []
    env = {"name": "wp-env", "type": "env_file", "path": str(stack.dir / ENV_FILE)}
    return [*actions, {**env, "variable": "DYNAMODB_REGION"}]


def _configure(stack: Stack) -> None:
    port = free_port()
    stack.extras["responder_port"] = port
    (stack.dir / ENV_FILE).parent.mkdir(parents=True, exist_ok=True)
    (stack.dir / "state").mkdir(exist_ok=True)
    section: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "webhook_token": {"file": str(stack.secret("webhook-token"))},
        "auth": {
            "tokens": [
                {
                    "name": "operator",
                    "role": "operator",
                    "secret": {"file": str(stack.secret("operator-token"))},
                },
                {
                    "name": "viewer",
                    "role": "viewer",
                    "secret": {"file": str(stack.secret("viewer-token"))},
                },
            ]
        },
        "state": {"backend": "sqlite", "path": str(stack.dir / "state" / "responder.db")},
        "policy": {
            "failback": "auto",
            "min_dwell_seconds": float(stack.options.get("min_dwell_seconds", 20)),
            "max_transitions_per_hour": 10,
            "rpo_seconds": 60,
            "readiness_timeout_seconds": 1.0,
            "transition_deadline_seconds": float(
                stack.options.get("transition_deadline_seconds", 900)
            ),
            "approval": stack.options.get("approval", "none"),
        },
        "retry": {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 2},
        "actions": _actions(stack),
    }
    do = stack.config_data.get("_sandbox", {}).get("do_api")
    if do is not None:
        section["digitalocean"] = {**do["digitalocean"], "timeout_seconds": 5}
    section["notify"] = _notify(stack, f"http://127.0.0.1:{port}")
    stack.config_data["responder"] = section


def _notify(stack: Stack, responder_url: str) -> dict[str, Any]:
    """Both receivers, at the sandbox's PagerDuty and chat sinks, when they run."""
    receivers: list[dict[str, Any]] = []
    if "pagerduty" in stack.components:
        receivers.append(
            {
                "name": "pagerduty",
                "type": "pagerduty_change",
                "routing_key": {"file": str(stack.secret(ROUTING_KEY_SECRET))},
                "url": stack.components["pagerduty"].url,
            }
        )
    if "chat" in stack.components:
        receivers.append(
            {
                "name": "chat",
                "type": "slack",
                "webhook_url": {"file": str(stack.secret(URL_SECRET))},
            }
        )
    return {"receivers": receivers, "responder_url": responder_url, "timeout_seconds": 5}


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
        return bool(response.status == 200)


@component(
    "responder",
    needs=("regions", "do_api", "pagerduty", "chat", "config"),
    configure=_configure,
)
def start_responder(stack: Stack) -> None:
    """Serve the responder with gunicorn and the SQLite store."""
    url = f"http://127.0.0.1:{stack.extras['responder_port']}"
    metrics_dir = stack.dir / "state" / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    running = stack.spawn(
        "responder",
        [sys.executable, "-m", "responder", "serve", "--config", str(stack.config_path)],
        url,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "RESPONDER_WORKERS": "2"},
        ready=lambda: _ready(url),
    )
    stack.extras["responder_process"] = running.process


def restart(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    """Kill the responder outright (SIGKILL, as a crash would) and start it again."""
    if request.get("op") != "restart":
        raise ValueError(f"unknown operation {request.get('op')!r} for the responder; use restart")
    process = stack.extras.get("responder_process")
    if process is None:
        raise ValueError("no responder runs in this stack")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    start_responder(stack)
    return {"region": "responder", "op": "restart", "pid": stack.components["responder"].pid}
