"""One instant query to Prometheus's HTTP API, for the status page's region cards.

The page must render when Prometheus is down: every failure is a PromUnavailable whose
message is the reason the cards show ("no data: ..."), and the wait is bounded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

TIMEOUT_SECONDS = 1.0
# Bounds what a misbehaving server can make a page render read.
MAX_BYTES = 4 * 1024 * 1024


class PromUnavailable(Exception):
    """Prometheus gave no usable answer; the message says why, for people."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels (with __name__) and value."""

    labels: dict[str, str]
    value: float


def query(base_url: str, expr: str, timeout: float = TIMEOUT_SECONDS) -> list[Sample]:
    """The instant vector expr evaluates to now; PromUnavailable naming the reason."""
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise PromUnavailable(f"Prometheus answered HTTP {exc.code}") from None
    except TimeoutError:
        raise PromUnavailable(f"Prometheus did not answer within {timeout:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise PromUnavailable(f"Prometheus did not answer within {timeout:g} s") from None
        raise PromUnavailable(f"Prometheus unreachable: {reason}") from None
    if len(raw) > MAX_BYTES:
        raise PromUnavailable("Prometheus's answer is too large")
    return _samples(raw)


def _samples(raw: bytes) -> list[Sample]:
    try:
        body = json.loads(raw)
        if body.get("status") != "success":
            raise PromUnavailable(f"Prometheus refused the query: {body.get('error', '?')}")
        found = []
        for item in body["data"]["result"]:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            found.append(Sample(labels, float(item["value"][1])))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise PromUnavailable("Prometheus's answer is not an instant vector") from None
    return found
