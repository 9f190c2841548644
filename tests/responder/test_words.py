"""Before and after in words (records/words.py), numbers and times for people (web/present.py)."""

from __future__ import annotations

from typing import Any

import pytest

from responder.records import words
from responder.web import present


@pytest.mark.parametrize(
    ("kind", "facts", "before", "after", "said"),
    [
        (
            "do_dns_record",
            {"record_name": "www", "record_type": "A"},
            {"data": "203.0.113.10", "ttl": 60},
            {"data": "203.0.113.20", "ttl": 60},
            "www A 203.0.113.10 → 203.0.113.20 (TTL 60 s)",
        ),
        ("do_dns_record", {"record_name": "www"}, {"data": "a"}, {"data": "b"}, "www A a → b"),
        (
            "do_global_load_balancer",
            {},
            {"first_region": "nyc3"},
            {"first_region": "ams3"},
            "Global LB: ams3 first (was nyc3)",
        ),
        (
            "do_global_load_balancer",
            {},
            {"first_region": "ams3"},
            {"first_region": "ams3"},
            "Global LB: ams3 first",
        ),
        (
            "do_app_env",
            {"variable": "DYNAMODB_REGION"},
            {"value": "us-east-1", "deployed": "us-east-1"},
            {"value": "eu-west-1", "deployed": None},
            "App env DYNAMODB_REGION: us-east-1 → eu-west-1 (deployed: none)",
        ),
        (
            "do_app_env",
            {"variable": "DYNAMODB_REGION"},
            {"value": "us-east-1"},
            {"value": "eu-west-1"},
            "App env DYNAMODB_REGION: us-east-1 → eu-west-1",
        ),
        (
            "route53_record",
            {"record_name": "db.example.com", "record_type": "CNAME"},
            {"values": ["a.example.com"], "ttl": 60},
            {"values": ["b.example.com"], "ttl": 60},
            "db.example.com CNAME a.example.com → b.example.com (TTL 60 s)",
        ),
        (
            "env_file",
            {"variable": "DYNAMODB_REGION"},
            {"value": "us-east-1", "reloaded": True},
            {"value": "eu-west-1", "reloaded": True},
            "Env file DYNAMODB_REGION: us-east-1 → eu-west-1, reloaded",
        ),
        (
            "env_file",
            {},
            "us-east-1",
            "eu-west-1",
            "Env file DYNAMODB_REGION: us-east-1 → eu-west-1",
        ),
        (
            "ssm_parameter",
            {"parameter": "/wp/region"},
            "us-east-1",
            "eu-west-1",
            "SSM /wp/region: us-east-1 → eu-west-1",
        ),
        (
            "do_load_balancer",
            {},
            {"tag": "blue"},
            {"droplet_ids": [1, 2]},
            "Load balancer: tag blue → droplets 1, 2",
        ),
        ("command", {}, None, "eu-west-1", "Command last run for none → eu-west-1"),
        (
            "readiness",
            {},
            {"canary_ok": True, "data_at_risk_seconds": 1.0300323963165283},
            {"canary_ok": True, "data_at_risk_seconds_at_most": 60.0},
            "canary readable, data at risk 1.0 s (RPO 1 min)",
        ),
        (
            "site",
            {},
            {"status": None, "error": "connection refused"},
            {"status": 200},
            "site does not answer: connection refused (expects 200)",
        ),
        ("site", {}, {"status": 200, "error": None}, {"status": 200}, "site answers HTTP 200"),
        # What this version does not know still reads as words, never as JSON.
        (
            "memory",
            {},
            {"region": "us-east-1"},
            {"region": "eu-west-1"},
            "region us-east-1 → region eu-west-1",
        ),
        ("do_dns_record", {}, ["odd"], {"data": {"nested": 1}}, "record A odd → nested 1"),
    ],
)
def test_before_and_after_in_words(
    kind: str, facts: dict[str, Any], before: Any, after: Any, said: str
) -> None:
    assert words.change(kind, facts, before, after) == said
    assert "{" not in said


def test_facts_are_what_names_the_change() -> None:
    config = {
        "name": "www",
        "type": "do_dns_record",
        "record_name": "www",
        "domain": "x",
        "ttl": None,
    }
    assert words.facts(config) == {"record_name": "www"}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (0.529379367828369, "0.5 s"),
        (0.04, "0.0 s"),
        (12.349, "12.3 s"),
        (59.94, "59.9 s"),
        (125.4, "2 min 5 s"),
        (7200, "2 h"),
        (None, "unknown"),
    ],
)
def test_seconds_are_rounded_for_people(value: float | None, said: str) -> None:
    assert words.seconds(value) == said


@pytest.mark.parametrize(
    ("ago", "said"),
    [
        (0.2, "just now"),
        (12.7, "12 s ago"),
        (200, "3 min ago"),
        (7300, "2 h ago"),
        (-40, "in 40 s"),
    ],
)
def test_relative_times(ago: float, said: str) -> None:
    assert present.relative(ago) == said


def test_a_time_says_how_long_ago_with_utc_on_hover() -> None:
    shown = present.when("2026-12-06T03:00:00.000Z", 1796526000.0 + 180)
    assert str(shown) == (
        '<time datetime="2026-12-06T03:00:00.000Z" title="2026-12-06 03:00:00 UTC">3 min ago</time>'
    )
    assert str(present.when(None, 0)) == "never"
    assert str(present.when("<b>", 0)) == "&lt;b&gt;"


def test_timeline_durations_add_up_to_the_total_after_rounding() -> None:
    offsets = [0.0, 0.04, 0.08, 0.12, 1.349, 1.351, 7.777]
    report = {"timeline": [{"offset_seconds": o, "event": f"e{i}"} for i, o in enumerate(offsets)]}
    entries = present.timeline(report)
    assert [e["event"] for e in entries] == [f"e{i}" for i in range(len(offsets))]
    assert sum(e["duration_tenths"] for e in entries) == 78
    assert present.total(entries) == "7.8 s"
    assert [e["duration"] for e in entries][:3] == ["0.0 s", "0.1 s", "0.0 s"]


def test_a_transition_in_progress_counts_its_wait_so_far() -> None:
    report = {
        "transition": {"result": "in_progress", "approval": {"state": "waiting"}},
        "timeline": [
            {"event": "webhook_received", "unix": 100.0, "offset_seconds": 0.0},
            {"event": "decision", "unix": 100.25, "offset_seconds": 0.25},
        ],
    }
    entries = present.timeline(report, 137.0)
    assert [(e["event"], e["duration_tenths"]) for e in entries] == [
        ("webhook_received", 2),
        ("decision", 368),
        ("now", 0),
    ]
    assert entries[-1]["detail"] == "waiting for approval" and present.total(entries) == "37.0 s"
    report["transition"] = {"result": "completed"}
    assert [e["event"] for e in present.timeline(report, 137.0)] == ["webhook_received", "decision"]
