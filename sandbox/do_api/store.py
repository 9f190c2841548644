"""The sandbox's objects and what each API operation does to them (no HTTP here)."""

from __future__ import annotations

import copy
import ipaddress
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.do_api import rules, shapes
from sandbox.do_api.apps import Apps
from sandbox.do_api.errors import not_found, unprocessable
from sandbox.do_api.faults import Fault
from sandbox.do_api.seed import FIRST_RECORD_ID, Seed

CREATED_AT = "2026-01-01T00:00:00Z"


class Store:
    """Domains, records, droplets, load balancers and apps; every method is thread-safe.

    deployment_fault(app_id) says whether a new App Platform deployment is to fail.
    """

    def __init__(self, seed: Seed, deployment_fault: Callable[[str], Fault | None]) -> None:
        self._lock = threading.RLock()
        self.apps = Apps(deployment_fault)
        self.reset(seed)

    def reset(self, seed: Seed) -> None:
        """Forget everything and load seed."""
        with self._lock:
            self._domains: dict[str, dict[str, Any]] = {}
            self._records: dict[str, dict[int, dict[str, Any]]] = {}
            self._droplets: dict[int, dict[str, Any]] = {}
            self._lbs: dict[str, dict[str, Any]] = {}
            self._next_record_id = FIRST_RECORD_ID
            for domain in seed.domains:
                self._domains[domain.name] = {"name": domain.name, "ttl": domain.ttl}
                self._records[domain.name] = {}
                for rec in domain.records:
                    self._add_record(domain.name, rec.model_dump())
            for drop in seed.droplets:
                self._droplets[drop.id] = {
                    **drop.model_dump(mode="json"),
                    "tags": list(drop.tags),
                    "private_ip": str(
                        drop.private_ip or f"10.0.{drop.id % 250}.{drop.id % 200 + 2}"
                    ),
                    "created_at": CREATED_AT,
                    "vpc_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"vpc.{drop.region}")),
                }
            for lb in seed.load_balancers:
                seeded = {k: v for k, v in lb.model_dump(mode="json").items() if v is not None}
                stored = {**copy.deepcopy(shapes.LB_DEFAULTS), **seeded}
                stored.update(
                    forwarding_rules=[dict(r) for r in lb.forwarding_rules],
                    droplet_ids=list(lb.droplet_ids or ()),
                    status="active",
                    created_at=CREATED_AT,
                )
                self._lbs[stored["id"]] = stored
            self.apps.reset([(str(a.id), a.spec, a.deploy_seconds) for a in seed.apps])

    def dump(self) -> dict[str, Any]:
        """Everything, in API shapes, for tests and the control endpoint."""
        with self._lock:
            return {
                "domains": [
                    {**self._domain_view(name), "records": self._record_views(name)}
                    for name in self._domains
                ],
                "droplets": [shapes.droplet(d) for d in self._droplets.values()],
                "load_balancers": [self._lb_view(lb) for lb in self._lbs.values()],
                "apps": self.apps.list_apps(),
            }

    # Domains and records

    def list_domains(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._domain_view(name) for name in self._domains]

    def get_domain(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._domain(name)
            return self._domain_view(name)

    def list_records(
        self, domain: str, name: str | None = None, rtype: str | None = None
    ) -> list[dict[str, Any]]:
        """Records of domain; name is fully qualified, as DigitalOcean's filter takes it."""
        with self._lock:
            self._domain(domain)
            views = self._record_views(domain)
            if name is not None:
                views = [r for r in views if _fqdn(r["name"], domain) == name.rstrip(".")]
            if rtype is not None:
                views = [r for r in views if r["type"] == rtype]
            return views

    def get_record(self, domain: str, record_id: int) -> dict[str, Any]:
        with self._lock:
            return shapes.record(self._record(domain, record_id))

    def create_record(self, domain: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._domain(domain)
            _check_record(body)
            return shapes.record(self._add_record(domain, body))

    def update_record(self, domain: str, record_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """PUT and PATCH: set the fields given; the type of a record cannot change."""
        with self._lock:
            stored = self._record(domain, record_id)
            if body.get("type", stored["type"]) != stored["type"]:
                raise unprocessable(
                    f"type cannot be changed (record {record_id} is {stored['type']})"
                )
            updated = {**stored, **{k: v for k, v in body.items() if k != "id"}}
            _check_record(updated)
            stored.update(updated)
            return shapes.record(stored)

    def delete_record(self, domain: str, record_id: int) -> None:
        with self._lock:
            self._record(domain, record_id)
            del self._records[domain][record_id]

    # Droplets

    def list_droplets(
        self, tag_name: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                d
                for d in self._droplets.values()
                if (tag_name is None or tag_name in d["tags"])
                and (name is None or d["name"] == name)
            ]
            return [shapes.droplet(d) for d in found]

    def get_droplet(self, droplet_id: int) -> dict[str, Any]:
        with self._lock:
            if droplet_id not in self._droplets:
                raise not_found()
            return shapes.droplet(self._droplets[droplet_id])

    # Load balancers

    def list_load_balancers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._lb_view(lb) for lb in self._lbs.values()]

    def get_load_balancer(self, lb_id: str) -> dict[str, Any]:
        with self._lock:
            return self._lb_view(self._lb(lb_id))

    def update_load_balancer(self, lb_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT: a full representation; left-out settings return to their defaults.

        Neither the region nor the type can change; droplets by id must be in a regional
        load balancer's region; global settings must hold DigitalOcean's rules.
        """
        with self._lock:
            stored = self._lb(lb_id)
            if body["region"] != stored["region"]:
                raise unprocessable(
                    f"region cannot be changed (load balancer is in {stored['region']})"
                )
            kind = body.get("type", "REGIONAL")
            if kind != stored["type"]:
                raise unprocessable(f"type cannot be changed (load balancer is {stored['type']})")
            new = {k: stored[k] for k in ("id", "ip", "status", "created_at", "region")}
            new.update({k: stored[k] for k in shapes.LB_KEPT if k in stored})
            new.update(copy.deepcopy(shapes.LB_DEFAULTS))
            new.update({k: copy.deepcopy(v) for k, v in body.items() if k in shapes.LB_WRITABLE})
            new["type"] = kind
            new["droplet_ids"] = list(dict.fromkeys(body.get("droplet_ids", ())))
            new["tag"] = body.get("tag")
            rules.check_droplets(new, new["droplet_ids"], self._droplets)
            rules.check_global_settings(lb_id, new, self._lbs)
            stored.clear()
            stored.update(new)
            return self._lb_view(stored)

    def add_lb_droplets(self, lb_id: str, droplet_ids: list[int]) -> None:
        with self._lock:
            stored = self._lb(lb_id)
            self._refuse_if_tagged(stored)
            rules.check_droplets(stored, droplet_ids, self._droplets)
            stored["droplet_ids"] = list(dict.fromkeys([*stored["droplet_ids"], *droplet_ids]))

    def remove_lb_droplets(self, lb_id: str, droplet_ids: list[int]) -> None:
        with self._lock:
            stored = self._lb(lb_id)
            self._refuse_if_tagged(stored)
            stored["droplet_ids"] = [d for d in stored["droplet_ids"] if d not in droplet_ids]

    # Internals (callers hold the lock)

    def _domain(self, name: str) -> dict[str, Any]:
        if name not in self._domains:
            raise not_found()
        return self._domains[name]

    def _record(self, domain: str, record_id: int) -> dict[str, Any]:
        self._domain(domain)
        if record_id not in self._records[domain]:
            raise not_found()
        return self._records[domain][record_id]

    def _add_record(self, domain: str, fields: dict[str, Any]) -> dict[str, Any]:
        record_id = fields.get("id") or self._next_record_id
        self._next_record_id = max(self._next_record_id, record_id + 1)
        stored = {**shapes.record({}), "ttl": 1800, **fields, "id": record_id}
        self._records[domain][record_id] = stored
        return stored

    def _record_views(self, domain: str) -> list[dict[str, Any]]:
        return [shapes.record(r) for r in self._records[domain].values()]

    def _domain_view(self, name: str) -> dict[str, Any]:
        domain = self._domains[name]
        lines = [f"$ORIGIN {name}.", f"$TTL {domain['ttl']}"]
        lines += [
            f"{_fqdn(r['name'], name)}. {r['ttl']} IN {r['type']} {r['data']}"
            for r in self._records[name].values()
        ]
        return {"name": name, "ttl": domain["ttl"], "zone_file": "\n".join(lines) + "\n"}

    def _lb(self, lb_id: str) -> dict[str, Any]:
        if lb_id not in self._lbs:
            raise not_found()
        return self._lbs[lb_id]

    def _lb_view(self, stored: dict[str, Any]) -> dict[str, Any]:
        # A tagged load balancer balances whatever droplets carry the tag right now.
        return shapes.load_balancer(stored, rules.backends(stored, self._droplets))

    @staticmethod
    def _refuse_if_tagged(stored: dict[str, Any]) -> None:
        if stored.get("tag"):
            raise unprocessable(
                f"load balancer targets droplets by tag {stored['tag']!r}; "
                "droplets cannot be added or removed by id"
            )


def _fqdn(name: str, domain: str) -> str:
    return domain if name == "@" else f"{name}.{domain}"


def _check_record(fields: dict[str, Any]) -> None:
    """The record-level rules DigitalOcean enforces beyond the schema."""
    rtype, data, ttl = fields.get("type"), fields.get("data"), fields.get("ttl")
    if ttl is not None and ttl < 30:
        raise unprocessable(f"ttl must be at least 30 seconds, got {ttl}")
    if rtype in ("A", "AAAA") and data is not None:
        version = 4 if rtype == "A" else 6
        try:
            valid = ipaddress.ip_address(data).version == version
        except ValueError:
            valid = False
        if not valid:
            raise unprocessable(
                f"data: {data!r} is not an IPv{version} address for an {rtype} record"
            )
