"""Where the responder tells people about transitions (responder.notify)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ddb_failover.config_base import Seconds, Secret, Strict, unique_names

NotifyEvent = Literal["started", "awaiting_approval", "completed", "stalled", "aborted", "blocked"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "started",
    "awaiting_approval",
    "completed",
    "stalled",
    "aborted",
    "blocked",
)


class _Receiver(Strict):
    name: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    events: tuple[NotifyEvent, ...] = NOTIFY_EVENTS


class PagerDutyChangeReceiver(_Receiver):
    """PagerDuty Change Events (Events API v2 change/enqueue): the incident timeline."""

    type: Literal["pagerduty_change"]
    routing_key: Secret
    url: str = "https://events.pagerduty.com"


class SlackReceiver(_Receiver):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    type: Literal["slack"]
    webhook_url: Secret  # the URL is the credential: it lives with the secrets


Receiver = Annotated[PagerDutyChangeReceiver | SlackReceiver, Field(discriminator="type")]


class Notify(Strict):
    receivers: tuple[Receiver, ...] = ()
    # Where people follow the links in a message: the status page and reports, Grafana.
    responder_url: str | None = None
    grafana_url: str | None = None
    timeout_seconds: Seconds = 10.0
    # A receiver still failing after this long is given up on (counted as failed).
    give_up_after_seconds: Seconds = 3600.0

    @field_validator("receivers")
    @classmethod
    def _unique(cls, receivers: tuple[Any, ...]) -> tuple[Any, ...]:
        return unique_names(receivers, "receiver")
