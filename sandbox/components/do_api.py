"""Component "do_api": the DigitalOcean API sandbox, seeded with ddb-failover's objects."""

from __future__ import annotations

import json
import sys
import urllib.request

from sandbox.components.regions import region_names
from sandbox.do_api.seed import default_seed, responder_actions
from sandbox.net import free_port
from sandbox.stack import Stack, component


def _answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_sandbox/violations", timeout=1) as response:
        return bool(response.status == 200)


@component("do_api")
def start_do_api(stack: Stack) -> None:
    """Start the sandbox; put its URL, token file and seeded objects in config_data["_sandbox"].

    stack.config_data["_sandbox"]["do_api"] holds "url", "token_file", the seed's objects
    (sandbox.do_api.seed.SandboxObjects: the record "www" and its value per region, each
    region's load balancer, the Global Load Balancer, droplets, the App Platform app), and,
    ready for the responder's config, "digitalocean" (its responder.digitalocean section) and
    "actions" (do_dns_record moving "www" between the regional load balancers, and
    do_global_load_balancer putting the target region first: moves DigitalOcean accepts).
    """
    seed, objects = default_seed(region_names(stack))
    seed_path = stack.dir / "do-api-seed.json"
    seed_path.write_text(json.dumps(seed, indent=2))
    token_path = stack.secret("do-token")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "sandbox.do_api", "--port", str(port)]
    argv += ["--token-file", str(token_path), "--seed", str(seed_path)]
    stack.spawn("do_api", argv, url, ready=lambda: _answers(url))
    stack.config_data.setdefault("_sandbox", {})["do_api"] = {
        "url": url,
        "token_file": str(token_path),
        **objects,
        "digitalocean": {"api_url": url, "token": {"file": str(token_path)}},
        "actions": responder_actions(objects),
    }
