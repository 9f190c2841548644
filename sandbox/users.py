"""A user of the sandbox's WordPress: a request through the glb front every 100 ms; and a
writer, who posts to a site every 20 ms (a switchover's fence refuses the posts).

The user's outage is what they see of one: from the first failed request (not a 200,
or no answer within 5 s) to the first of ten successes in a row, by the requests'
start times. `python -m bench user_outage` measures it; `make demo` prints it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from sandbox.components.sites import SITE_HOST

PERIOD = 0.1  # seconds between the starts of two requests
REQUEST_TIMEOUT = 5.0
SUCCESSES_IN_A_ROW = 10
WRITE_PERIOD = 0.02  # seconds between a writer's posts


@dataclass(frozen=True)
class Request:
    """One user request: when it started (Unix seconds), whether it got a 200, from where."""

    at: float
    ok: bool
    region: str | None


class User(threading.Thread):
    """Requests url every PERIOD seconds until stopped (the next at once after a slow one)."""

    def __init__(self, url: str) -> None:
        super().__init__(name="user", daemon=True)
        self.url = url
        self.requests: list[Request] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            started = time.time()
            self.requests.append(Request(started, *self._ask()))
            self._stopping.wait(max(0.0, started + PERIOD - time.time()))

    def _ask(self) -> tuple[bool, str | None]:
        request = urllib.request.Request(self.url, headers={"Host": SITE_HOST})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
                answer.read()
                return answer.status == 200, answer.headers.get("X-Site-Region")
        except urllib.error.HTTPError as error:
            return False, error.headers.get("X-Site-Region")
        except OSError:
            return False, None

    def stop(self) -> None:
        self._stopping.set()
        self.join(REQUEST_TIMEOUT + 1)


@dataclass(frozen=True)
class Outage:
    """What one user saw of one outage."""

    first_failure: float  # Unix seconds
    back: float  # the first of SUCCESSES_IN_A_ROW successes
    failed: int
    region: str | None  # who served the successes

    @property
    def seconds(self) -> float:
        """The user's outage."""
        return self.back - self.first_failure


def outage(requests: list[Request], since: float) -> Outage | None:
    """The outage in requests started at or after since; None until it has ended."""
    seen = [r for r in requests if r.at >= since]
    first = next((i for i, r in enumerate(seen) if not r.ok), None)
    if first is None:
        return None
    for start in range(first, len(seen) - SUCCESSES_IN_A_ROW + 1):
        run = seen[start : start + SUCCESSES_IN_A_ROW]
        if all(r.ok for r in run):
            failed = sum(1 for r in seen[first:start] if not r.ok)
            return Outage(seen[first].at, run[0].at, failed, run[0].region)
    return None


@dataclass(frozen=True)
class Write:
    """One post a writer made: when, what the site answered, where it stored it."""

    at: float
    status: int  # 201 stored; 503 read-only (fenced); 0 no answer
    key: str
    region: str | None


def post(url: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST url/posts as WordPress's users would; (status, answer), (0, {}) without one."""
    request = urllib.request.Request(
        f"{url}/posts",
        data=json.dumps(body).encode(),
        headers={"Host": SITE_HOST, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
            return answer.status, dict(json.load(answer))
    except urllib.error.HTTPError as error:
        return error.code, dict(json.load(error))
    except (OSError, ValueError):
        return 0, {}


class Writer(threading.Thread):
    """Posts to a site every WRITE_PERIOD seconds until stopped, keeping every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(name="writer", daemon=True)
        self.url = url
        self.writes: list[Write] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        number = 0
        while not self._stopping.wait(WRITE_PERIOD):
            number += 1
            key = f"post-{time.time_ns()}-{number}"
            status, answer = post(self.url, {"id": key, "title": "a post"})
            self.writes.append(Write(time.time(), status, key, answer.get("region")))

    def stop(self) -> None:
        self._stopping.set()
        self.join(REQUEST_TIMEOUT + 1)

    def stored(self, region: str, since: float = 0.0) -> list[Write]:
        """The writes stored in region, from since on."""
        return [
            w for w in list(self.writes) if w.status == 201 and w.region == region and w.at >= since
        ]
