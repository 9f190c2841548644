"""Observe a running stack from outside: the exporter, Prometheus, the responder, DigitalOcean."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families


def http_json(url: str, token: str | None = None, timeout: float = 2.0) -> Any:
    """GET url and decode its JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return json.load(r)


def samples(url: str, timeout: float = 2.0) -> Iterator[tuple[str, dict[str, str], float]]:
    """Every sample of a /metrics page as (name, labels, value)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, dict(sample.labels), float(sample.value)


def metric(url: str, name: str, **labels: str) -> float | None:
    """The sum of name's samples whose labels include labels, or None when absent."""
    values = [
        value
        for sample_name, sample_labels, value in samples(url)
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None


@dataclass(frozen=True)
class StackView:
    """The URLs and token of a running sandbox, read from its stack.json."""

    dir: Path
    urls: dict[str, str]
    token: str | None

    @classmethod
    def load(cls, directory: Path) -> StackView:
        """Read DIR/stack.json and DIR/secrets/viewer-token (status and history need it)."""
        state = json.loads((directory / "stack.json").read_text())
        urls = {name: entry["url"] for name, entry in state["components"].items()}
        token_path = directory / "secrets" / "viewer-token"
        token = token_path.read_text().strip() if token_path.exists() else None
        return cls(directory, urls, token)

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Prometheus's active alerts called name (pending or firing)."""
        data = http_json(f"{self.urls['prometheus']}/api/v1/alerts")
        return [a for a in data["data"]["alerts"] if a["labels"].get("alertname") == name]

    def status(self) -> dict[str, Any]:
        """The responder's /api/v1/status."""
        return dict(http_json(f"{self.urls['responder']}/api/v1/status", self.token))

    def history(self) -> dict[str, Any]:
        """The responder's /api/v1/history."""
        return dict(http_json(f"{self.urls['responder']}/api/v1/history", self.token))

    def actions(self) -> dict[str, dict[str, Any]]:
        """The responder's configured actions, by name, from the generated config."""
        config = yaml.safe_load((self.dir / "ddb-failover.yml").read_text())
        return {a["name"]: a for a in config["responder"]["actions"]}

    def do_get(self, path: str) -> Any:
        """GET a DigitalOcean API path from the sandbox with the stack's token."""
        token = (self.dir / "secrets" / "do-token").read_text().strip()
        return http_json(f"{self.urls['do_api']}{path}", token)

    def traffic(self) -> dict[str, Any]:
        """Where DigitalOcean sends users now, per DNS record and Global Load Balancer action.

        A do_dns_record action's record values, read back through the API, and a
        do_global_load_balancer action's first region (lowest priority number).
        """
        seen: dict[str, Any] = {}
        for name, action in self.actions().items():
            if action["type"] == "do_dns_record":
                fqdn = f"{action['record_name']}.{action['domain']}"
                query = urllib.parse.urlencode({"type": action["record_type"], "name": fqdn})
                found = self.do_get(f"/v2/domains/{action['domain']}/records?{query}")
                seen[name] = [r["data"] for r in found["domain_records"]]
            elif action["type"] == "do_global_load_balancer":
                lb = self.do_get(f"/v2/load_balancers/{action['load_balancer_id']}")
                priorities = lb["load_balancer"]["glb_settings"]["region_priorities"]
                seen[name] = min(priorities, key=priorities.get)
        return seen
