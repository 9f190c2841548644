"""Action do_dns_record: a DigitalOcean DNS record's data to the region's value.

The record is found by type and name among the domain's records. An absent
record is a PermanentError naming it: we do not invent DNS records, and one
missing means the configuration and the zone disagree, which needs a person.
Several records with that type and name (round-robin) are an error too: which
one to change would be a guess. The TTL is kept unless the action sets one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ddb_failover.config import DNSRecordAction
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.actions.inspection import INVALID_TARGET, MISSING, TTL, Limits, Problem
from responder.model.errors import PermanentError


def relative_name(record_name: str, domain: str) -> str:
    """The record name as DigitalOcean lists it: relative to the domain, '@' for the apex."""
    name = record_name.lower().rstrip(".")
    domain = domain.lower().rstrip(".")
    if name in (domain, "@"):
        return "@"
    return name.removesuffix("." + domain)


def normalise_data(record_type: str, data: str) -> str:
    """Record data in one canonical spelling, so equal values compare equal."""
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(data.strip()))
        except ValueError:
            return data.strip()
    # CNAME targets come back with or without the trailing dot.
    return data.strip().lower().rstrip(".")


def valid_data(record_type: str, data: str) -> bool:
    """True when data is an IPv4 address (A), an IPv6 address (AAAA) or a host name (CNAME)."""
    if record_type in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(data.strip())
        except ValueError:
            return False
        return address.version == (4 if record_type == "A" else 6)
    labels = data.strip().rstrip(".").split(".")
    return all(label and len(label) <= 63 for label in labels) and len(data) <= 253


class DNSRecord(Action):
    """Drives one DNS record (domain, type, name) to the region's value."""

    type = "do_dns_record"

    def __init__(self, config: DNSRecordAction, client: DOClient) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client
        self.record_name = relative_name(config.record_name, config.domain)

    @property
    def _label(self) -> str:
        return f"{self.config.record_type} {self.record_name} in {self.config.domain}"

    def _find(self) -> dict[str, Any]:
        domain = self.config.domain
        fqdn = domain if self.record_name == "@" else f"{self.record_name}.{domain}"
        records = self.client.paginate(
            f"{self.name}: list records of {domain}",
            self.client.pydo.domains.list_records,
            "domain_records",
            domain,
            name=fqdn,
            type=self.config.record_type,
        )
        # Filter here too: the filters are a courtesy of the server, not a promise.
        matches = [
            r
            for r in records
            if r.get("type") == self.config.record_type
            and str(r.get("name", "")).lower() == self.record_name
        ]
        if not matches:
            raise PermanentError(f"{self.name}: DNS record {self._label} does not exist", MISSING)
        if len(matches) > 1:
            ids = ", ".join(str(r.get("id")) for r in matches)
            raise PermanentError(
                f"{self.name}: {len(matches)} records {self._label} ({ids})", INVALID_TARGET
            )
        return matches[0]

    def _state(self, data: str, ttl: Any) -> Json:
        state: dict[str, Any] = {"data": normalise_data(self.config.record_type, data)}
        if self.config.ttl is not None:
            state["ttl"] = ttl
        return state

    def current(self) -> Json:
        """{"data"} of the record, with "ttl" when the action manages the TTL."""
        record = self._find()
        return self._state(str(record.get("data", "")), record.get("ttl"))

    def digitalocean_calls(self) -> int:
        """Read, find again and PATCH, read back (one page of records each: name and type)."""
        return 4

    def desired(self, region: str) -> Json:
        """The region's value, and the configured TTL if there is one."""
        return self._state(self.config.values[region], self.config.ttl)

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the region's value fits the record type, and the TTL a failover waits out."""
        value = self.config.values[region]
        if not valid_data(self.config.record_type, value):
            problems.append(
                Problem(
                    INVALID_TARGET,
                    f"{self.name}: the value for {region}, {value!r}, is not a valid "
                    f"{self.config.record_type} record value",
                )
            )
        record = self._find()
        ttl = self.config.ttl if self.config.ttl is not None else record.get("ttl")
        if isinstance(ttl, int) and ttl > limits.max_ttl_seconds:
            problems.append(
                Problem(
                    TTL,
                    f"{self.name}: {self._label} has TTL {ttl} s, over plan.max_ttl_seconds "
                    f"({limits.max_ttl_seconds:g} s): resolvers keep the old address that long",
                    "warning",
                )
            )
        return self._state(str(record.get("data", "")), record.get("ttl"))

    def apply(self, desired: Json, transition: Transition) -> None:
        """PATCH the record's data (and TTL when configured), found afresh by type and name."""
        record_id = int(self._find()["id"])
        # Send the value as configured: desired holds a normalised spelling for comparing.
        data = self.config.values[transition.to_region]
        body: dict[str, Any] = {"type": self.config.record_type, "data": data}
        if "ttl" in desired:
            body["ttl"] = desired["ttl"]
        self.client.call(
            f"{self.name}: update record {self._label}",
            self.client.pydo.domains.patch_record,
            self.config.domain,
            record_id,
            body,
        )
