"""How many API calls one plan evaluation makes for each example configuration.

Counted in the DigitalOcean sandbox's request log and a moto server's recording, and
compared with the table in docs/plan.md, so the documented figures cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddb_failover import config as cfg
from responder.actions import aws_client, registry
from responder.actions.do_dns_record import relative_name
from responder.actions.inspection import Limits
from responder.plan import evaluate
from responder.readiness import ReadinessChecker
from sandbox.regions import create_table
from tests.responder.test_actions_aws import Moto
from tests.responder.test_actions_do import TOKEN, Sandbox

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yml"))
DOC = REPO / "docs" / "plan.md"
DO_REGION = "nyc3"
TOKEN_ENV = "DDB_TEST_PLAN_DO_TOKEN"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Moto]]:
    sandbox = Sandbox(tmp_path_factory.mktemp("do_api"))
    moto = Moto(tmp_path_factory.mktemp("moto"))
    yield sandbox, moto
    moto.close()
    sandbox.close()


def seed_for(config: cfg.Config) -> dict[str, Any]:
    """A DigitalOcean seed holding every object the config's DO actions name."""
    domains: dict[str, list[dict[str, Any]]] = {}
    droplets: dict[int, dict[str, Any]] = {}
    balancers = []
    primary = config.primary
    for action in config.responder.actions:
        if isinstance(action, cfg.DNSRecordAction):
            records = domains.setdefault(action.domain, [])
            records.append(
                {
                    "type": action.record_type,
                    "name": relative_name(action.record_name, action.domain),
                    "data": action.values[primary],
                    "ttl": action.ttl or 60,
                }
            )
        elif isinstance(action, cfg.LoadBalancerAction):
            for target in action.values.values():
                for droplet_id in target.droplet_ids or (len(droplets) + 3164444,):
                    droplets[droplet_id] = {
                        "id": droplet_id,
                        "name": f"droplet-{droplet_id}",
                        "region": DO_REGION,
                        "tags": [target.tag] if target.tag else [],
                        "ip": f"198.51.100.{len(droplets) + 10}",
                    }
            first = action.values[primary]
            target_of = {"tag": first.tag} if first.tag else {"droplet_ids": first.droplet_ids}
            balancers.append(
                {"id": action.load_balancer_id, "name": action.name, "region": DO_REGION}
                | target_of
            )
        else:
            assert not action.type.startswith("do_"), f"add a seed for {action.type} here"
    return {
        "domains": [{"name": name, "records": records} for name, records in domains.items()],
        "droplets": list(droplets.values()),
        "load_balancers": balancers,
    }


def local(config: cfg.Config, sandbox: Sandbox, moto: Moto) -> cfg.Config:
    """config with DigitalOcean in the sandbox and every AWS endpoint on the moto server."""
    data = config.model_dump(mode="json")
    for region in data["regions"]:
        region["endpoint_url"] = moto.url
    responder = data["responder"]
    responder["digitalocean"] = {"api_url": sandbox.url, "token": {"env": TOKEN_ENV}}
    for action in responder["actions"]:
        if action["type"] in ("route53_record", "ssm_parameter"):
            action["endpoint_url"] = moto.url
        if action["type"] == "env_file":
            action["reload_command"] = None
    return cfg.parse(data)


def aws_calls(moto: Moto, since: int) -> dict[str, int]:
    """Calls per AWS service received after the first since recorded ones."""
    counts: dict[str, int] = {}
    for entry in moto.requests()[since:]:
        target = entry["headers"].get("X-Amz-Target", "")
        service = target.split("_")[0].split(".")[0] if target else "Route53"
        counts[service] = counts.get(service, 0) + 1
    return counts


def documented() -> dict[str, tuple[int, int, int]]:
    """docs/plan.md's table: example -> (DigitalOcean, AWS action, DynamoDB) calls."""
    rows = re.findall(
        r"^\| `(examples/[\w.-]+)` \| (\d+) \| (\d+) \| (\d+) \|", DOC.read_text(), re.M
    )
    return {name: (int(do), int(aws), int(reads)) for name, do, aws, reads in rows}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_calls_per_evaluation_are_what_docs_plan_md_says(
    example: Path, servers: tuple[Sandbox, Moto], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, moto = servers
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = local(cfg.load(example), sandbox, moto)
    sandbox.control("POST", "/_sandbox/state", {"seed": seed_for(config)})
    make = aws_client.client_factory(timeout_seconds=10)
    for region in config.region_names:
        dynamodb = make("dynamodb", region, moto.url)
        for table in config.tables:
            if table not in dynamodb.list_tables()["TableNames"]:
                create_table(dynamodb, table, config.canary.key)
            item = {config.canary.key: {"S": config.canary.value}}
            dynamodb.put_item(TableName=table, Item=item)
    actions = registry.build(config, state_dir=Path("/nonexistent"), aws_client_factory=make)
    readiness = ReadinessChecker.from_config(config)
    recorded, aws_writes = len(moto.requests()), len(moto.writes())

    plan = evaluate(
        actions,
        config.region_names,
        config.primary,
        readiness.check,
        config.responder.policy.rpo_seconds,
        Limits(),
    )

    candidates = len(config.region_names) - 1
    assert [r.region for r in plan.regions] == list(config.region_names[1:])
    assert sandbox.writes() == [] and len(moto.writes()) == aws_writes
    counts = aws_calls(moto, recorded)
    reads = counts.pop("DynamoDB", 0)
    do_calls = len(sandbox.requests())
    assert (do_calls % candidates, sum(counts.values()) % candidates) == (0, 0)
    per_candidate = (do_calls, sum(counts.values()), reads)
    expected = tuple(n // candidates for n in per_candidate)
    assert documented().get(f"examples/{example.name}") == expected
