"""A user's requests read as an outage (bench user_outage, the demo): where it starts and ends."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

from sandbox.components.sites import SITE_HOST
from sandbox.net import wait_until
from sandbox.users import PERIOD, SUCCESSES_IN_A_ROW, Request, User, outage
from tests.alerting.loopback import LoopbackServer


def requests(pattern: str, start: float = 100.0, region: str = "eu-west-1") -> list[Request]:
    """One request every 0.1 s: '+' a 200, '-' a failure."""
    return [
        Request(round(start + 0.1 * i, 1), mark == "+", region if mark == "+" else None)
        for i, mark in enumerate(pattern)
    ]


def test_outage_runs_from_the_first_failure_to_the_first_of_ten_successes() -> None:
    # A success in the middle of failures (a lucky request) does not end the outage.
    seen = outage(requests("+++--+---" + "+" * SUCCESSES_IN_A_ROW), since=100.0)
    assert seen is not None
    assert (seen.first_failure, seen.back, seen.failed) == (100.3, 100.9, 5)
    assert round(seen.seconds, 2) == 0.6
    assert seen.region == "eu-west-1"


def test_no_outage_until_ten_successes_in_a_row() -> None:
    assert outage(requests("+++---" + "+" * (SUCCESSES_IN_A_ROW - 1)), since=100.0) is None
    assert outage(requests("+" * 30), since=100.0) is None


def test_failures_before_since_do_not_count() -> None:
    seen = outage(requests("--++++" + "-" + "+" * SUCCESSES_IN_A_ROW), since=100.2)
    assert seen is not None
    assert (seen.first_failure, seen.failed) == (100.6, 1)


def test_a_user_sees_the_outage_of_a_real_server() -> None:
    failing = threading.Event()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.headers["Host"] == SITE_HOST
            self.send_response(503 if failing.is_set() else 200)
            self.send_header("X-Site-Region", "us-east-1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with LoopbackServer(Site) as server:
        user = User(f"{server.url}/")
        user.start()
        try:
            wait_until(lambda: len(user.requests) >= 3, 30, message="served")
            since = time.time()
            failing.set()
            wait_until(lambda: sum(not r.ok for r in user.requests) >= 3, 30, message="failing")
            failing.clear()
            seen = wait_until(lambda: outage(user.requests, since), 30, message="served again")
        finally:
            user.stop()
    assert not user.is_alive()
    assert seen.failed >= 3 and seen.region == "us-east-1"
    assert 0.2 <= seen.seconds < 3
    gaps = [b.at - a.at for a, b in zip(user.requests, user.requests[1:], strict=False)]
    assert min(gaps) >= PERIOD - 0.01  # one request every 100 ms, no faster
