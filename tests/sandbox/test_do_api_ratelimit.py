"""DigitalOcean's rate limits in the sandbox: the ratelimit-* headers, 429s, and the control API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from sandbox.do_api.ratelimit import Limits, RateLimiter, parse_limits
from tests.sandbox.doapi import HTTP, OBJECTS, PRIMARY, Server, response_of

DOMAIN = OBJECTS["domain"]
RECORD_ID = OBJECTS["record_id"]
RECORD_PATH = f"/v2/domains/{DOMAIN}/records/{RECORD_ID}"
DEFAULTS = {"per_hour": 5000, "per_minute": 250, "used_last_hour": 0, "used_last_minute": 0}


def budget(headers: dict[str, str]) -> tuple[int, int, int]:
    """(limit, remaining, reset) from an answer's headers."""
    names = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
    limit, remaining, reset = (int(headers[name]) for name in names)
    return limit, remaining, reset


def test_every_answer_carries_the_budget_and_each_call_spends_one(server: Server) -> None:
    started = time.time()
    answers = [
        server.call("GET", RECORD_PATH),
        server.call("PUT", RECORD_PATH, {"type": "A", "data": "bad"}),  # 422
        server.call("GET", "/v2/no-such-thing"),  # 404
        server.call("GET", RECORD_PATH),
    ]
    assert [status for status, _, _ in answers] == [200, 422, 404, 200]
    budgets = [budget(headers) for _, headers, _ in answers]
    assert [(limit, remaining) for limit, remaining, _ in budgets] == [
        (5000, 4999),
        (5000, 4998),
        (5000, 4997),
        (5000, 4996),
    ]
    # ratelimit-reset is a Unix time: when the oldest call (the first) stops counting.
    resets = {reset for _, _, reset in budgets}
    assert len(resets) == 1
    assert started + 3600 <= resets.pop() <= time.time() + 3601
    assert server.control("GET", "ratelimit") == {
        **DEFAULTS,
        "used_last_hour": 4,
        "used_last_minute": 4,
    }


def test_an_unauthorized_call_is_not_counted(server: Server) -> None:
    status, headers, _ = server.call("GET", RECORD_PATH, token="wrong")
    assert status == 401
    assert budget(headers)[:2] == (5000, 5000)
    assert server.control("GET", "ratelimit")["used_last_hour"] == 0


def test_over_the_hourly_limit_429_until_the_oldest_call_expires(server: Server) -> None:
    server.control("POST", "ratelimit", {"per_hour": 3})
    spent = [server.call("GET", RECORD_PATH) for _ in range(3)]
    assert [budget(headers)[1] for _, headers, _ in spent] == [2, 1, 0]
    first_reset = budget(spent[0][1])[2]

    status, headers, body = server.call("PUT", RECORD_PATH, {"type": "A", "data": "192.0.2.9"})

    assert (status, body["id"]) == (429, "too_many_requests")
    assert body["message"] and body["request_id"]
    assert budget(headers) == (3, 0, first_reset)
    assert "Retry-After" not in headers  # DigitalOcean sends it for the burst limit only
    records = server.control("GET", "state")["domains"][0]["records"]
    assert [r["data"] for r in records if r["id"] == RECORD_ID] == [
        OBJECTS["record_values"][PRIMARY]
    ]
    [refused] = [r for r in server.requests() if r["status"] == 429]
    assert (refused["method"], refused["fault"]) == ("PUT", False)
    assert server.control("GET", "ratelimit")["used_last_hour"] == 3  # a refusal is not counted


def test_over_the_minutes_limit_429_says_when_to_retry(server: Server) -> None:
    server.control("POST", "ratelimit", {"per_minute": 2})
    first, second = (server.call("GET", RECORD_PATH) for _ in range(2))
    assert budget(first[1])[1] == 4999
    assert budget(second[1])[1] == 0  # the burst limit reached: nothing left this minute

    status, headers, body = server.call("GET", RECORD_PATH)

    assert (status, body["id"]) == (429, "too_many_requests")
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert budget(headers)[:2] == (5000, 0)


