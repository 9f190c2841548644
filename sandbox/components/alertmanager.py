"""Component "alertmanager": the real Alertmanager with the shipped config, on loopback.

The shipped alertmanager/alertmanager.yml names compose hosts and /run/secrets
files; render_config() changes only those URLs and file paths, never routes,
receivers' settings, inhibitions or templates.
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

from sandbox.components.pagerduty import ENQUEUE_PATH, ROUTING_KEY_SECRET
from sandbox.net import free_port
from sandbox.stack import Stack, component

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "alertmanager.yml"
WEBHOOK_TOKEN_SECRET = "webhook-token"
DEFAULT_LISTEN = {"exporter": "127.0.0.1:9745", "responder": "127.0.0.1:9746"}


def service_url(stack: Stack, name: str) -> str:
    """A service's URL: option NAME_url, the running component's, or its configured listen."""
    override = stack.options.get(f"{name}_url")
    if override:
        return str(override).rstrip("/")  # e.g. a test's own webhook sink for the responder
    running = stack.components.get(name)
    if running is not None:
        return running.url.rstrip("/")
    section = stack.config_data.get(name) or {}
    host, _, port = str(section.get("listen", DEFAULT_LISTEN[name])).rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"  # a wildcard listener is reached on loopback
    return f"http://{host}:{port}"


def render_config(
    shipped: Mapping[str, Any],
    *,
    templates_dir: Path,
    webhook_url: str,
    webhook_token_file: Path,
    pagerduty_url: str,
    pagerduty_key_file: Path,
) -> dict[str, Any]:
    """The shipped config with only its URLs and secret/template paths replaced."""
    config = copy.deepcopy(dict(shipped))
    config.setdefault("global", {})["pagerduty_url"] = pagerduty_url
    config["templates"] = [str(templates_dir / Path(t).name) for t in config.get("templates", [])]
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            auth = hook.get("http_config", {}).get("authorization")
            if auth is not None and "credentials_file" in auth:
                auth["credentials_file"] = str(webhook_token_file)
        for page in receiver.get("pagerduty_configs", []):
            if "url" in page:
                page["url"] = pagerduty_url
            if "routing_key_file" in page:
                page["routing_key_file"] = str(pagerduty_key_file)
    return config


def binary() -> str:
    """Debian calls it prometheus-alertmanager; upstream alertmanager."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        raise RuntimeError("no alertmanager binary: apt-get install prometheus-alertmanager")
    return found


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
        return bool(response.status == 200)


@component("alertmanager", needs=("pagerduty", "config"))
def start_alertmanager(stack: Stack) -> None:
    """Run Alertmanager with the rendered config, its state under DIR/alertmanager."""
    home = stack.dir / "alertmanager"
    (home / "data").mkdir(parents=True, exist_ok=True)
    config = render_config(
        yaml.safe_load(SHIPPED.read_text()),
        templates_dir=REPO / "alertmanager" / "templates",
        webhook_url=f"{service_url(stack, 'responder')}/webhook",
        webhook_token_file=stack.secret(WEBHOOK_TOKEN_SECRET),
        pagerduty_url=f"{stack.components['pagerduty'].url}{ENQUEUE_PATH}",
        pagerduty_key_file=stack.secret(ROUTING_KEY_SECRET),
    )
    config_file = home / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    replicas = int(stack.options.get("alertmanager_replicas", 1))
    urls = _start_replicas(stack, home, config_file, replicas)
    stack.extras["alertmanager_urls"] = urls
    stack.published["alertmanager_replicas"] = urls


def _start_replicas(stack: Stack, home: Path, config_file: Path, replicas: int) -> list[str]:
    """Start one Alertmanager, or several gossiping as one cluster, as in an HA setup."""
    gossip = [free_port() for _ in range(replicas)] if replicas > 1 else []
    urls = []
    for index in range(replicas):
        name = "alertmanager" if index == 0 else f"alertmanager-{index + 1}"
        data = home / ("data" if index == 0 else f"data-{index + 1}")
        data.mkdir(parents=True, exist_ok=True)
        # The first replica's port may be chosen already: the responder's config names it.
        port = stack.extras.get("alertmanager_port") if index == 0 else None
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [
            binary(),
            f"--config.file={config_file}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}",
        ]
        if gossip:
            argv.append(f"--cluster.listen-address=127.0.0.1:{gossip[index]}")
            argv += [f"--cluster.peer=127.0.0.1:{p}" for i, p in enumerate(gossip) if i != index]
        else:
            argv.append("--cluster.listen-address=")  # no gossip: it would bind a fixed port
        running = stack.spawn(name, argv, url, ready=functools.partial(_ready, url))
        if index:
            # stack.json names only the first replica; the others are listed beside it.
            stack.components.pop(name)
            stack.save()
        urls.append(running.url)
    return urls
