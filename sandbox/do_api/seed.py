"""The sandbox's seed file format, and the default seed for a ddb-failover stack.

A seed is JSON::

    {"domains": [{"name": "example.test", "ttl": 1800,
                  "records": [{"id": 28448429, "type": "A", "name": "www",
                               "data": "203.0.113.10", "ttl": 60}]}],
     "droplets": [{"id": 3164444, "name": "web-1", "region": "nyc3",
                   "tags": ["web"], "ip": "198.51.100.10"}],
     "load_balancers": [{"id": "<uuid>", "name": "lb", "region": "nyc3",
                         "droplet_ids": [3164444]}]}

Record ids are assigned from 28448429 upwards when left out; a load balancer names
exactly one of droplet_ids or tag.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandbox.do_api.shapes import REGION_NAMES

RecordType = Literal["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"]
FIRST_RECORD_ID = 28448429
FIRST_DROPLET_ID = 3164444
DROPLETS_PER_REGION = 2
DEFAULT_DOMAIN = "example.test"
LB_NAME = "wordpress-lb"
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
    region: str
    droplet_ids: tuple[int, ...] | None = None
    tag: str | None = None
    ip: ipaddress.IPv4Address = ipaddress.IPv4Address("192.0.2.100")
    forwarding_rules: tuple[dict[str, Any], ...] = (
        {"entry_protocol": "http", "entry_port": 80, "target_protocol": "http", "target_port": 80},
    )

    _slug = field_validator("region")(_region_slug)

    @model_validator(mode="after")
    def _one_target(self) -> SeedLoadBalancer:
        if (self.droplet_ids is None) == (self.tag is None):
            raise ValueError("set exactly one of droplet_ids or tag")
        return self


class Seed(_Strict):
    domains: tuple[SeedDomain, ...] = ()
    droplets: tuple[SeedDroplet, ...] = ()
    load_balancers: tuple[SeedLoadBalancer, ...] = ()

    @model_validator(mode="after")
    def _known_droplets(self) -> Seed:
        known = {d.id for d in self.droplets}
        for lb in self.load_balancers:
            missing = sorted(set(lb.droplet_ids or ()) - known)
            if missing:
                raise ValueError(f"load balancer {lb.name!r} names unknown droplets {missing}")
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
    record_values: dict[str, str]
    load_balancer_id: str
    load_balancer_name: str
    droplet_ids: dict[str, list[int]]
    droplet_tags: dict[str, str]
    droplet_regions: dict[str, str]


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

    Per region: a value for the A record "www" and two droplets tagged "wordpress-<region>";
    the record and the load balancer "wordpress-lb" start on the first (primary) region.
    """
    if len(set(regions)) != len(regions) or not regions:
        raise ValueError(f"regions must be distinct and non-empty, got {list(regions)}")
    taken: set[str] = set()
    droplets: list[dict[str, Any]] = []
    objects = SandboxObjects(
        domain=domain,
        record_type="A",
        record_name="www",
        record_id=FIRST_RECORD_ID + 4,  # after the NS and SOA records DigitalOcean creates
        record_values={},
        load_balancer_id=str(uuid.uuid5(_NAMESPACE, LB_NAME)),
        load_balancer_name=LB_NAME,
        droplet_ids={},
        droplet_tags={},
        droplet_regions={},
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
                    "tags": [tag, "wordpress"],
                    "ip": f"198.51.100.{10 + index * 10 + n}",
                    "private_ip": f"10.{index + 10}.0.{n + 2}",
                }
            )
        # TEST-NET-3 addresses: documentation only, never routed.
        objects["record_values"][name] = f"203.0.113.{10 + index * 10}"
        objects["droplet_ids"][name] = ids
        objects["droplet_tags"][name] = tag
        objects["droplet_regions"][name] = slug
    primary = regions[0]
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
        "load_balancers": [
            {
                "id": objects["load_balancer_id"],
                "name": LB_NAME,
                "region": objects["droplet_regions"][primary],
                "droplet_ids": objects["droplet_ids"][primary],
            }
        ],
    }
    Seed.model_validate(seed)  # the builder's own output must be a valid seed
    return seed, objects


def responder_actions(objects: SandboxObjects) -> list[dict[str, Any]]:
    """ddb-failover responder actions (config form) that move the seeded objects per region."""
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
            "name": objects["load_balancer_name"],
            "type": "do_load_balancer",
            "load_balancer_id": objects["load_balancer_id"],
            "values": {r: {"droplet_ids": ids} for r, ids in objects["droplet_ids"].items()},
        },
    ]