def test_pydo_sees_the_limit(server: Server) -> None:
    server.control("POST", "ratelimit", {"per_hour": 1})
    client = server.client()
    client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)
    with pytest.raises(HttpResponseError) as limited:
        client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)
    response = response_of(limited.value)
    assert response.status_code == 429
    assert response.headers["ratelimit-remaining"] == "0"


def test_lowering_the_limit_counts_the_calls_made_and_delete_restores(server: Server) -> None:
    for _ in range(3):
        server.call("GET", RECORD_PATH)
    view = server.control("POST", "ratelimit", {"per_hour": 60, "per_minute": 10})
    assert view == {"per_hour": 60, "per_minute": 10, "used_last_hour": 3, "used_last_minute": 3}
    assert budget(server.call("GET", RECORD_PATH)[1])[:2] == (60, 56)

    assert server.control("DELETE", "ratelimit") == DEFAULTS
    assert budget(server.call("GET", RECORD_PATH)[1])[:2] == (5000, 4999)


def test_a_state_reset_restores_the_limits(server: Server) -> None:
    server.control("POST", "ratelimit", {"per_hour": 1})
    server.call("GET", RECORD_PATH)
    server.control("POST", "state", {})
    assert server.control("GET", "ratelimit") == DEFAULTS
    assert server.call("GET", RECORD_PATH)[0] == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"per_hour": 0}, "per_hour must be an integer from 1 to 1000000, got 0"),
        ({"per_hour": "60"}, "per_hour must be an integer from 1 to 1000000, got '60'"),
        ({"per_minute": True}, "per_minute must be an integer from 1 to 1000000, got True"),
        ({"per_minute": 2.5}, "per_minute must be an integer"),
        ({"per_hour": 10**7}, "per_hour must be an integer from 1 to 1000000"),
        ({"per_hour": 60, "burst": 5}, "unknown field(s) ['burst']"),
        ([60], "body must be a JSON object"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(server: Server, body: Any, message: str) -> None:
    server.control("POST", "ratelimit", {"per_hour": 100})
    status, _, answer = server.call("POST", "/_sandbox/ratelimit", body, token=None)
    assert (status, answer["id"]) == (400, "bad_request")
    assert message in answer["message"]
    assert server.control("GET", "ratelimit")["per_hour"] == 100  # unchanged


def test_limits_that_are_not_json_are_refused(server: Server) -> None:
    request = urllib.request.Request(
        server.url + "/_sandbox/ratelimit", b"{per_hour", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "body is not valid JSON" in json.loads(refused.value.read())["message"]


# The limiter alone, on an injected clock.


def test_each_call_counts_for_an_hour_from_when_it_was_made() -> None:
    now = [1_000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    limiter.set(Limits(per_hour=3, per_minute=250))
    assert limiter.spend("t").allowed and limiter.spend("t").allowed
    now[0] = 2_800.0
    third = limiter.spend("t")
    assert (third.allowed, third.remaining, third.reset) == (True, 0, 4_600)
    now[0] = 4_599.0
    assert not limiter.spend("t").allowed
    now[0] = 4_600.0  # the first two expire; the third still counts, until 6,400
    fourth = limiter.spend("t")
    assert (fourth.allowed, fourth.remaining, fourth.reset) == (True, 1, 6_400)
    assert limiter.spend("other").remaining == 2  # per token


def test_the_burst_limit_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    limiter.set(Limits(per_hour=100, per_minute=2))
    limiter.spend("t")
    now[0] = 20.5
    assert limiter.spend("t").remaining == 0
    refused = limiter.spend("t")
    assert (refused.allowed, refused.retry_after) == (False, 40)
    assert refused.headers()["Retry-After"] == "40"
    now[0] = 60.0
    assert limiter.spend("t").allowed


def test_peek_neither_counts_nor_keeps_a_token() -> None:
    limiter = RateLimiter(clock=lambda: 50.0)
    verdict = limiter.peek("stranger")
    assert (verdict.limit, verdict.remaining, verdict.reset) == (5000, 5000, 50)
    assert limiter.view("stranger")["used_last_hour"] == 0
    assert "Retry-After" not in verdict.headers()


def test_limits_default_to_digitaloceans() -> None:
    assert parse_limits({}) == Limits(per_hour=5000, per_minute=250)
    assert parse_limits({"per_minute": 5}) == Limits(per_hour=5000, per_minute=5)
