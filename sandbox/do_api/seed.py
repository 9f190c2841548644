"""The sandbox's seed file format, and the default seed for a ddb-failover stack.

A seed is JSON::

    {"domains": [{"name": "example.test", "ttl": 1800,
                  "records": [{"id": 28448429, "type": "A", "name": "www",
                               "data": "203.0.113.10", "ttl": 60}]}],
     "droplets": [{"id": 3164444, "name": "web-1", "region": "nyc3",
                   "tags": ["web"], "ip": "198.51.100.10"}],
     "load_balancers": [{"id": "<uuid>", "name": "lb", "region": "nyc3",
                         "droplet_ids": [3164444]},
                        {"id": "<uuid>", "name": "glb", "region": "nyc3", "type": "GLOBAL",
                         "droplet_ids": [], "target_load_balancer_ids": ["<uuid>"],
                         "glb_settings": {"region_priorities": {"nyc3": 1}}}],
     "apps": [{"id": "<uuid>", "deploy_seconds": 2.0,
               "spec": {"name": "wordpress", "envs": [{"key": "K", "value": "v"}]}}]}

Record ids are assigned from 28448429 upwards when left out; a load balancer names
exactly one of droplet_ids or tag. The seed keeps the API's own rules (sandbox.do_api.rules):
a regional load balancer's droplets are in its region, a global one targets regional ones.
An app starts with its spec deployed (ACTIVE); later deployments take deploy_seconds.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandbox.do_api import rules
from sandbox.do_api.shapes import REGION_NAMES

RecordType = Literal["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"]
FIRST_RECORD_ID = 28448429
FIRST_DROPLET_ID = 3164444
DROPLETS_PER_REGION = 2
DEFAULT_DOMAIN = "example.test"
GLB_NAME = "wordpress-glb"
APP_NAME = "wordpress"
# Every WordPress droplet carries it; each regional load balancer targets it.
SHARED_TAG = "wordpress"
_NAMESPACE = uuid.UUID("8c7f3a52-6a55-4b0e-9a0c-2f1c7e0d9b11")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _region_slug(slug: str) -> str:
    if slug not in REGION_NAMES:
        raise ValueError(f"unknown DigitalOcean region {slug!r}; one of {sorted(REGION_NAMES)}")
    return slug


class SeedRecord(_Strict):
    id: int | None = Field(default=None, ge=1)
    type: RecordType
    name: str = Field(min_length=1)
    data: str = Field(min_length=1)
    ttl: int = Field(default=1800, ge=30)
    priority: int | None = None
    port: int | None = None
    weight: int | None = None
    flags: int | None = None
    tag: str | None = None


class SeedDomain(_Strict):
    name: str = Field(min_length=1)
    ttl: int = Field(default=1800, ge=30)
    records: tuple[SeedRecord, ...] = ()


class SeedDroplet(_Strict):
    id: int = Field(ge=1)
    name: str = Field(min_length=1)
    region: str
    tags: tuple[str, ...] = ()
    ip: ipaddress.IPv4Address
    private_ip: ipaddress.IPv4Address | None = None
    size_slug: str = "s-1vcpu-1gb"
    status: Literal["new", "active", "off", "archive"] = "active"

    _slug = field_validator("region")(_region_slug)


class SeedLoadBalancer(_Strict):
    id: uuid.UUID
    name: str = Field(min_length=1)
    # Every load balancer has one: DigitalOcean's description requires it in every PUT body.
    region: str
    type: Literal["REGIONAL", "REGIONAL_NETWORK", "GLOBAL"] = "REGIONAL"
    droplet_ids: tuple[int, ...] | None = None
    tag: str | None = None
    ip: ipaddress.IPv4Address = ipaddress.IPv4Address("192.0.2.100")
    forwarding_rules: tuple[dict[str, Any], ...] = (
        {"entry_protocol": "http", "entry_port": 80, "target_protocol": "http", "target_port": 80},
    )
    target_load_balancer_ids: tuple[uuid.UUID, ...] | None = None
    glb_settings: dict[str, Any] | None = None
    domains: tuple[dict[str, Any], ...] | None = None

    _slug = field_validator("region")(_region_slug)

    @model_validator(mode="after")
    def _one_target(self) -> SeedLoadBalancer:
        if (self.droplet_ids is None) == (self.tag is None):
            raise ValueError("set exactly one of droplet_ids or tag")
        return self


class SeedApp(_Strict):
    """An App Platform app, deployed (ACTIVE) at start; deploy_seconds for later deployments."""

    id: uuid.UUID
    spec: dict[str, Any]
    deploy_seconds: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _spec_rules(self) -> SeedApp:
        if not isinstance(self.spec.get("name"), str):
            raise ValueError("spec: name is required")
        rules.check_app_spec(self.spec)
        return self


class Seed(_Strict):
    domains: tuple[SeedDomain, ...] = ()
    droplets: tuple[SeedDroplet, ...] = ()
    load_balancers: tuple[SeedLoadBalancer, ...] = ()
    apps: tuple[SeedApp, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Seed:
        """The API's own rules hold for the seed: droplets exist and are in the right region."""
        droplets = {d.id: d.model_dump(mode="json") for d in self.droplets}
        balancers = {str(lb.id): lb.model_dump(mode="json") for lb in self.load_balancers}
        for lb_id, lb in balancers.items():
            try:
                rules.check_droplets(lb, lb["droplet_ids"] or (), droplets)
                rules.check_global_settings(lb_id, lb, balancers)
            except rules.RuleBroken as broken:
                raise ValueError(f"load balancer {lb['name']!r}: {broken}") from None
        return self


