"""`responder.practice`: scheduled practice runs (issue 24 §2), a switchover there and back.

Kept apart from config.py, which includes it as ResponderConfig.practice.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ddb_failover.config_base import Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # HH:MM, UTC
_URL = re.compile(r"^https?://[^\s]+$")


def minutes(clock: str) -> int:
    """Minutes after midnight of an HH:MM time."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


class PracticeSchedule(Strict):
    """Once a week: a weekday and a UTC time."""

    weekday: Weekday
    time: ClockTime


class PracticeWindow(Strict):
    """A run may start on these weekdays between start and end (UTC, end excluded)."""

    weekdays: tuple[Weekday, ...] = Field(default=WEEKDAYS, min_length=1)
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> PracticeWindow:
        if minutes(self.end) <= minutes(self.start):
            raise ValueError(f"end {self.end} is not after start {self.start} (one UTC day)")
        return self


class Practice(Strict):
    """When practice runs start, where they go, how long they hold, what stops them."""

    enabled: bool = False
    schedule: PracticeSchedule | None = None
    allowed_windows: tuple[PracticeWindow, ...] = ()
    blocked_dates: tuple[date, ...] = ()
    hold_seconds: float = Field(default=1800.0, gt=0)
    target: str | None = None  # default: the next region after the active one, by priority
    # Alertmanager matchers, one alert filter each (`severity="critical"`, or several
    # matchers as `{alertname="X",region="eu-west-1"}`): an active alert matching any blocks.
    blocking_alerts: tuple[str, ...] = ()
    # PromQL, evaluated every check_interval_seconds while a run lasts: an empty result or
    # a zero value ends the run and switches back.
    outcome_checks: tuple[str, ...] = ()
    check_interval_seconds: float = Field(default=15.0, gt=0)
    max_age_days: float = Field(default=35.0, gt=0)
    prometheus_url: str | None = None
    alertmanager_url: str | None = None

    @field_validator("prometheus_url", "alertmanager_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("blocking_alerts", "outcome_checks")
    @classmethod
    def _not_blank(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for index, value in enumerate(values):
            if not value.strip():
                raise ValueError(f"entry {index} is empty")
        return values

    @model_validator(mode="after")
    def _complete(self) -> Practice:
        if self.schedule is not None and self.allowed_windows:
            raise ValueError("give schedule or allowed_windows, not both")
        if self.enabled and self.schedule is None and not self.allowed_windows:
            raise ValueError("enabled: a schedule or allowed_windows says when runs start")
        if self.blocking_alerts and self.alertmanager_url is None:
            raise ValueError("blocking_alerts: alertmanager_url says where to ask")
        if self.outcome_checks and self.prometheus_url is None:
            raise ValueError("outcome_checks: prometheus_url says where to evaluate them")
        return self
