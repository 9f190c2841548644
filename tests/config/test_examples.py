"""The shipped examples: one per DigitalOcean topology, each passing check-config, and overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddb_failover import config

EXAMPLES = Path(__file__).parents[2] / "examples"
# The example per topology (docs/deploy.md) and the actions that move its traffic.
TOPOLOGIES = {
    "ddb-failover.yml": ["do_dns_record", "route53_record"],
    "global-load-balancer.yml": ["do_global_load_balancer"],
    "app-platform.yml": ["do_app_env"],
}
AUDIT_KEY = "/etc/ddb-failover/audit-key"
# Overrides merged into any of them (tests/alerting/test_prometheus_rules.py checks it).
OVERRIDES = ("fast-profile.yml",)


def secrets_in(data: Any, path: str = "") -> dict[str, Any]:
    """Every token-like setting in a config document, by key path."""
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("token", "webhook_token", "secret"):
                found[where] = value
            found.update(secrets_in(value, where))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found.update(secrets_in(item, f"{path}.{index}"))
    return found


# What every example reads from the environment: Alertmanager's, an operator's and a
# viewer's token, and the DigitalOcean token.
SECRET_ENV = (
    "DDB_FAILOVER_WEBHOOK_TOKEN",
    "DDB_FAILOVER_OPERATOR_TOKEN",
    "DDB_FAILOVER_VIEWER_TOKEN",
    "DIGITALOCEAN_TOKEN",
)


def test_one_example_per_topology() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yml")) == sorted([*TOPOLOGIES, *OVERRIDES])


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_example_passes_check_config(name: str, tmp_path: Path) -> None:
    # A value of its own for each: two tokens with one value are refused.
    env = {**os.environ, **{name: f"example-check-only-token-{name}" for name in SECRET_ENV}}
    # The audit key where the example keeps it, /etc/ddb-failover/audit-key, is here.
    key = tmp_path / "audit-key"
    key.write_text("0123456789abcdef" * 4 + "\n")
    text = (EXAMPLES / name).read_text()
    assert AUDIT_KEY in text
    example = tmp_path / name
    example.write_text(text.replace(AUDIT_KEY, str(key)))
    done = subprocess.run(
        [sys.executable, "-m", "responder", "check-config", "--config", str(example)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"config OK: {example}")
    loaded = config.load(EXAMPLES / name)
    assert [a.type for a in loaded.responder.actions] == TOPOLOGIES[name]


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_example_secrets_come_from_the_environment(name: str) -> None:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    secrets = secrets_in(data)
    assert set(secrets) == {
        "responder.webhook_token",
        "responder.auth.tokens.0.secret",
        "responder.auth.tokens.1.secret",
        "responder.digitalocean.token",
    }
    assert all(set(source) == {"env"} for source in secrets.values()), secrets
