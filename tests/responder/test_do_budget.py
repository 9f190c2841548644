"""DigitalOcean's API budget as the responder's client sees it, against the DigitalOcean sandbox.

Every answer's ratelimit-* headers reach the Budget; every request names its caller; a plan
read that would eat into the reserve is never sent; a 429 waits until ratelimit-reset, capped
at the backoff cap; and each DigitalOcean action's digitalocean_calls() is what one move
really calls, counted in the sandbox's request log.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_failover.config import Retry
from responder.actions import aws_client
from responder.actions.base import Action, reconcile
from responder.actions.do_app_env import AppEnv
from responder.actions.do_budget import (
    FENCE_HEADER,
    HOLDER_HEADER,
    Budget,
    BudgetKept,
    Caller,
    RateLimit,
    calling_as,
    read_ratelimit,
    spend,
)
from responder.actions.do_client import DOClient, refused_for
from responder.actions.do_dns_record import DNSRecord
from responder.actions.do_global_load_balancer import GlobalLoadBalancer
from responder.actions.do_load_balancer import LoadBalancer
from responder.actions.inspection import RATE_LIMITED, RATELIMIT
from responder.model import fence
from responder.model.backoff import backoff
from responder.model.errors import TemporaryError
from responder.model.fence import LeaseDeadlinePassed
from sandbox.do_api import app as do_api_app
from sandbox.net import wait_until
from tests.responder.dosandbox import TOKEN, WEST, Sandbox, transition
from tests.responder.test_actions_do import dns_action, lb_action
from tests.responder.test_actions_do_app_env import config as app_config
from tests.responder.test_actions_do_glb import glb_action


def client(sandbox: Sandbox, budget: Budget | None = None) -> DOClient:
    return DOClient(sandbox.url, TOKEN, 2.0, budget)


def list_records(do: DOClient) -> Any:
    return do.call("list records", do.pydo.domains.list_records, "example.test")


def limits(sandbox: Sandbox, **per: int) -> None:
    sandbox.control("DELETE", "/_sandbox/ratelimit")
    sandbox.control("POST", "/_sandbox/ratelimit", per)


# --- pure ---


def test_read_ratelimit_takes_whole_numbers_only() -> None:
    headers = {"RateLimit-Limit": "60", "ratelimit-remaining": " 12 ", "ratelimit-reset": "1700"}
    assert read_ratelimit(headers, 5.0) == RateLimit(60, 12, 1700.0, 5.0)
    assert read_ratelimit({**headers, "ratelimit-remaining": "-1"}, 5.0) is None
    assert read_ratelimit({**headers, "ratelimit-reset": "\u0661\u0662"}, 5.0) is None  # Arabic
    assert read_ratelimit({"ratelimit-limit": "60"}, 5.0) is None


def test_what_is_left_grows_as_counted_calls_expire() -> None:
    seen = RateLimit(limit=60, remaining=10, reset=1_000.0, seen_at=500.0)
    assert seen.left(999.0) == 10
    assert seen.left(1_000.0) == 11  # the oldest call counted has expired
    assert seen.left(4_099.0) == 11
    assert seen.left(4_100.0) == 60  # every call counted then has


def test_a_reserve_refuses_the_call_that_would_eat_into_it() -> None:
    now = [0.0]
    budget = Budget(clock=lambda: now[0])
    budget.observe({"ratelimit-limit": "60", "ratelimit-remaining": "17", "ratelimit-reset": "9"})
    caller = Caller("plan:test", reserve=16)
    with calling_as(caller):
        spend(budget, "first")  # 17 left: one read leaves 16
        budget.observe(
            {"ratelimit-limit": "60", "ratelimit-remaining": "16", "ratelimit-reset": "9"}
        )
        with pytest.raises(BudgetKept) as kept:
            spend(budget, "www: list records")
    assert kept.value.kind == RATELIMIT
    assert "www: list records: not read" in str(kept.value)
    assert "16 call(s) left of 60 an hour, 16 kept" in str(kept.value)
    assert (caller.calls, caller.kept) == (1, 1)


def test_a_429s_word_lasts_its_retry_after_only() -> None:
    headers = {"ratelimit-limit": "60", "ratelimit-remaining": "0", "ratelimit-reset": "4000"}
    refusal = {**headers, "Retry-After": "2"}
    refused = read_ratelimit(refusal, 500.0, refused_for(429, refusal))
    assert refused == RateLimit(60, 0, 4000.0, 500.0, refused_for=2.0)
    assert refused.left(501.9) == 0
    assert refused.left(502.0) is None  # a refused call is not counted: the next may find out
    # Only a 429's readable Retry-After bounds the word.
    assert read_ratelimit(refusal, 500.0, refused_for(503, refusal)) == RateLimit(
        60, 0, 4000.0, 500.0
    )
    unreadable = {**headers, "Retry-After": "soon"}
    assert read_ratelimit(unreadable, 500.0, refused_for(429, unreadable)) == RateLimit(
        60, 0, 4000.0, 500.0
    )


def test_a_plan_read_waits_out_a_429_then_is_made() -> None:
    now = [100.0]
    budget = Budget(clock=lambda: now[0])
    refusal = {"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": "3600"}
    budget.observe(refusal, refused_for=1.0)
    caller = Caller("plan:test", reserve=16)
    now[0] = 100.4
    with calling_as(caller), pytest.raises(BudgetKept) as kept:
        spend(budget, "www: list records")
    assert "0 call(s) left of 5000 an hour (DigitalOcean answered HTTP 429 0.4 s ago, " in str(
        kept.value
    )
    assert "retry after 1 s)" in str(kept.value)
    now[0] = 101.0
    with calling_as(caller):
        spend(budget, "www: list records")
    assert (caller.calls, caller.kept) == (1, 1)


# --- against the sandbox ---


def test_every_answer_tells_the_budget_and_its_listeners(sandbox: Sandbox) -> None:
    limits(sandbox, per_hour=60)
    budget, heard = Budget(), []
    budget.listen(heard.append)
    do = client(sandbox, budget)

    list_records(do)
    with pytest.raises(TemporaryError):  # a 503: its headers count too
        sandbox.fault(status=503, count=1)
        list_records(do)

    assert [(seen.limit, seen.remaining) for seen in heard] == [(60, 59), (60, 58)]
    assert budget.left() == 58
    assert time.time() + 3590 < heard[0].reset <= time.time() + 3601


def test_the_client_sends_the_headers_the_sandbox_logs() -> None:
    assert (HOLDER_HEADER, FENCE_HEADER) == (do_api_app.HOLDER_HEADER, do_api_app.FENCE_HEADER)


def test_requests_name_their_caller(sandbox: Sandbox) -> None:
    do = client(sandbox)
    with calling_as(Caller("host-1:42:ab12", fence=7)):
        list_records(do)
    with calling_as(Caller("plan:host-1:43", reserve=0)):
        list_records(do)
    list_records(do)

    logged = [(r["holder"], r["fence"]) for r in sandbox.requests()]
    assert logged == [("host-1:42:ab12", "7"), ("plan:host-1:43", None), (None, None)]


def test_a_plan_read_that_would_eat_into_the_reserve_is_never_sent(sandbox: Sandbox) -> None:
    limits(sandbox, per_hour=10)
    do = client(sandbox)
    caller = Caller("plan:test", reserve=8)
    with calling_as(caller):
        list_records(do)  # unknown budget: read; 9 left
        list_records(do)  # 8 left
        with pytest.raises(BudgetKept):
            list_records(do)
    assert len(sandbox.requests()) == 2
    assert (caller.calls, caller.kept) == (2, 1)
    with calling_as(Caller("holder-1", fence=3)):  # a transition may spend the reserve
        list_records(do)
    assert sandbox.control("GET", "/_sandbox/ratelimit")["used_last_hour"] == 3


def test_after_a_429_fault_the_plan_reads_again_once_retry_after_passed(
    sandbox: Sandbox,
) -> None:
    do = client(sandbox)
    caller = Caller("plan:test", reserve=16)
    sandbox.fault(status=429, count=1, retry_after=1)
    with calling_as(caller):
        with pytest.raises(TemporaryError):
            list_records(do)
        with pytest.raises(BudgetKept):  # 0 left, as the 429 said, for its second
            list_records(do)

        def read() -> bool:
            try:
                list_records(do)
            except BudgetKept:
                return False
            return True

        wait_until(read, 5, 0.1, "a plan read after the 429's Retry-After")
    used = sandbox.control("GET", "/_sandbox/ratelimit")["used_last_hour"]
    assert do.budget.left() == 5000 - used


@pytest.mark.parametrize(
    ("per", "soonest", "latest"),
    [
        ({"per_hour": 1}, 3590, 3601),  # until ratelimit-reset: the first call expires
        ({"per_minute": 1}, 30, 60),  # the burst limit's Retry-After
    ],
)
def test_a_429_waits_until_the_budget_allows_capped_at_the_backoff_cap(
    sandbox: Sandbox, per: dict[str, int], soonest: float, latest: float
) -> None:
    limits(sandbox, **per)
    do = client(sandbox)
    list_records(do)

    with pytest.raises(TemporaryError) as limited:
        list_records(do)

    assert limited.value.kind == RATE_LIMITED
    wait = limited.value.retry_after
    assert wait is not None and soonest < wait <= latest
    assert backoff(1, Retry(initial_backoff_seconds=0.5, max_backoff_seconds=30), 0.5, wait) == 30
    uncapped = Retry(initial_backoff_seconds=0.5, max_backoff_seconds=7200)
    assert backoff(1, uncapped, 0.5, wait) == wait


@pytest.mark.parametrize("code", ["ThrottlingException", "RequestLimitExceeded", "Throttling"])
def test_aws_throttling_is_temporary_and_retried_like_a_429(code: str) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "slow down"}}, "PutParameter")
    classified = aws_client.classify("ssm put", error)
    assert isinstance(classified, TemporaryError)
    assert classified.kind == RATE_LIMITED


def _dns(do: DOClient) -> Action:
    return DNSRecord(dns_action(), do)


def _glb(do: DOClient) -> Action:
    return GlobalLoadBalancer(glb_action(), do)


def _lb_tag(do: DOClient) -> Action:
    return LoadBalancer(lb_action(), do)


def _lb_ids(do: DOClient) -> Action:
    return LoadBalancer(lb_action(west={"droplet_ids": [3164448, 3164449]}), do)


@pytest.mark.parametrize("make", [_dns, _glb, _lb_tag, _lb_ids])
def test_digitalocean_calls_are_what_a_move_calls(sandbox: Sandbox, make: Any) -> None:
    action = make(client(sandbox))

    assert reconcile(action, transition(WEST)).result == "applied"

    assert len(sandbox.requests()) == action.digitalocean_calls()


def test_an_app_deployment_polls_within_its_bound(sandbox: Sandbox) -> None:
    sandbox.reseed(deploy_seconds=0.3)
    action = AppEnv(app_config(timeout_seconds=2, poll_interval_seconds=0.1), client(sandbox))

    assert reconcile(action, transition(WEST)).result == "applied"

    made = len(sandbox.requests())
    assert 5 < made <= action.digitalocean_calls() == 5 + 16


def test_no_change_is_sent_after_the_lease_ran_out(sandbox: Sandbox) -> None:
    dns = _dns(client(sandbox))
    with fence.guarding(fence.Deadline(until=0.0)), pytest.raises(LeaseDeadlinePassed):
        reconcile(dns, transition(WEST))
    sent = [(r["method"], r["status"]) for r in sandbox.requests()]
    assert sent and all(method == "GET" for method, _ in sent)  # read, compared, not written
    with fence.guarding(fence.Deadline(until=time.time() + 60)):
        assert reconcile(dns, transition(WEST)).result == "applied"
