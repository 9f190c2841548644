"""A user's requests read as an outage (bench user_outage, the demo): where it starts and ends."""

from __future__ import annotations

from sandbox.users import SUCCESSES_IN_A_ROW, Request, outage


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
