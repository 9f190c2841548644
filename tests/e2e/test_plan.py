"""The plan on a running stack: break one thing at a time, see it within one interval, repair it.

A small stack of its own (regions, the DigitalOcean API sandbox, the AWS services
server, the exporter for heartbeats, the responder under gunicorn) evaluating every
second, with one more action: a regional load balancer "pool" moved between tags
within its region, which the test adds to the DigitalOcean sandbox once it is up.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from sandbox.demo import start_stack
from sandbox.net import wait_until
from sandbox.regions import SANDBOX_CREDENTIALS
from sandbox.stack import stop_process
from sandbox.watch import StackView, http_json
from tests.e2e.conftest import PRIMARY, SECONDARY

pytestmark = pytest.mark.e2e

INTERVAL = 1.0
# One interval with its jitter, plus room for a busy machine to schedule the evaluation.
WITHIN = INTERVAL * 1.1 + 2.0
POOL_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "ddb-failover/tests/e2e/pool"))
POOL_TAG = "wordpress"  # every seeded droplet carries it, in every region


@dataclass
class PlanStack:
    """The running stack, its generated config, and the DigitalOcean seed the test keeps."""

    dir: Path
    view: StackView
    seed: dict[str, Any]
    state: dict[str, Any]
    # tests/conftest.py's make_immutable, set by each test; and what to undo.
    immutable: Callable[[Path], Callable[[], None]] | None = None
    undo: list[Callable[[], None]] = field(default_factory=list)

    @property
    def responder(self) -> str:
        return self.view.urls["responder"]

    def plan(self) -> dict[str, Any]:
        return dict(http_json(f"{self.responder}/api/v1/plan", self.view.token))

    def do_control(self, method: str, path: str, body: Any = None) -> None:
        """Call the DigitalOcean sandbox's control API."""
        request = urllib.request.Request(
            f"{self.view.urls['do_api']}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status < 300

    def do_seed(self, seed: dict[str, Any]) -> None:
        """Replace the DigitalOcean sandbox's objects (and nothing else of the stack)."""
        self.do_control("POST", "/_sandbox/state", {"seed": seed})

    def aws(self, service: str) -> Any:
        url = self.state["aws_services"]["url"]
        return boto3.client(service, region_name=PRIMARY, endpoint_url=url, **SANDBOX_CREDENTIALS)

    def dynamodb(self, region: str) -> Any:
        url = self.view.urls[f"region:{region}"]
        return boto3.client("dynamodb", region_name=region, endpoint_url=url, **SANDBOX_CREDENTIALS)

    def actions(self) -> dict[str, dict[str, Any]]:
        config = yaml.safe_load((self.dir / "ddb-failover.yml").read_text())
        return {a["name"]: a for a in config["responder"]["actions"]}


def pool_region(seed: dict[str, Any]) -> str:
    """The DigitalOcean region of the primary's droplets: where the pool balances."""
    tag = f"wordpress-{PRIMARY}"
    return str(next(d["region"] for d in seed["droplets"] if tag in d["tags"]))


def with_pool(seed: dict[str, Any]) -> dict[str, Any]:
    """seed plus the pool load balancer, targeting the shared tag in the primary's region."""
    pool = {"id": POOL_ID, "name": "pool", "region": pool_region(seed), "tag": POOL_TAG}
    return {**seed, "load_balancers": [*seed["load_balancers"], pool]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanStack]:
    directory = tmp_path_factory.mktemp("plan-stack")
    extra = directory / "extra-actions.yml"
    pool = {"name": "pool", "type": "do_load_balancer", "load_balancer_id": POOL_ID}
    targets = {PRIMARY: {"tag": f"wordpress-{PRIMARY}"}, SECONDARY: {"tag": POOL_TAG}}
    extra.write_text(yaml.safe_dump([{**pool, "values": targets}]))
    options = ["--only", "responder,exporter", "--plan-interval-seconds", str(INTERVAL)]
    proc = start_stack(directory, *options, "--extra-actions", str(extra))
    try:

        def up() -> StackView | None:
            if proc.poll() is not None:
                log = (directory / "sandbox-up.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"sandbox up exited with {proc.returncode}:\n{log}")
            view = StackView.load(directory)
            return view if {"responder", "exporter"} <= set(view.urls) else None

        view = wait_until(up, 120, 0.5, "the plan stack")
        state = json.loads((directory / "stack.json").read_text())
        seed = with_pool(json.loads((directory / "do-api-seed.json").read_text()))
        planned = PlanStack(directory, view, seed, state)
        planned.do_seed(seed)
        wait_until(lambda: planned.plan()["ready"], 60, 0.2, "a ready plan on a healthy stack")
        yield planned
    finally:
        stop_process(proc, grace=60)


Step = Callable[[PlanStack], None]


def without_www(stack: PlanStack) -> None:
    seed = copy.deepcopy(stack.seed)
    for domain in seed["domains"]:
        domain["records"] = [r for r in domain["records"] if r["name"] != "www"]
    stack.do_seed(seed)


def without_pool(stack: PlanStack) -> None:
    lbs = [lb for lb in stack.seed["load_balancers"] if lb["id"] != POOL_ID]
    stack.do_seed({**stack.seed, "load_balancers": lbs})


def untagged_in_pool_region(stack: PlanStack) -> None:
    seed = copy.deepcopy(stack.seed)
    here = pool_region(seed)
    for droplet in seed["droplets"]:
        if droplet["region"] == here:
            droplet["tags"] = [t for t in droplet["tags"] if t != POOL_TAG]
    stack.do_seed(seed)


def restore_do(stack: PlanStack) -> None:
    stack.do_seed(stack.seed)


def revoke_token(stack: PlanStack) -> None:
    # Every call answered 401 until cleared: what DigitalOcean says to a revoked token.
    stack.do_control("POST", "/_sandbox/faults", {"status": 401})


def restore_token(stack: PlanStack) -> None:
    stack.do_control("DELETE", "/_sandbox/faults")


def delete_parameter(stack: PlanStack) -> None:
    stack.aws("ssm").delete_parameter(Name=stack.state["aws_services"]["ssm_parameter"])


def restore_parameter(stack: PlanStack) -> None:
    name = stack.state["aws_services"]["ssm_parameter"]
    stack.aws("ssm").put_parameter(Name=name, Value=PRIMARY, Type="String", Overwrite=True)


def _origin(stack: PlanStack, change: str) -> None:
    action = stack.actions()["origin"]
    record = {
        "Name": action["record_name"],
        "Type": "A",
        "TTL": action["ttl"],
        "ResourceRecords": [{"Value": action["values"][PRIMARY]}],
    }
    stack.aws("route53").change_resource_record_sets(
        HostedZoneId=action["hosted_zone_id"],
        ChangeBatch={"Changes": [{"Action": change, "ResourceRecordSet": record}]},
    )


def delete_record_set(stack: PlanStack) -> None:
    _origin(stack, "DELETE")


def restore_record_set(stack: PlanStack) -> None:
    _origin(stack, "UPSERT")


def delete_canary(stack: PlanStack) -> None:
    stack.dynamodb(SECONDARY).delete_item(
        TableName="wordpress_posts", Key={"health_check_id": {"S": "ping"}}
    )


def restore_canary(stack: PlanStack) -> None:
    item = {"health_check_id": {"S": "ping"}, "purpose": {"S": "canary"}}
    stack.dynamodb(SECONDARY).put_item(TableName="wordpress_posts", Item=item)


def read_only_env_directory(stack: PlanStack) -> None:
    # chattr +i: root ignores permission bits, so chmod would not stop the responder.
    assert stack.immutable is not None
    stack.undo.append(stack.immutable(stack.dir / "wordpress"))


def writable_env_directory(stack: PlanStack) -> None:
    stack.undo.pop()()


def do_actions(stack: PlanStack) -> set[str]:
    return {name for name, a in stack.actions().items() if a["type"].startswith("do_")}


@dataclass(frozen=True)
class Breakage:
    """What to break and mend, and the problems the plan must then show for the secondary."""

    name: str
    broken: Step
    repaired: Step
    kind: str
    words: str
    action: str | None = None  # None: every DigitalOcean action


BREAKAGES = [
    Breakage("deleted DNS record", without_www, restore_do, "missing",
             "DNS record A www in example.test does not exist", "www"),
    Breakage("deleted load balancer", without_pool, restore_do, "missing",
             f"get load balancer {POOL_ID}: HTTP 404", "pool"),
    Breakage("tag with no droplets in the region", untagged_in_pool_region, restore_do,
             "invalid_target", "none in the load balancer's region", "pool"),
    Breakage("revoked DigitalOcean token", revoke_token, restore_token, "credentials",
             "HTTP 401"),
    Breakage("missing SSM parameter", delete_parameter, restore_parameter, "missing",
             "SSM parameter /wordpress/dynamodb-region does not exist", "wp-region"),
    Breakage("missing Route 53 record set", delete_record_set, restore_record_set, "missing",
             "record set A origin.example.test. does not exist", "origin"),
    Breakage("env file directory made read-only", read_only_env_directory,
             writable_env_directory, "not_writable", "wordpress is immutable (chattr +i)",
             "wp-env"),
    Breakage("missing canary in the target region", delete_canary, restore_canary,
             "readiness", "canary read failed (canary item missing in wordpress_posts)",
             "readiness"),
]  # fmt: skip


def problems(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(region, action, kind) of every error in the plan."""
    return {
        (region, entry["action"], problem["kind"])
        for region, planned in document["regions"].items()
        for entry in planned["actions"]
        for problem in entry["problems"]
        if problem["severity"] == "error"
    }


def first_after(stack: PlanStack, moment: float) -> dict[str, Any]:
    """The first evaluation that started after moment."""
    return wait_until(
        lambda: (
            (d := stack.plan())["evaluated_at_unix"] is not None
            and d["evaluated_at_unix"] > moment
            and d
        ),
        WITHIN + 15,
        0.05,
        "an evaluation after the change",
    )


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.name for b in BREAKAGES])
def test_one_broken_thing_is_named_within_one_interval_then_the_plan_is_ready_again(
    stack: PlanStack, breakage: Breakage, make_immutable: Callable[[Path], Callable[[], None]]
) -> None:
    assert stack.plan()["ready"], "the previous row left the plan not ready"
    stack.immutable = make_immutable
    actions = {breakage.action} if breakage.action else do_actions(stack)
    expected = {(SECONDARY, action, breakage.kind) for action in actions}

    broken_at = time.time()
    breakage.broken(stack)
    seen = first_after(stack, broken_at)
    assert seen["evaluated_at_unix"] - broken_at <= WITHIN
    assert problems(seen) == expected, json.dumps(seen["regions"], indent=1)[:3000]
    messages = [
        p["message"]
        for entry in seen["regions"][SECONDARY]["actions"]
        if entry["action"] in actions
        for p in entry["problems"]
    ]
    assert all(breakage.words in message for message in messages), messages
    assert seen["ready"] is False and seen["regions"][SECONDARY]["ready"] is False

    repaired_at = time.time()
    breakage.repaired(stack)
    healed = first_after(stack, repaired_at + 0.6)  # replication of a repaired canary: 0.5 s
    assert problems(healed) == set(), json.dumps(healed["regions"], indent=1)[:3000]
    assert healed["ready"] is True
