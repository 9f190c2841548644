"""Alertmanager's version-4 webhook payload, parsed and validated field by field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

REGION_DOWN = "DynamoDBRegionDown"
FAILBACK_READY = "DynamoDBFailbackReady"
# WordPress has not answered in the active region: users get errors, fail over like RegionDown.
SITE_DOWN_ACTIVE = "WordPressSiteDownInActiveRegion"
# Annotation on DynamoDBRegionDown: Unix seconds of the source's last successful write.
LAST_WRITE_SUCCESS = "last_write_success_timestamp"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# Alertmanager sends Go's zero time as endsAt of alerts that have not ended.
_GO_ZERO_YEAR = 1


class PayloadError(ValueError):
    """The payload is not a valid version-4 notification; the message names the field path.

    status is the HTTP answer: 400, or 413 for a notification over the size limits.
    """

    def __init__(self, path: str, problem: str, status: int = 400) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem
        self.status = status


@dataclass(frozen=True)
class Bounds:
    """How much one notification may carry (responder.limits)."""

    max_alerts: int = 500
    max_labels: int = 64
    max_label_chars: int = 1024
    max_annotation_chars: int = 16384


@dataclass(frozen=True)
class Alert:
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None  # None when Alertmanager sent the zero time
    generator_url: str
    fingerprint: str

    @property
    def alertname(self) -> str:
        """The alert's name (label alertname, always present)."""
        return self.labels["alertname"]

    @property
    def region(self) -> str | None:
        """The region label, when the alert has one."""
        return self.labels.get("region")

    @property
    def key(self) -> str:
        """Identity of this firing episode: fingerprint plus start time, stable across re-sends."""
        return f"{self.fingerprint}@{format_time(self.starts_at)}"


@dataclass(frozen=True)
class Notification:
    """A whole webhook notification (payload version 4)."""

    status: Literal["firing", "resolved"]
    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[Alert, ...] = field(default_factory=tuple)


def parse_time(text: Any, path: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime; PayloadError naming path."""
    if not isinstance(text, str):
        raise PayloadError(path, "not an RFC 3339 timestamp (expected a string)")
    match = _RFC3339.match(text)
    if match is None:
        raise PayloadError(path, "not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    # Go sends nanoseconds; datetime keeps microseconds.
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if zone in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        # RFC 3339 allows a leap second (60); datetime does not, so clamp it.
        moment = datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz)
    except ValueError:
        raise PayloadError(path, "not an RFC 3339 timestamp (out of range)") from None
    return moment.astimezone(UTC) if year > _GO_ZERO_YEAR else moment


def format_time(moment: datetime | float) -> str:
    """Render a datetime or Unix time as RFC 3339 UTC with milliseconds."""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    moment = moment.astimezone(UTC) if moment.year > _GO_ZERO_YEAR else moment
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(path, "must be an object")
    return value


def _string(data: Mapping[str, Any], key: str, path: str, required: bool = True) -> str:
    where = f"{path}.{key}" if path else key
    if key not in data:
        if required:
            raise PayloadError(where, "required field is missing")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise PayloadError(where, "must be a string")
    return value


def _string_map(
    data: Mapping[str, Any], key: str, path: str, max_items: int = 0, max_chars: int = 0
) -> dict[str, str]:
    where = f"{path}.{key}" if path else key
    if key not in data:
        raise PayloadError(where, "required field is missing")
    value = data[key]
    if value is None:
        # Go marshals an empty map as {} but tolerate null: it carries no labels.
        return {}
    if not isinstance(value, dict):
        raise PayloadError(where, "must be an object of strings")
    if max_items and len(value) > max_items:
        raise PayloadError(where, f"{len(value)} entries exceed the limit of {max_items}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{name[:64]}", "must be a string")
        if max_chars and (len(name) > max_chars or len(item) > max_chars):
            raise PayloadError(f"{where}.{name[:64]}", f"longer than {max_chars} characters")
    return dict(value)


def _status(data: Mapping[str, Any], path: str) -> Literal["firing", "resolved"]:
    status = _string(data, "status", path)
    if status == "firing":
        return "firing"
    if status == "resolved":
        return "resolved"
    where = f"{path}.status" if path else "status"
    raise PayloadError(where, f"must be firing or resolved, not {status[:40]!r}")


def parse_alert(data: Any, path: str, bounds: Bounds = Bounds()) -> Alert:
    """Validate one element of alerts[]; path is its position, e.g. alerts[0]."""
    data = _object(data, path)
    status = _status(data, path)
    labels = _string_map(data, "labels", path, bounds.max_labels, bounds.max_label_chars)
    if not labels.get("alertname"):
        raise PayloadError(f"{path}.labels.alertname", "required label is missing")
    annotations = {}
    if "annotations" in data:
        annotations = _string_map(
            data, "annotations", path, bounds.max_labels, bounds.max_annotation_chars
        )
    if "startsAt" not in data:
        raise PayloadError(f"{path}.startsAt", "required field is missing")
    starts_at = parse_time(data["startsAt"], f"{path}.startsAt")
    ends_at: datetime | None = None
    if "endsAt" in data:
        ends_at = parse_time(data["endsAt"], f"{path}.endsAt")
        if ends_at.year <= _GO_ZERO_YEAR:
            ends_at = None
    fingerprint = _string(data, "fingerprint", path)
    if not re.fullmatch(r"[0-9A-Za-z]{1,64}", fingerprint):
        raise PayloadError(f"{path}.fingerprint", "must be 1 to 64 letters or digits")
    return Alert(
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_string(data, "generatorURL", path, required=False),
        fingerprint=fingerprint,
    )


def parse_notification(data: Any, bounds: Bounds = Bounds()) -> Notification:
    """Validate a decoded JSON payload; PayloadError names the first bad field path."""
    data = _object(data, "")
    if "version" not in data:
        raise PayloadError("version", "required field is missing")
    if data["version"] != "4":
        raise PayloadError(
            "version", f"unsupported version {str(data['version'])[:20]!r}, want '4'"
        )
    status = _status(data, "")
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    raw_alerts = data.get("alerts")
    if "alerts" not in data:
        raise PayloadError("alerts", "required field is missing")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", "must be a list")
    if len(raw_alerts) > bounds.max_alerts:
        raise PayloadError(
            "alerts", f"{len(raw_alerts)} alerts exceed the limit of {bounds.max_alerts}", 413
        )
    alerts = tuple(parse_alert(item, f"alerts[{i}]", bounds) for i, item in enumerate(raw_alerts))
    return Notification(
        status=status,
        receiver=_string(data, "receiver", ""),
        group_key=_string(data, "groupKey", "", required=False),
        group_labels=_string_map(
            data, "groupLabels", "", bounds.max_labels, bounds.max_label_chars
        ),
        common_labels=_string_map(
            data, "commonLabels", "", bounds.max_labels, bounds.max_label_chars
        ),
        common_annotations=_string_map(
            data, "commonAnnotations", "", bounds.max_labels, bounds.max_annotation_chars
        ),
        external_url=_string(data, "externalURL", ""),
        truncated_alerts=truncated,
        alerts=alerts,
    )
