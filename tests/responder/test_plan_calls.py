"""How many API calls one plan evaluation makes for each example configuration.

Counted in the DigitalOcean sandbox's request log and a moto server's recording, and
compared with the table in docs/plan.md, so the documented figures cannot drift.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddb_failover import config as cfg
from responder.actions import aws_client, registry
from responder.actions.do_dns_record import relative_name
from responder.actions.inspection import Limits
from responder.decide.readiness import ReadinessChecker
from responder.plan.budget import reserve
from responder.plan.plan import evaluate
from sandbox.regions import create_table
from tests.config.test_examples import TOPOLOGIES
from tests.responder.dosandbox import TOKEN, Sandbox
from tests.responder.test_actions_aws import Moto

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO / "examples" / name for name in TOPOLOGIES)  # not the overrides
DOC = REPO / "docs" / "plan.md"
DO_REGION = "nyc3"
FIRST_DROPLET_ID = 3164444
TOKEN_ENV = "DDB_TEST_PLAN_DO_TOKEN"
DO_HOURLY_LIMIT = 5000


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Moto]]:
    sandbox = Sandbox(tmp_path_factory.mktemp("do_api"))
    moto = Moto(tmp_path_factory.mktemp("moto"))
    yield sandbox, moto
    moto.close()
    sandbox.close()


def seed_for(config: cfg.Config) -> dict[str, Any]:
    """A DigitalOcean seed holding every object the config's DO actions name, as it is
    before any failover (on the primary), within DigitalOcean's rules."""
    seed: dict[str, list[dict[str, Any]]] = {
        "domains": [],
        "droplets": [],
        "load_balancers": [],
        "apps": [],
    }
    domains: dict[str, list[dict[str, Any]]] = {}
    for action in config.responder.actions:
        if isinstance(action, cfg.DNSRecordAction):
            domains.setdefault(action.domain, []).append(_record(action, config.primary))
        elif isinstance(action, cfg.LoadBalancerAction):
            _add_load_balancer(seed, action, config.primary)
        elif isinstance(action, cfg.GlobalLoadBalancerAction):
            _add_global_load_balancer(seed, action, config.primary)
        elif isinstance(action, cfg.AppEnvAction):
            seed["apps"].append(_app(action, config.primary))
        else:
            assert not action.type.startswith("do_"), f"add a seed for {action.type} here"
    seed["domains"] = [{"name": name, "records": rs} for name, rs in domains.items()]
    return seed


def _record(action: cfg.DNSRecordAction, primary: str) -> dict[str, Any]:
    return {
        "type": action.record_type,
        "name": relative_name(action.record_name, action.domain),
        "data": action.values[primary],
        "ttl": action.ttl or 60,
    }


def _droplet(seed: dict[str, Any], region: str, tag: str | None) -> int:
    """A new droplet in region, with tag; its id."""
    droplet_id = FIRST_DROPLET_ID + len(seed["droplets"])
    seed["droplets"].append(
        {
            "id": droplet_id,
            "name": f"droplet-{droplet_id}",
            "region": region,
            "tags": [tag] if tag else [],
            "ip": f"198.51.100.{len(seed['droplets']) + 10}",
        }
    )
    return droplet_id


def _add_load_balancer(seed: dict[str, Any], action: cfg.LoadBalancerAction, primary: str) -> None:
    """The regional load balancer and every target's droplets, all in its region."""
    region = action.region or DO_REGION
    targets: dict[str, Any] = {}
    for name, target in action.values.items():
        ids = [_droplet(seed, region, None) for _ in target.droplet_ids or ()]
        if target.tag:
            _droplet(seed, region, target.tag)
        targets[name] = {"tag": target.tag} if target.tag else {"droplet_ids": ids}
    balancer = {"id": action.load_balancer_id, "name": action.name, "region": region}
    seed["load_balancers"].append(balancer | targets[primary])


def _add_global_load_balancer(
    seed: dict[str, Any], action: cfg.GlobalLoadBalancerAction, primary: str
) -> None:
    """The Global Load Balancer over one regional load balancer per region, primary first."""
    slugs = [action.values[primary], *(s for r, s in action.values.items() if r != primary)]
    regional = []
    for slug in slugs:
        lb_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{action.load_balancer_id}/{slug}"))
        droplet_id = _droplet(seed, slug, None)
        seed["load_balancers"].append(
            {"id": lb_id, "name": f"web-{slug}", "region": slug, "droplet_ids": [droplet_id]}
        )
        regional.append(lb_id)
    seed["load_balancers"].append(
        {
            "id": action.load_balancer_id,
            "name": action.name,
            "type": "GLOBAL",
            "region": slugs[0],
            "droplet_ids": [],
            "target_load_balancer_ids": regional,
            "glb_settings": {"region_priorities": {s: n for n, s in enumerate(slugs, start=1)}},
        }
    )


def _app(action: cfg.AppEnvAction, primary: str) -> dict[str, Any]:
    """The app with the variable on the primary's value, where the action keeps it."""
    value = (action.values or {}).get(primary, primary)
    env = {"key": action.variable, "value": value, "scope": "RUN_TIME"}
    web: dict[str, Any] = {"name": action.component or "web", "http_port": 80}
    web["image"] = {"registry_type": "DOCKER_HUB", "repository": "wordpress", "tag": "6"}
    spec: dict[str, Any] = {"name": action.name, "services": [web]}
    (web if action.component else spec)["envs"] = [env]
    return {"id": action.app_id, "spec": spec}


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


def doc_table(heading: str) -> dict[str, tuple[int, ...]]:
    """The numbers of each example's row in the table under heading in docs/plan.md."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(examples/[\w.-]+)` \|((?: [\d,]+ \|)+)$", section, re.M)
    return {
        name: tuple(int(n.replace(",", "")) for n in cells.split("|") if n.strip())
        for name, cells in rows
    }


def documented() -> dict[str, tuple[int, ...]]:
    """docs/plan.md's table: example -> (DigitalOcean, AWS action, DynamoDB) calls."""
    return doc_table("API calls per evaluation")


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
    # The budget: the reserve, when the plan warns, and how long one token lasts.
    keep = reserve(actions)
    assert plan.digitalocean is not None and plan.digitalocean.calls == do_calls
    hourly = do_calls * round(3600 / config.responder.plan.interval_seconds)
    replicas = (DO_HOURLY_LIMIT - 3 * keep) // hourly
    budget = (do_calls, keep, 3 * keep, hourly, replicas)
    assert doc_table("DigitalOcean's API budget").get(f"examples/{example.name}") == budget


def test_docs_plan_md_has_a_row_for_every_example_and_no_other() -> None:
    assert sorted(documented()) == [f"examples/{p.name}" for p in EXAMPLES]
    assert sorted(doc_table("DigitalOcean's API budget")) == sorted(documented())
