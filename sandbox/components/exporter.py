"""Component "exporter": ddb-exporter probing the sandbox regions."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Mapping
from typing import Any

from sandbox import profiles
from sandbox.net import free_port
from sandbox.stack import Stack, component

# Without a profile the sandbox probes faster than shipped, so demos move along.
SANDBOX_TIMINGS = {"interval_seconds": 2.0, "timeout_seconds": 1.0}
# Replica statuses change when a person (or `chaos replica-status`) changes them: the
# sandbox reads them every 10 s rather than the shipped 300 s.
SANDBOX_DESCRIBE_INTERVAL_SECONDS = 10.0


def probe_timings(options: Mapping[str, Any]) -> dict[str, float]:
    """Probe interval and timeout: the options', else the profile's, else the sandbox's."""
    name = options.get("profile")
    timings = profiles.load(name).exporter_settings() if name else dict(SANDBOX_TIMINGS)
    for key, option in (
        ("interval_seconds", "probe_interval_seconds"),
        ("timeout_seconds", "probe_timeout_seconds"),
    ):
        if options.get(option) is not None:
            timings[key] = float(options[option])
    return timings


def _configure(stack: Stack) -> None:
    port = free_port()
    stack.extras["exporter_port"] = port
    stack.config_data["exporter"] = {
        "listen": f"127.0.0.1:{port}",
        "vantage": "sandbox",
        **probe_timings(stack.options),
        "describe_interval_seconds": float(
            stack.options.get("describe_interval_seconds") or SANDBOX_DESCRIBE_INTERVAL_SECONDS
        ),
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
