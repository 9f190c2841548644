"""What a practice round asks outside the store: Alertmanager's active alerts, Prometheus.

Both answer over HTTP with a short timeout. Not knowing is never taken for good news: an
Alertmanager that does not answer blocks a start (nothing moves on a guess), a Prometheus
that does not answer fails an outcome check and ends the hold early. It never ends a run
as a real outage would: only an alert that is there does.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from ddb_failover.logs import kv
from ddb_failover.practice_config import Practice
from responder.intake.practice import Sources
from responder.model.alerts import Alert, parse_alert

log = logging.getLogger("ddb_failover.responder.practice")
TIMEOUT_SECONDS = 5.0


def matchers(text: str) -> list[str]:
    """One filter's matchers: `a="x"` or `{a="x",b=~"y"}`, split at commas outside quotes."""
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    out, current, quoted, escaped = [], "", False, False
    for char in inner:
        if char == "," and not quoted:
            out.append(current.strip())
            current = ""
            continue
        current += char
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    out.append(current.strip())
    return [m for m in out if m]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
        return json.loads(answer.read())


def _active(base: str, filters: Sequence[str]) -> list[dict[str, Any]]:
    """Alertmanager's active (not silenced, not inhibited) alerts matching any filter, as its
    API gives them, each once. OSError or ValueError when it does not answer, or not JSON."""
    found: dict[str, dict[str, Any]] = {}
    for text in filters:
        query = [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        query += [("filter", m) for m in matchers(text)]
        url = f"{base}/api/v2/alerts?{urllib.parse.urlencode(query)}"
        alerts = _get(url)  # OSError, ValueError: the caller decides what not knowing means
        for alert in alerts if isinstance(alerts, list) else []:
            if isinstance(alert, dict):
                key = alert.get("fingerprint") or json.dumps(alert.get("labels"), sort_keys=True)
                found.setdefault(str(key), alert)
    return list(found.values())


def alertmanager_alerts(base: str, filters: Sequence[str]) -> list[Alert]:
    """The active alerts matching any filter, as a webhook notification would carry them
    (firing); ValueError naming the field when one is not what a notification may hold."""
    keys = ("labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint")
    return [
        parse_alert({"status": "firing", **{k: a[k] for k in keys if k in a}}, f"alerts[{i}]")
        for i, a in enumerate(_active(base, filters))
    ]


def alertmanager_firing(base: str, filters: Sequence[str]) -> list[str]:
    """Active (not silenced, not inhibited) alerts matching any filter: `name{region}` each.

    OSError or ValueError when Alertmanager does not answer, or not with JSON."""
    found: list[str] = []
    for alert in _active(base, filters):
        labels = alert.get("labels")
        labels = labels if isinstance(labels, dict) else {}
        name = str(labels.get("alertname", "?"))
        region = labels.get("region")
        shown = f"{name}{{region={region}}}" if region else name
        if shown not in found:
            found.append(shown)
    return found


def prometheus_check(base: str, query: str) -> bool | None:
    """True when the instant query has a sample other than 0; None when it cannot say."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        answer = _get(url)
    except (OSError, ValueError) as exc:
        log.warning(kv(event="practice_prometheus_failed", query=query, error=str(exc)))
        return None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        return None
    data = answer.get("data", {})
    result = data.get("result") if isinstance(data, dict) else None
    if data.get("resultType") == "scalar" and isinstance(result, list) and len(result) == 2:
        return float(result[1]) != 0
    if not isinstance(result, list):
        return None
    values = [s.get("value", [0, "0"])[1] for s in result if isinstance(s, dict)]
    return any(float(v) != 0 for v in values)


def sources(config: Practice) -> Sources:
    """Sources for the configured URLs (unset: no alert blocks, every check passes)."""
    am, prom = config.alertmanager_url, config.prometheus_url
    return Sources(
        firing=lambda filters: alertmanager_firing(am, filters) if am else [],
        check=lambda query: prometheus_check(prom, query) if prom else True,
        alerts=lambda filters: alertmanager_alerts(am, filters) if am else [],
    )
