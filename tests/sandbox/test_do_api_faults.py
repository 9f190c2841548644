"""Faults in the sandbox: for N calls, for a time, until cleared; 401/403/422 in DO's shapes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from sandbox.do_api.faults import Faults, parse_fault
from sandbox.net import wait_until
from tests.sandbox.doapi import HTTP, OBJECTS, Server, response_of

RECORD_PATH = f"/v2/domains/{OBJECTS['domain']}/records/{OBJECTS['record_id']}"


def status_of(server: Server, method: str = "GET", path: str = RECORD_PATH) -> int:
    body = {"type": "A", "data": "203.0.113.99"} if method == "PUT" else None
    return server.call(method, path, body)[0]


def test_a_fault_for_a_duration_ends_by_itself(server: Server) -> None:
    started = time.monotonic()
    added = server.control("POST", "faults", {"status": 503, "duration_seconds": 1.0})
    assert 0 < added["fault"]["seconds_left"] <= 1.0
    assert status_of(server) == 503
    [listed] = server.control("GET", "faults")["faults"]
    assert listed["status"] == 503 and "count" not in listed

    wait_until(lambda: status_of(server) == 200, 30, interval=0.05, message="the fault over")

    # The sandbox's clock started after ours: the fault cannot have ended sooner for us.
    assert time.monotonic() - started >= 1.0
    assert server.control("GET", "faults")["faults"] == []


def test_a_fault_without_count_or_duration_lasts_until_cleared(server: Server) -> None:
    server.control("POST", "faults", {"status": 503})
    assert [status_of(server) for _ in range(5)] == [503] * 5
    assert len(server.control("GET", "faults")["faults"]) == 1

    server.control("DELETE", "faults")

    assert status_of(server) == 200
    faulted = [r["fault"] for r in server.requests()]
    assert faulted == [True] * 5 + [False]


def test_a_counted_fault_lists_what_is_left(server: Server) -> None:
    server.control("POST", "faults", {"status": 500, "count": 3})
    status_of(server)
    assert server.control("GET", "faults")["faults"][0]["count"] == 2


@pytest.mark.parametrize(
    ("status", "error_id"),
    [(401, "unauthorized"), (403, "forbidden"), (422, "unprocessable_entity")],
)
def test_401_403_422_faults_answer_in_digitaloceans_shape(
    server: Server, status: int, error_id: str
) -> None:
    server.control("POST", "faults", {"status": status, "count": 1, "path_prefix": "/v2/domains"})

    got, headers, body = server.call("GET", RECORD_PATH)

    assert (got, body["id"]) == (status, error_id)
    assert body["message"] and body["request_id"]
    assert "Retry-After" not in headers
    assert status_of(server) == 200  # it was for one call


def test_pydo_sees_the_fault_statuses(server: Server) -> None:
    client = server.client()
    server.control("POST", "faults", {"status": 401, "count": 1})
    with pytest.raises(ClientAuthenticationError):
        client.droplets.list(**HTTP)
    server.control("POST", "faults", {"status": 403, "count": 1, "message": "scope missing"})
    with pytest.raises(HttpResponseError) as refused:
        client.load_balancers.list(**HTTP)
    assert response_of(refused.value).json()["message"] == "scope missing"


def test_a_fault_can_hit_one_method_only(server: Server) -> None:
    server.control("POST", "faults", {"status": 500, "method": "PUT", "path_prefix": RECORD_PATH})
    assert status_of(server, "GET") == 200
    assert status_of(server, "PUT") == 500
    assert status_of(server, "GET") == 200


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 404}, "status must be one of [401, 403, 422, 429, 500, 503], got 404"),
        ({"status": 503, "count": 2, "duration_seconds": 5}, "set at most one of count"),
        ({"status": 503, "duration_seconds": 0}, "duration_seconds must be a positive number"),
        ({"status": 503, "method": "TRACE"}, "method must be one of"),
        ({"status": 503, "deployment": "ERROR"}, 'set exactly one of "status"'),
        ({"count": 1}, 'set exactly one of "status"'),
        ({"deployment": "ACTIVE"}, "deployment must be 'ERROR', got 'ACTIVE'"),
        ({"deployment": "ERROR", "phase": "PENDING_BUILD"}, "phase must be one of"),
        ({"deployment": "ERROR", "retry_after": 1}, "unknown field(s) ['retry_after']"),
        ({"status": 403, "phase": "BUILDING"}, "unknown field(s) ['phase']"),
        ({"delay_seconds": 0}, "delay_seconds must be a number above 0 and at most 600, got 0"),
        ({"delay_seconds": 601}, "delay_seconds must be a number above 0 and at most 600"),
        ({"delay_seconds": "5"}, "delay_seconds must be a number above 0"),
        ({"delay_seconds": True}, "delay_seconds must be a number above 0"),
        ({"delay_seconds": 1, "apply": "later"}, "apply must be one of ['before', 'after', "),
        ({"delay_seconds": 1, "status": 503}, 'set exactly one of "status"'),
        ({"delay_seconds": 1, "message": "x"}, "unknown field(s) ['message']"),
        ({"status": 503, "apply": "never"}, "unknown field(s) ['apply']"),
        ({"delay_seconds": 1, "method": "TRACE"}, "method must be one of"),
    ],
)
def test_faults_are_checked(server: Server, fault: dict[str, Any], message: str) -> None:
    status, _, body = server.call("POST", "/_sandbox/faults", fault, token=None)
    assert (status, body["id"]) == (400, "bad_request")
    assert message in body["message"]
    assert server.control("GET", "faults")["faults"] == []


def test_faults_expire_on_the_injected_clock() -> None:
    now = [100.0]
    faults = Faults(clock=lambda: now[0])
    faults.add(parse_fault({"status": 503, "duration_seconds": 10}, now=now[0]))
    faults.add(parse_fault({"deployment": "ERROR", "count": 1}, now=now[0]))
    assert faults.take("/v2/droplets", "GET") is not None
    now[0] = 109.9
    assert faults.take("/v2/droplets", "get") is not None
    assert faults.take_deployment("any") is not None
    assert faults.take_deployment("any") is None  # its one deployment is used up
    now[0] = 110.0
    assert faults.take("/v2/droplets", "GET") is None
    assert faults.pending() == []


def test_a_delay_fault_lists_its_delay_and_when_its_change_is_made(server: Server) -> None:
    fault = {"delay_seconds": 2.5, "method": "PUT", "count": 2}
    added = server.control("POST", "faults", fault)["fault"]
    assert added == {
        "delay_seconds": 2.5,
        "apply": "after",
        "method": "PUT",
        "path_prefix": "/v2/",
        "count": 2,
    }
    assert status_of(server, "GET") == 200  # a GET is not a PUT: no delay, the fault untouched
    assert server.control("GET", "faults")["faults"] == [added]
