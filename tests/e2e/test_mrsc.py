"""A STRONG (multi-Region strongly consistent) stack: failover with RPO 0, never to the witness.

A small stack of its own: two replica regions and the witness us-west-2
(`--consistency strong --witness us-west-2`), the exporter (its dynamodb_table_info
says STRONG), the DigitalOcean API sandbox and the responder under gunicorn, its config
as the sandbox generates it. The test plays Alertmanager, posting the DynamoDBRegionDown
it would send, so each decision is seconds away; the readiness reads (canary, the write
probe) are the responder's own, live.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json, metric
from tests.e2e.conftest import PRIMARY, SECONDARY, E2EStack, small_stack
from tests.responder.weblib import alert, http, payload

pytestmark = pytest.mark.e2e
NEEDED = ("responder", "exporter", "do_api")
WITNESS = "us-west-2"
RPO_ZERO = "RPO 0 (strong consistency)"


def plan(stack: E2EStack) -> dict[str, Any]:
    return dict(http_json(f"{stack.urls['responder']}/api/v1/plan", stack.token))


def region_down(stack: E2EStack, region: str, fingerprint: str) -> dict[str, Any]:
    """Post a DynamoDBRegionDown for region, as Alertmanager would; the decision."""
    token = (stack.dir / "secrets" / "webhook-token").read_text().strip()
    body = payload(alert(region=region, starts_at=time.time() - 20, fingerprint=fingerprint))
    status, answer = http(
        "POST", f"{stack.urls['responder']}/webhook", body, {"Authorization": f"Bearer {token}"}
    )
    assert status == 202, answer
    return dict(answer["decisions"][0])


def test_strong_failover_has_rpo_0_and_never_goes_to_the_witness(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    options = ("--consistency", "strong", "--witness", WITNESS, "--min-dwell-seconds", "0")
    with small_stack(tmp_path_factory, NEEDED, *options, "--plan-interval-seconds", "1") as view:
        drill(E2EStack(view.dir, view.urls, view.token))


def drill(stack: E2EStack) -> None:
    # Ready with no lag gate: RPO 0, the witness listed and no candidate.
    ready = wait_until(
        lambda: (found := plan(stack))["ready"] and found, 90, 0.5, "a ready plan, RPO 0"
    )
    assert ready["consistency"]["rpo"] == RPO_ZERO
    info = {"table": "wordpress_posts", "consistency": "STRONG", "witness_region": WITNESS}
    wait_until(
        lambda: metric(stack.urls["exporter"], "dynamodb_table_info", **info) == 1,
        60,
        0.5,
        "the exporter's dynamodb_table_info saying STRONG",
    )
    assert ready["consistency"]["witnesses"][WITNESS]["target"] is False
    assert list(ready["regions"]) == [SECONDARY]
    refused = stack.cli("failover", "--to", WITNESS, "--force", "--reason", "drill")
    assert refused.returncode != 0
    assert f"{WITNESS} is the witness of wordpress_posts" in refused.stdout + refused.stderr

    # The primary goes down: the other replica and the witness keep a quorum.
    stopped = time.time()
    stack.chaos(PRIMARY, "stop")
    # The quorum holds: a plan evaluated after the stop writes in eu-west-1 and finds it
    # ready. (The sandbox's members notice a stopped peer within a ping, 0.2 s; the alert a
    # real outage sends comes 30 s or more after it.)
    wait_until(
        lambda: (p := plan(stack))["evaluated_at_unix"] > stopped and p["ready"],
        30,
        0.5,
        "a ready plan after the primary stopped",
    )
    decision = region_down(stack, PRIMARY, "5752000000000001")
    assert (decision["kind"], decision["to_region"]) == ("failover", SECONDARY), decision
    assert decision["data_at_risk_seconds"] == 0.0
    transition_id = decision["transition_id"]

    def completed() -> dict[str, Any] | None:
        status = stack.status()
        last = status["last_transition"] or {}
        done = last.get("id") == transition_id and last.get("result") == "completed"
        return status if done else None

    wait_until(completed, 90, 0.5, "the failover completed")
    shown = stack.cli("report", transition_id, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    evidence = json.loads(shown.stdout)["evidence"]
    assert (evidence["rpo"], evidence["data_at_risk_seconds"]) == (RPO_ZERO, 0.0)
    text = stack.cli("report", transition_id, "--format", "md")
    assert f"| Data at risk | none: {RPO_ZERO} |" in text.stdout

    # The witness goes too: the active region cannot write, nor can the stopped primary.
    stack.chaos(WITNESS, "stop")
    decision = region_down(stack, SECONDARY, "5752000000000002")
    assert decision["kind"] == "blocked", decision
    assert decision["reason"].startswith(
        f"quorum lost: writes fail in every replica region ({SECONDARY} is down; {PRIMARY}: "
    ), decision["reason"]
    assert stack.status()["active_region"] == SECONDARY
