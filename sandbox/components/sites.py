"""Components "sites" (``site:REGION``: WordPress in each region) and "glb" (its front).

Each site is a process of its own (sandbox/site.py) on a port kept for the stack's life,
so ``python -m sandbox chaos REGION site-down`` (a refused connection) and ``site-up``
leave every URL that names it valid. All sites read the one WordPress env file the
responder's env_file action writes (DIR/wordpress/dynamodb.env), and re-read it on the
action's reload command (``python -m sandbox.site reload --dir DIR``). The posts they
render are written into the primary region at start and replicated like any write.

The glb front (sandbox/glb.py) forwards users' requests to the site of the region the
DigitalOcean sandbox's Global Load Balancer puts first, by its own health checks.
"""

from __future__ import annotations

import functools
import sys
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.components.regions import CANARY, DEFAULT_TABLES, region_names
from sandbox.do_api.seed import DEFAULT_DOMAIN
from sandbox.net import free_port
from sandbox.regions import Region
from sandbox.site import ENV_FILE
from sandbox.stack import Running, Stack, component, stop_process

SITE_HOST = f"www.{DEFAULT_DOMAIN}"  # the record the do_dns_record action moves
HEALTH_PATH = "/healthz"
SITE_OPS = ("site-down", "site-up")
POSTS = (
    {
        "post_date": "2024-01-15T09:00:00Z",
        "post_title": "Hello world!",
        "post_content": "Welcome to WordPress. This is your first post.",
    },
    {
        "post_date": "2024-06-03T09:00:00Z",
        "post_title": "We moved regions and nobody noticed",
        "post_content": "Posts live in a DynamoDB Global Table, replicated to every region.",
    },
)


def ensure_env_file(stack: Stack) -> Path:
    """WordPress's env file, on the primary region unless it exists: it predates failovers."""
    path = stack.dir / ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(f"DYNAMODB_REGION={region_names(stack)[0]}\nWP_READ_ONLY=0\n")
    return path


def reload_command(stack: Stack) -> list[str]:
    """The env_file action's reload command: every running site re-reads the file."""
    return [sys.executable, "-m", "sandbox.site", "reload", "--dir", str(stack.dir)]


def health_urls(stack: Stack) -> dict[str, str]:
    """Each running stack's site health URL, by region (empty without sites)."""
    return {
        name.removeprefix("site:"): f"{running.url}{HEALTH_PATH}"
        for name, running in stack.components.items()
        if name.startswith("site:")
    }


def _answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_sandbox/config", timeout=1) as response:
        return bool(response.status == 200)


def _write_posts(stack: Stack, table: str) -> None:
    regions: dict[str, Region] = stack.extras["regions"]
    client = regions[region_names(stack)[0]].client(timeout=10.0)
    for number, post in enumerate(POSTS, start=1):
        item = {key: {"S": value} for key, value in post.items()}
        client.put_item(TableName=table, Item={CANARY["key"]: {"S": f"post-{number}"}, **item})


def _start_site(stack: Stack, region: str) -> None:
    argv, url = stack.extras["sites"][region]
    stack.spawn(f"site:{region}", argv, url, ready=functools.partial(_answers, url))


@component("sites", needs=("regions",))
def start_sites(stack: Stack) -> None:
    """Start one site per region, reading the env file and the regions' tables."""
    env_file = ensure_env_file(stack)
    table = (stack.options.get("tables") or DEFAULT_TABLES)[0]
    _write_posts(stack, table)
    regions: dict[str, Region] = stack.extras["regions"]
    endpoints = [arg for n, r in regions.items() for arg in ("--endpoint", f"{n}={r.url}")]
    stack.extras["sites"] = {}
    for region in region_names(stack):
        port = free_port()
        argv = [
            *(sys.executable, "-m", "sandbox.site", "serve", "--region", region),
            *("--port", str(port), "--env-file", str(env_file), "--table", table),
            *("--canary", f"{CANARY['key']}={CANARY['value']}"),
            *("--host-name", SITE_HOST, *endpoints),
        ]
        stack.extras["sites"][region] = (argv, f"http://127.0.0.1:{port}")
        _start_site(stack, region)
    stack.published["site_host"] = SITE_HOST
    # regions[].site: the responder checks each region's site before it moves traffic there.
    for entry in stack.config_data.get("regions", []):
        url = stack.extras["sites"][entry["name"]][1]
        entry["site"] = {"health_url": f"{url}{HEALTH_PATH}", "host": SITE_HOST}


def chaos(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    """site-down stops a region's site (connections refused); site-up starts it again."""
    sites: dict[str, Any] = stack.extras.get("sites", {})
    region, op = request.get("region"), request.get("op")
    if region not in sites:
        raise ValueError(f"no site for region {region!r}; sites: {', '.join(sites) or 'none'}")
    name = f"site:{region}"
    running = stack.components.get(name)
    if op == "site-down":
        if running is not None and running.process is not None:
            stop_process(running.process)
        stack.register(Running(name, None, sites[region][1]))
    elif op == "site-up":
        if running is None or running.pid is None:
            _start_site(stack, region)
    else:
        raise ValueError(f"unknown site operation {op!r}; use {' or '.join(SITE_OPS)}")
    return {"region": region, "op": op, "pid": stack.components[name].pid}


def _front_ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_sandbox/glb", timeout=1) as response:
        return bool(response.status == 200)


@component("glb", needs=("sites", "do_api"))
def start_glb(stack: Stack) -> None:
    """Start the Global Load Balancer's front over every region's site."""
    do = stack.config_data["_sandbox"]["do_api"]
    sites: dict[str, Any] = stack.extras["sites"]
    targets = [
        arg
        for region, slug in do["droplet_regions"].items()
        for arg in ("--target", f"{slug}={sites[region][1]}")
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        *(sys.executable, "-m", "sandbox.glb", "--port", str(port), "--do-api", do["url"]),
        *("--load-balancer-id", do["global_load_balancer_id"], "--host-name", SITE_HOST),
        *("--health-path", HEALTH_PATH, *targets),
    ]
    stack.spawn("glb", argv, url, ready=functools.partial(_front_ready, url))
