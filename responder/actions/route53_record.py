"""Action route53_record: UPSERT a Route 53 record set to the region's value.

UPSERT creates the record set when it is absent (unlike do_dns_record, which
refuses to invent records): Route 53's own contract for the operation. After the
change the action waits for Route 53 to report it INSYNC (moto does at once); a
change still PENDING after the sync timeout is a TemporaryError, and the retry
then finds the record already right and reports `unchanged`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ddb_failover.config import Route53Action
from responder.actions.aws_client import translated
from responder.actions.base import Action, Json, Transition
from responder.actions.do_dns_record import valid_data
from responder.actions.inspection import INVALID_TARGET, MISSING, TTL, Limits, Problem
from responder.model import fence
from responder.model.errors import TemporaryError

DEFAULT_SYNC_TIMEOUT_SECONDS = 120.0


def fqdn(name: str) -> str:
    """A record name as Route 53 lists it: lower case, with the trailing dot."""
    return name.lower().rstrip(".") + "."


def _unescape(name: str) -> str:
    # Route 53 lists some characters octal-escaped, the wildcard above all: \052 is '*'.
    return name.replace("\\052", "*")


def record_value(record_type: str, value: str) -> str:
    """A value as Route 53 stores it: TXT values quoted."""
    if record_type == "TXT" and not value.startswith('"'):
        return '"' + value.replace('"', '\\"') + '"'
    if record_type == "CNAME":
        return value.rstrip(".") + "."
    return value


def describe(record_set: dict[str, Any] | None) -> Json:
    """The comparable state of a listed record set; None when absent."""
    if record_set is None:
        return None
    if "AliasTarget" in record_set:
        # An alias has no TTL or values of its own; show what it points at.
        return {"alias": record_set["AliasTarget"].get("DNSName")}
    values = sorted(record["Value"] for record in record_set.get("ResourceRecords", []))
    if record_set["Type"] == "CNAME":
        values = [value.rstrip(".") + "." for value in values]
    return {"values": values, "ttl": record_set.get("TTL")}


class Route53Record(Action):
    """Drives one Route 53 record set (name, type) to the region's single value."""

    type = "route53_record"

    def __init__(
        self,
        config: Route53Action,
        client: Any,
        sync_timeout_seconds: float = DEFAULT_SYNC_TIMEOUT_SECONDS,
        poll_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client
        self.sync_timeout_seconds = sync_timeout_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep

    def current(self) -> Json:
        """{"values", "ttl"} of the record set, {"alias"} for an alias; None when absent."""
        name = fqdn(self.config.record_name)
        with translated(f"{self.name}: list_resource_record_sets {name}"):
            response = self.client.list_resource_record_sets(
                HostedZoneId=self.config.hosted_zone_id,
                StartRecordName=name,
                StartRecordType=self.config.record_type,
                MaxItems="1",
            )
        # The listing starts at (name, type) but returns the next record when that one is absent.
        for record_set in response.get("ResourceRecordSets", []):
            same_name = fqdn(_unescape(record_set["Name"])) == name
            if same_name and record_set["Type"] == self.config.record_type:
                return describe(record_set)
        return None

    def desired(self, region: str) -> Json:
        """The region's value with the configured TTL."""
        value = record_value(self.config.record_type, self.config.values[region])
        return {"values": [value], "ttl": self.config.ttl}

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the record set exists, the region's value fits its type, the TTL is short."""
        label = f"{self.config.record_type} {fqdn(self.config.record_name)}"
        value = self.config.values[region]
        if self.config.record_type != "TXT" and not valid_data(self.config.record_type, value):
            problems.append(
                Problem(
                    INVALID_TARGET,
                    f"{self.name}: the value for {region}, {value!r}, is not a valid "
                    f"{self.config.record_type} record value",
                )
            )
        if self.config.ttl > limits.max_ttl_seconds:
            problems.append(
                Problem(
                    TTL,
                    f"{self.name}: {label} gets TTL {self.config.ttl} s, over "
                    f"plan.max_ttl_seconds ({limits.max_ttl_seconds:g} s)",
                    "warning",
                )
            )
        current = self.current()
        if current is None:
            problems.append(
                Problem(
                    MISSING,
                    f"{self.name}: record set {label} does not exist in hosted zone "
                    f"{self.config.hosted_zone_id} (a failover would create it: who removed it?)",
                )
            )
        return current

    def apply(self, desired: Json, transition: Transition) -> None:
        """UPSERT the record set, then wait until Route 53 reports the change INSYNC."""
        name = fqdn(self.config.record_name)
        fence.check(f"{self.name}: change_resource_record_sets UPSERT {name}")
        with translated(f"{self.name}: change_resource_record_sets UPSERT {name}"):
            response = self.client.change_resource_record_sets(
                HostedZoneId=self.config.hosted_zone_id,
                ChangeBatch={
                    "Comment": f"ddb-failover transition {transition.id}",
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": name,
                                "Type": self.config.record_type,
                                "TTL": desired["ttl"],
                                "ResourceRecords": [{"Value": v} for v in desired["values"]],
                            },
                        }
                    ],
                },
            )
        self._wait_insync(response["ChangeInfo"])

    def _wait_insync(self, change: dict[str, Any]) -> None:
        # moto reports INSYNC at once; real Route 53 takes tens of seconds.
        deadline = self.clock() + self.sync_timeout_seconds
        while change.get("Status") != "INSYNC":
            if self.clock() >= deadline:
                raise TemporaryError(
                    f"{self.name}: change {change.get('Id')} not INSYNC after "
                    f"{self.sync_timeout_seconds:g}s"
                )
            self.sleep(self.poll_seconds)
            with translated(f"{self.name}: get_change {change.get('Id')}"):
                change = self.client.get_change(Id=change["Id"])["ChangeInfo"]
