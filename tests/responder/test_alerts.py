"""Alertmanager version-4 payloads: good ones parse, each bad one names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from responder.model.alerts import PayloadError, format_time, parse_notification, parse_time

TESTDATA = Path(__file__).parent / "testdata"


def load(name: str) -> object:
    return json.loads((TESTDATA / name).read_text(encoding="utf-8"))


def test_region_down_parses_every_field() -> None:
    notification = parse_notification(load("region_down.json"))
    assert notification.status == "firing"
    assert notification.receiver == "ddb-failover"
    assert notification.group_labels == {"alertname": "DynamoDBRegionDown", "region": "us-east-1"}
    assert notification.common_labels["severity"] == "critical"
    assert notification.external_url == "http://alertmanager.example:9093"
    assert notification.truncated_alerts == 0
    first, second = notification.alerts
    assert first.alertname == "DynamoDBRegionDown"
    assert first.region == "us-east-1"
    assert first.fingerprint == "a1b2c3d4e5f60718"
    assert first.annotations["last_write_success_timestamp"] == "1795655400"
    # Go's nanoseconds are cut to microseconds; the zero endsAt means "not ended".
    assert first.starts_at == datetime(2026, 11, 26, 1, 11, 0, 123456, tzinfo=UTC)
    assert first.ends_at is None
    # An offset is normalised to UTC.
    assert second.starts_at == datetime(2026, 11, 26, 1, 11, 5, tzinfo=UTC)
    assert first.key == "a1b2c3d4e5f60718@2026-11-26T01:11:00.123Z"


def test_resolved_alert_keeps_its_end() -> None:
    notification = parse_notification(load("region_down_resolved.json"))
    (alert,) = notification.alerts
    assert alert.status == "resolved"
    assert alert.ends_at == datetime(2026, 11, 26, 1, 41, 0, 500000, tzinfo=UTC)


BAD = {
    "version_missing.json": "version: required field is missing",
    "version_3.json": "version: unsupported version '3', want '4'",
    "status_bad.json": "status: must be firing or resolved, not 'pending'",
    "receiver_number.json": "receiver: must be a string",
    "group_labels_list.json": "groupLabels: must be an object of strings",
    "common_labels_value.json": "commonLabels.region: must be a string",
    "common_annotations_missing.json": "commonAnnotations: required field is missing",
    "external_url_missing.json": "externalURL: required field is missing",
    "truncated_negative.json": "truncatedAlerts: must be a non-negative integer",
    "alerts_object.json": "alerts: must be a list",
    "alert_not_object.json": "alerts[1]: must be an object",
    "alert_status.json": "alerts[0].status: must be firing or resolved, not 'FIRING'",
    "alert_no_alertname.json": "alerts[0].labels.alertname: required label is missing",
    "alert_label_number.json": "alerts[1].labels.table: must be a string",
    "alert_starts_bad.json": "alerts[0].startsAt: not an RFC 3339 timestamp",
    "alert_starts_naive.json": "alerts[0].startsAt: not an RFC 3339 timestamp",
    "alert_starts_missing.json": "alerts[1].startsAt: required field is missing",
    "alert_ends_month13.json": "alerts[0].endsAt: not an RFC 3339 timestamp (out of range)",
    "alert_fingerprint_missing.json": "alerts[0].fingerprint: required field is missing",
    "alert_fingerprint_bad.json": "alerts[0].fingerprint: must be 1 to 64 letters or digits",
    "alert_generator_number.json": "alerts[0].generatorURL: must be a string",
    "alert_annotations_value.json": "alerts[0].annotations.summary: must be a string",
}


def test_every_bad_file_is_in_the_table() -> None:
    assert sorted(p.name for p in (TESTDATA / "bad").glob("*.json")) == sorted(BAD)


@pytest.mark.parametrize(("name", "message"), sorted(BAD.items()))
def test_bad_payload_names_the_field(name: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(load(f"bad/{name}"))
    assert str(caught.value) == message


@pytest.mark.parametrize("payload", [[], "x", None, 4])
def test_top_level_must_be_an_object(payload: object) -> None:
    with pytest.raises(PayloadError, match=r"^must be an object$"):
        parse_notification(payload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T01:02:03Z", datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-26t01:02:03.5z", datetime(2026, 11, 26, 1, 2, 3, 500000, tzinfo=UTC)),
        ("2026-11-26T01:02:03-05:30", datetime(2026, 11, 26, 6, 32, 3, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_rfc3339_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, "x") == expected


@pytest.mark.parametrize(
    "text", ["2026-11-26", "2026-11-26T01:02Z", "2026-11-26T01:02:03+0100", "", "today"]
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(PayloadError, match=r"^x: not an RFC 3339 timestamp"):
        parse_time(text, "x")


def test_format_time_is_utc_with_milliseconds() -> None:
    assert format_time(1795655400.25) == "2026-11-26T01:10:00.250Z"
