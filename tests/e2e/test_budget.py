"""DigitalOcean's API budget on a real stack: with 60 calls an hour the plan warns, the
evaluator holds back, and a failover made after that still completes.

A small stack of its own (the responder under gunicorn, the regions and their exporter,
the DigitalOcean sandbox), evaluating the plan every second so that an hour's budget of 60
is spent in seconds: the shared stack's plan must stay ready throughout, and its
transitions per hour are counted.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json, metric
from tests.e2e.conftest import SECONDARY, E2EStack, small_stack

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", "do_api")
PER_HOUR = 60
# What a failover and a failback call (www: 4, wordpress-glb: 4; docs/plan.md), and the
# warning's threshold: three of them.
RESERVE = 16
WARN_BELOW = 3 * RESERVE


def left(stack: E2EStack) -> int:
    """The calls the token has left this hour, by the sandbox's own count."""
    budget = stack.do_api("/_sandbox/ratelimit")
    return int(budget["per_hour"] - budget["used_last_hour"])


def plan(stack: E2EStack) -> dict[str, Any]:
    return dict(http_json(f"{stack.urls['responder']}/api/v1/plan", stack.token))


def requests(stack: E2EStack, since: int = 0) -> list[dict[str, Any]]:
    return list(stack.do_api(f"/_sandbox/requests?since={since}")["requests"])


def ratelimit_problems(plan: dict[str, Any]) -> list[str]:
    return [
        problem["message"]
        for planned in plan["regions"].values()
        for entry in planned["actions"]
        for problem in entry["problems"]
        if problem["kind"] == "ratelimit"
    ]


def plan_reads(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if (r["holder"] or "").startswith("plan:")]


def test_with_60_calls_an_hour_it_warns_holds_back_and_still_fails_over(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    options = ("--min-dwell-seconds", "0", "--plan-interval-seconds", "1")
    with small_stack(tmp_path_factory, NEEDED, *options) as view:
        drill(E2EStack(view.dir, view.urls, view.token))


def drill(stack: E2EStack) -> None:
    """Spend the budget down with the plan alone, then fail over."""
    wait_until(lambda: plan(stack)["ready"], 60, 0.5, "a ready plan at DigitalOcean's limits")
    stack.do_api("/_sandbox/ratelimit", "DELETE")  # forget the calls made so far
    stack.do_api("/_sandbox/ratelimit", "POST", {"per_hour": PER_HOUR})

    # The plan warns while the budget still holds more than the reserve.
    def warning() -> dict[str, Any] | None:
        document = plan(stack)
        return document if ratelimit_problems(document) else None

    warned = wait_until(warning, 60, 0.2, "the warning")
    assert left(stack) > RESERVE
    assert warned["digitalocean"]["reserve"] == RESERVE
    assert warned["digitalocean"]["left"] < WARN_BELOW
    assert not warned["ready"]  # so FailoverPlanNotReady says so
    assert "DigitalOcean API budget low" in ratelimit_problems(warned)[0]

    # The evaluator holds back: its reads stop while the reserve is still whole.
    wait_until(lambda: plan(stack)["digitalocean"]["kept"] > 0, 60, 0.2, "reads held back")
    held = plan(stack)
    since = requests(stack)[-1]["seq"]
    wait_until(
        lambda: plan(stack)["evaluated_at_unix"] > held["evaluated_at_unix"] + 3,
        30,
        0.5,
        "three more evaluations",
    )
    assert plan_reads(requests(stack, since)) == []
    assert left(stack) >= RESERVE
    assert any("not read, to keep" in m for m in ratelimit_problems(plan(stack)))
    # The gauges say what the sandbox's last answer said, whichever worker saw it.
    url = stack.urls["responder"]
    assert metric(url, "responder_digitalocean_ratelimit_limit") == PER_HOUR
    assert metric(url, "responder_digitalocean_ratelimit_remaining") == left(stack)

    # A failover spends the reserve, and completes.
    before = requests(stack)[-1]["seq"]
    done = stack.cli("failover", "--to", SECONDARY, "--force", "--reason", "budget drill")
    assert done.returncode == 0, done.stdout + done.stderr

    def completed() -> dict[str, Any] | None:
        status = stack.status()
        last = status["last_transition"] or {}
        ended = status["active_region"] == SECONDARY and last.get("result") == "completed"
        return status if ended else None

    wait_until(completed, 60, 0.5, "the failover completed")
    spent = requests(stack, before)
    assert [r for r in spent if r["status"] >= 400] == []
    writes = {r["path"].split("/")[2] for r in spent if r["method"] != "GET"}
    assert writes == {"domains", "load_balancers"}
    # Each of the transition's calls names the lease holder and its fencing token.
    [(holder, fence)] = {(r["holder"], r["fence"]) for r in spent if r not in plan_reads(spent)}
    assert holder and not holder.startswith("plan:")
    assert fence and fence.isdigit()
    assert left(stack) >= 0