def load_seed(path: Path) -> Seed:
    """Read and check a seed file; ValueError naming the file and the problem."""
    try:
        return Seed.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read seed {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid seed {path}: {problems}") from exc


class SandboxObjects(TypedDict):
    """What the default seed created, per ddb-failover region, for writing actions."""

    domain: str
    record_type: str
    record_name: str
    record_id: int
    record_values: dict[str, str]  # per region: its regional load balancer's IP
    load_balancer_ids: dict[str, str]  # per region: the load balancer of its droplets
    load_balancer_names: dict[str, str]
    global_load_balancer_id: str
    global_load_balancer_name: str
    droplet_ids: dict[str, list[int]]
    droplet_tags: dict[str, str]
    droplet_regions: dict[str, str]  # per region: its DigitalOcean region slug
    app_id: str
    app_name: str


# The DigitalOcean region nearest each AWS region family, tried in this order.
_NEAREST = (
    ("us-east", "nyc3"),
    ("us-west", "sfo3"),
    ("ca-", "tor1"),
    ("eu-west-2", "lon1"),
    ("eu-west", "ams3"),
    ("eu-central", "fra1"),
    ("eu-", "lon1"),
    ("ap-southeast-2", "syd1"),
    ("ap-southeast", "sgp1"),
    ("ap-south", "blr1"),
)


def do_region_for(aws_region: str, taken: set[str]) -> str:
    """A DigitalOcean region slug near aws_region, distinct from those taken where possible."""
    preferred = [slug for prefix, slug in _NEAREST if aws_region.startswith(prefix)]
    for slug in [*preferred, *REGION_NAMES]:
        if slug not in taken:
            return slug
    return preferred[0] if preferred else "nyc3"


def default_seed(
    regions: Sequence[str], domain: str = DEFAULT_DOMAIN
) -> tuple[dict[str, Any], SandboxObjects]:
    """The seed for a ddb-failover sandbox over regions (priority order), and its objects.

    Each region gets a DigitalOcean region near it with two WordPress droplets (tagged
    "wordpress-<region>" and "wordpress") and a regional load balancer "wordpress-<slug>"
    balancing them by the tag "wordpress" (so, on DigitalOcean's rules, only its own
    region's). The A record "www" points at the primary's load balancer; the Global Load
    Balancer "wordpress-glb" targets every regional one, the primary's region first. The
    App Platform app "wordpress" has DYNAMODB_REGION (app level) set to the primary.
    """
    if len(set(regions)) != len(regions) or not regions:
        raise ValueError(f"regions must be distinct and non-empty, got {list(regions)}")
    taken: set[str] = set()
    droplets: list[dict[str, Any]] = []
    balancers: list[dict[str, Any]] = []
    objects = SandboxObjects(
        domain=domain,
        record_type="A",
        record_name="www",
        record_id=FIRST_RECORD_ID + 4,  # after the NS and SOA records DigitalOcean creates
        record_values={},
        load_balancer_ids={},
        load_balancer_names={},
        global_load_balancer_id=str(uuid.uuid5(_NAMESPACE, GLB_NAME)),
        global_load_balancer_name=GLB_NAME,
        droplet_ids={},
        droplet_tags={},
        droplet_regions={},
        app_id=str(uuid.uuid5(_NAMESPACE, APP_NAME)),
        app_name=APP_NAME,
    )
    for index, name in enumerate(regions):
        slug = do_region_for(name, taken)
        taken.add(slug)
        tag = f"wordpress-{name}"
        ids = [
            FIRST_DROPLET_ID + index * DROPLETS_PER_REGION + n for n in range(DROPLETS_PER_REGION)
        ]
        for n, droplet_id in enumerate(ids):
            droplets.append(
                {
                    "id": droplet_id,
                    "name": f"wordpress-{name}-{n + 1}",
                    "region": slug,
                    "tags": [tag, SHARED_TAG],
                    "ip": f"198.51.100.{10 + index * 10 + n}",
                    "private_ip": f"10.{index + 10}.0.{n + 2}",
                }
            )
        lb_name = f"wordpress-{slug}"
        lb_id = str(uuid.uuid5(_NAMESPACE, lb_name))
        # TEST-NET-3 addresses: documentation only, never routed.
        lb_ip = f"203.0.113.{10 + index * 10}"
        balancers.append(
            {"id": lb_id, "name": lb_name, "region": slug, "tag": SHARED_TAG, "ip": lb_ip}
        )
        objects["record_values"][name] = lb_ip
        objects["load_balancer_ids"][name] = lb_id
        objects["load_balancer_names"][name] = lb_name
        objects["droplet_ids"][name] = ids
        objects["droplet_tags"][name] = tag
        objects["droplet_regions"][name] = slug
    primary = regions[0]
    slugs = list(objects["droplet_regions"].values())
    balancers.append(
        {
            "id": objects["global_load_balancer_id"],
            "name": GLB_NAME,
            "type": "GLOBAL",
            "region": slugs[0],
            "droplet_ids": [],
            "ip": "192.0.2.50",
            "target_load_balancer_ids": list(objects["load_balancer_ids"].values()),
            "glb_settings": {
                "target_protocol": "http",
                "target_port": 80,
                "region_priorities": {slug: n + 1 for n, slug in enumerate(slugs)},
                "failover_threshold": 50,
            },
            "domains": [{"name": f"glb.{domain}", "is_managed": True}],
        }
    )
    records = [
        {
            "id": FIRST_RECORD_ID + i,
            "type": "NS",
            "name": "@",
            "data": f"ns{i + 1}.digitalocean.com",
        }
        for i in range(3)
    ]
    records.append({"id": FIRST_RECORD_ID + 3, "type": "SOA", "name": "@", "data": "1800"})
    records.append(
        {
            "id": objects["record_id"],
            "type": "A",
            "name": "www",
            "data": objects["record_values"][primary],
            "ttl": 60,
        }
    )
    seed = {
        "domains": [{"name": domain, "ttl": 1800, "records": records}],
        "droplets": droplets,
        "load_balancers": balancers,
        "apps": [{"id": objects["app_id"], "spec": app_spec(primary), "deploy_seconds": 1.0}],
    }
    Seed.model_validate(seed)  # the builder's own output must be a valid seed
    return seed, objects


def app_spec(region: str) -> dict[str, Any]:
    """The App Platform spec of the seeded WordPress app, its DYNAMODB_REGION on region."""
    image = {
        "registry_type": "DOCKER_HUB",
        "registry": "library",
        "repository": "wordpress",
        "tag": "6-php8.2-apache",
    }
    return {
        "name": APP_NAME,
        "region": "nyc",
        "envs": [{"key": "DYNAMODB_REGION", "value": region, "scope": "RUN_TIME"}],
        "services": [
            {
                "name": "web",
                "image": image,
                "http_port": 80,
                "instance_count": 2,
                "instance_size_slug": "apps-s-1vcpu-1gb",
                "envs": [{"key": "WORDPRESS_TABLE_PREFIX", "value": "wp_", "scope": "RUN_TIME"}],
            }
        ],
        "workers": [{"name": "cron", "image": image, "run_command": "wp cron event run"}],
    }


def responder_actions(objects: SandboxObjects) -> list[dict[str, Any]]:
    """ddb-failover responder actions (config form) that move the seeded objects per region.

    DNS moves "www" between the regional load balancers; the Global Load Balancer's region
    priorities put the target region first. Both are moves DigitalOcean accepts.
    """
    return [
        {
            "name": objects["record_name"],
            "type": "do_dns_record",
            "domain": objects["domain"],
            "record_type": objects["record_type"],
            "record_name": objects["record_name"],
            "ttl": 60,
            "values": dict(objects["record_values"]),
        },
        {
            "name": objects["global_load_balancer_name"],
            "type": "do_global_load_balancer",
            "load_balancer_id": objects["global_load_balancer_id"],
            "values": dict(objects["droplet_regions"]),
        },
    ]
