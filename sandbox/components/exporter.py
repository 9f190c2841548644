"""Component "exporter": ddb-exporter probing the sandbox regions."""

from __future__ import annotations

import sys
import urllib.request

from sandbox.net import free_port
from sandbox.stack import Stack, component


def _configure(stack: Stack) -> None:
    port = free_port()
    stack.extras["exporter_port"] = port
    stack.config_data["exporter"] = {
        "listen": f"127.0.0.1:{port}",
        "vantage": "sandbox",
        "interval_seconds": float(stack.options.get("probe_interval_seconds", 2)),
        "timeout_seconds": float(stack.options.get("probe_timeout_seconds", 1)),
    }


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
        return bool(response.status == 200)


@component("exporter", needs=("regions", "config"), configure=_configure)
def start_exporter(stack: Stack) -> None:
    """Run the exporter against the generated config."""
    url = f"http://127.0.0.1:{stack.extras['exporter_port']}"
    stack.spawn(
        "exporter",
        [sys.executable, "-m", "exporter", "--config", str(stack.config_path)],
        url,
        ready=lambda: _healthy(url),
    )
