"""One sender per receiver type, all with one signature: post the notice, or raise.

Temporary errors (429, 5xx, timeouts, refused connections) are retried by the sender
with backoff; permanent ones (another 4xx) fail the delivery at once. Each request
carries the notice's id as Idempotency-Key, for receivers (and proxies) that dedupe.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ddb_failover.config import PagerDutyChangeReceiver, SlackReceiver
from responder.actions.do_client import retry_after_seconds
from responder.model.errors import PermanentError, TemporaryError
from responder.state.outbox import Notice

Json = Any
Sender = Callable[[Notice, Any, str, float], None]
LINK_TEXT = {
    "status": "Status page",
    "report": "Report",
    "grafana": "Grafana",
    "runbook": "Runbook",
}


def pagerduty_change(
    notice: Notice, receiver: PagerDutyChangeReceiver, key: str, timeout: float
) -> None:
    """A PagerDuty Change Event (Events API v2), beside the incident Alertmanager raised."""
    data = notice.data
    body = {
        "routing_key": key,
        "payload": {
            "summary": str(data["summary"])[:1024],
            "timestamp": datetime.fromtimestamp(notice.at, UTC).isoformat(),
            "source": "ddb-failover",
            "custom_details": {
                k: v for k, v in data.items() if k not in ("summary", "links") and v is not None
            }
            | {"event_id": notice.id},
        },
        "links": [{"href": href, "text": LINK_TEXT[name]} for name, href in data["links"].items()],
    }
    _post(f"{receiver.url.rstrip('/')}/v2/change/enqueue", body, notice.id, timeout)


def slack(notice: Notice, receiver: SlackReceiver, url: str, timeout: float) -> None:
    """A Slack-compatible incoming-webhook message: text, plus blocks with the links."""
    data = notice.data
    links = " | ".join(f"<{href}|{LINK_TEXT[name]}>" for name, href in data["links"].items())
    body = {
        "text": data["summary"],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": data["summary"]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{links} | event `{notice.id}`"}],
            },
        ],
    }
    _post(url, body, notice.id, timeout)


SENDERS: dict[str, Sender] = {"pagerduty_change": pagerduty_change, "slack": slack}


def _post(url: str, body: Json, idempotency_key: str, timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        method="POST",
    )
    # The URL may carry a credential (a Slack webhook's path): errors name the host only.
    where = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]  # never user:password@
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        message = f"{where}: HTTP {status}"
        if status == 429 or status >= 500:
            headers = dict(exc.headers.items()) if exc.headers else {}
            raise TemporaryError(message, retry_after_seconds(headers)) from None
        raise PermanentError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TemporaryError(f"{where}: {type(reason).__name__}") from None
