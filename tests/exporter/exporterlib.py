"""Helpers for the exporter tests: configs over sandbox regions, scraping /metrics."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ddb_failover.config import Config, parse
from sandbox.regions import Region

TABLE = "wordpress_posts"
CANARY = {"key": "health_check_id", "value": "ping"}
NAMES = ("us-east-1", "eu-west-1", "ap-southeast-2")
# Long enough that a healthy moto call on a loaded 2-core machine never times out.
# Wide enough that a loaded machine does not make a healthy moto region miss its timeout.
INTERVAL, TIMEOUT = 2.0, 1.5
# Dummy credentials for moto; the exporter itself takes the default AWS chain.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config_data(
    regions: Sequence[Region], tables: Sequence[str] = (TABLE,), **exporter: Any
) -> dict[str, Any]:
    """Config file data over running sandbox regions, with test-sized timings."""
    settings = {"vantage": "test", "interval_seconds": INTERVAL, "timeout_seconds": TIMEOUT}
    return {
        "tables": list(tables),
        "canary": dict(CANARY),
        "regions": [{"name": r.name, "endpoint_url": r.url} for r in regions],
        "exporter": {**settings, **exporter},
    }


def config_for(
    regions: Sequence[Region], tables: Sequence[str] = (TABLE,), **exporter: Any
) -> Config:
    """A validated config over running sandbox regions."""
    return parse(config_data(regions, tables, **exporter))


def scrape(url: str) -> tuple[Samples, float]:
    """GET /metrics; the parsed samples and how long the scrape took in seconds."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    elapsed = time.perf_counter() - started
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, elapsed


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value; vantage test and table wordpress_posts unless given."""
    labels = {"vantage": "test", "table": TABLE, **labels}
    return samples.get((name, frozenset(labels.items())))
