"""Component "blackbox": the real blackbox_exporter with the shipped modules, on loopback.

The shipped blackbox/blackbox.yml sets the Host header of the site's public name;
render_config() changes only that header, to the sandbox sites' name. Prometheus's job
`wordpress` probes each region's site through it (sandbox/components/prometheus.py).
"""

from __future__ import annotations

import copy
import functools
import shutil
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sandbox.components.sites import SITE_HOST
from sandbox.net import free_port
from sandbox.stack import Stack, component

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "blackbox" / "blackbox.yml"
MODULE = "wordpress_health"


def render_config(shipped: Mapping[str, Any], host: str) -> dict[str, Any]:
    """The shipped modules with only the HTTP modules' Host header replaced."""
    config = copy.deepcopy(dict(shipped))
    for module in config.get("modules", {}).values():
        headers = module.get("http", {}).get("headers")
        if headers is not None and "Host" in headers:
            headers["Host"] = host
    return config


def binary() -> str:
    """Debian calls it prometheus-blackbox-exporter; upstream blackbox_exporter."""
    found = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if found is None:
        raise RuntimeError(
            "no blackbox_exporter binary: apt-get install prometheus-blackbox-exporter"
        )
    return found


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/healthy", timeout=1) as response:
        return bool(response.status == 200)


@component("blackbox")
def start_blackbox(stack: Stack) -> None:
    """Run blackbox_exporter with the rendered modules, its config under DIR/blackbox."""
    home = stack.dir / "blackbox"
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "blackbox.yml"
    config = render_config(yaml.safe_load(SHIPPED.read_text()), SITE_HOST)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary(), f"--config.file={config_file}", f"--web.listen-address=127.0.0.1:{port}"]
    stack.spawn("blackbox", argv, url, ready=functools.partial(_healthy, url))
