"""`sandbox up --practice`: the responder.practice section the sandbox writes."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandbox.components.catalog  # noqa: F401  (registers the components)
from ddb_failover.practice_config import Practice
from sandbox.components.responder import _practice
from sandbox.stack import Stack


def test_the_section_asks_the_stacks_alertmanager_and_prometheus(tmp_path: Path) -> None:
    only = ["responder", "prometheus", "blackbox", "sites"]
    options = {"practice": True, "only": only, "practice_check_interval_seconds": 2.0}
    stack = Stack(tmp_path, options=options)
    section = Practice(**_practice(stack))
    assert section.enabled is False  # runs on demand only: `practice run --now`
    assert section.target == "eu-west-1" and section.check_interval_seconds == 2.0
    assert section.blocking_alerts == ('severity="critical"',)
    assert section.outcome_checks == ('probe_success{job="wordpress",region="eu-west-1"} == 1',)
    # Both start after the config is written, on the ports it names.
    port = stack.extras["alertmanager_port"]
    assert section.alertmanager_url == f"http://127.0.0.1:{port}"
    assert section.prometheus_url == f"http://127.0.0.1:{stack.extras['prometheus_port']}"


def test_without_prometheus_it_says_so(tmp_path: Path) -> None:
    stack = Stack(tmp_path, options={"practice": True, "only": ["responder"]})
    with pytest.raises(ValueError, match="--practice needs prometheus"):
        _practice(stack)
