"""route53_record and ssm_parameter against a real moto server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ddb_failover.config import Route53Action, SSMParameterAction
from responder.actions import aws_client
from responder.actions.base import Transition, reconcile
from responder.actions.inspection import Limits
from responder.actions.route53_record import Route53Record
from responder.actions.ssm_parameter import SSMParameter
from responder.model.errors import PermanentError, TemporaryError
from sandbox.net import free_port, port_open, wait_until

EAST, WEST = "us-east-1", "eu-west-1"
VALUES = {EAST: "203.0.113.10", WEST: "198.51.100.20"}
# Generous for a loaded machine; the paused-server test uses its own short one.
TIMEOUT = 10.0
SHORT_TIMEOUT = 1.0


def transition(to: str = WEST, dry_run: bool = False) -> Transition:
    return Transition(id="t-1", kind="failover", from_region=EAST, to_region=to, dry_run=dry_run)


class Moto:
    """One moto server process recording every request it receives to a file."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = workdir / "moto-requests.jsonl"
        env = {
            **os.environ,
            "MOTO_ENABLE_RECORDING": "1",
            "MOTO_RECORDER_FILEPATH": str(self.recording),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        wait_until(lambda: port_open(self.port), 30, message="moto server")
        # moto loads SSM's public parameters on first use, which outlasts our short timeouts.
        warm = aws_client.client_factory(timeout_seconds=30)("ssm", EAST, self.url)
        warm.describe_parameters(MaxResults=1)

    def requests(self) -> list[dict[str, Any]]:
        if not self.recording.exists():
            return []
        return [json.loads(line) for line in self.recording.read_text().splitlines() if line]

    def writes(self) -> list[str]:
        """The mutating calls received so far, as 'SSM:PutParameter' or 'POST /path'."""
        found = []
        for entry in self.requests():
            target = entry["headers"].get("X-Amz-Target", "")
            if target:
                operation = target.split(".")[-1]
                if not operation.startswith(("Get", "Describe", "List")):
                    found.append(f"SSM:{operation}")
            elif entry["method"] != "GET":
                found.append(f"{entry['method']} {urlsplit(entry['url']).path.rstrip('/')}")
        return found

    def close(self) -> None:
        # A stopped process ignores SIGKILL until continued; continue it first.
        os.killpg(self.process.pid, signal.SIGCONT)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def make_client(moto: Moto) -> Any:
    factory = aws_client.client_factory(timeout_seconds=TIMEOUT)
    return lambda service, region=EAST: factory(service, region, moto.url)


@pytest.fixture
def zone(make_client: Any) -> str:
    client = make_client("route53")
    # Route 53 allows several zones of one name: each test gets its own.
    reference = f"test-{time.monotonic_ns()}"
    created = client.create_hosted_zone(Name="example.com.", CallerReference=reference)
    zone_id: str = created["HostedZone"]["Id"]
    return zone_id.split("/")[-1]


def route53_action(zone: str, **overrides: Any) -> Route53Action:
    fields = {
        "type": "route53_record",
        "name": "apex",
        "hosted_zone_id": zone,
        "record_name": "www.example.com",
        "values": VALUES,
    } | overrides
    return Route53Action.model_validate(fields)


def upsert(client: Any, zone: str, name: str, value: str, ttl: int = 60, kind: str = "A") -> None:
    record = {"Name": name, "Type": kind, "TTL": ttl, "ResourceRecords": [{"Value": value}]}
    client.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]},
    )


# --- route53_record ---


def test_route53_already_desired_is_unchanged_without_a_write(
    moto: Moto, make_client: Any, zone: str
) -> None:
    client = make_client("route53")
    upsert(client, zone, "www.example.com.", VALUES[WEST])
    action = Route53Record(route53_action(zone), client)
    writes = len(moto.writes())

    outcome = reconcile(action, transition(WEST))

    assert outcome.result == "unchanged"
    assert outcome.before == {"values": [VALUES[WEST]], "ttl": 60}
    assert len(moto.writes()) == writes


def test_route53_different_value_is_upserted_and_verified(
    moto: Moto, make_client: Any, zone: str
) -> None:
    client = make_client("route53")
    upsert(client, zone, "www.example.com.", VALUES[EAST], ttl=300)
    # A neighbour that sorts right after ours must be left alone.
    upsert(client, zone, "www2.example.com.", "192.0.2.1")
    action = Route53Record(route53_action(zone), client)
    writes = len(moto.writes())

    outcome = reconcile(action, transition(WEST))

    assert outcome.result == "applied"
    assert outcome.before == {"values": [VALUES[EAST]], "ttl": 300}
    assert outcome.after == {"values": [VALUES[WEST]], "ttl": 60}
    assert moto.writes()[writes:] == [f"POST /2013-04-01/hostedzone/{zone}/rrset"]
    listed = client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    by_name = {(r["Name"], r["Type"]): r["ResourceRecords"][0]["Value"] for r in listed}
    assert by_name[("www.example.com.", "A")] == VALUES[WEST]
    assert by_name[("www2.example.com.", "A")] == "192.0.2.1"


def test_route53_absent_record_is_created(make_client: Any, zone: str) -> None:
    client = make_client("route53")
    # Only a record of another type exists under the name: ours is absent.
    upsert(client, zone, "www.example.com.", '"hello"', kind="TXT")
    action = Route53Record(route53_action(zone), client)

    outcome = reconcile(action, transition(EAST))

    assert (outcome.result, outcome.before) == ("applied", None)
    assert outcome.after == {"values": [VALUES[EAST]], "ttl": 60}


def test_route53_dry_run_changes_nothing(moto: Moto, make_client: Any, zone: str) -> None:
    client = make_client("route53")
    upsert(client, zone, "www.example.com.", VALUES[EAST])
    action = Route53Record(route53_action(zone), client)
    writes = len(moto.writes())

    outcome = reconcile(action, transition(WEST, dry_run=True))

    assert outcome.result == "would_apply"
    assert outcome.after == {"values": [VALUES[WEST]], "ttl": 60}
    assert action.current() == {"values": [VALUES[EAST]], "ttl": 60}
    assert len(moto.writes()) == writes


def test_route53_unknown_zone_is_permanent(make_client: Any) -> None:
    action = Route53Record(route53_action("ZNOSUCHZONE"), make_client("route53"))

    with pytest.raises(PermanentError, match="NoSuchHostedZone"):
        reconcile(action, transition(WEST))


# --- ssm_parameter ---


def ssm_action(moto: Moto, parameter: str) -> SSMParameterAction:
    return SSMParameterAction(
        type="ssm_parameter", name="param", parameter=parameter, region=EAST, endpoint_url=moto.url
    )


def test_ssm_absent_parameter_is_created(make_client: Any, moto: Moto) -> None:
    client = make_client("ssm")
    action = SSMParameter(ssm_action(moto, "/app/absent"), client)

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.before, outcome.after) == ("applied", None, WEST)
    stored = client.get_parameter(Name="/app/absent")["Parameter"]
    assert (stored["Value"], stored["Type"]) == (WEST, "String")


def test_ssm_different_value_is_overwritten(make_client: Any, moto: Moto) -> None:
    client = make_client("ssm")
    client.put_parameter(Name="/app/region", Value=EAST, Type="String")
    action = SSMParameter(ssm_action(moto, "/app/region"), client)

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.before, outcome.after) == ("applied", EAST, WEST)
    assert client.get_parameter(Name="/app/region")["Parameter"]["Version"] == 2


def test_ssm_already_desired_is_unchanged_without_a_write(make_client: Any, moto: Moto) -> None:
    client = make_client("ssm")
    client.put_parameter(Name="/app/same", Value=WEST, Type="String")
    action = SSMParameter(ssm_action(moto, "/app/same"), client)
    writes = len(moto.writes())

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.before) == ("unchanged", WEST)
    assert len(moto.writes()) == writes
    assert client.get_parameter(Name="/app/same")["Parameter"]["Version"] == 1


def test_ssm_dry_run_changes_nothing(make_client: Any, moto: Moto) -> None:
    client = make_client("ssm")
    client.put_parameter(Name="/app/dry", Value=EAST, Type="String")
    action = SSMParameter(ssm_action(moto, "/app/dry"), client)

    outcome = reconcile(action, transition(WEST, dry_run=True))

    assert (outcome.result, outcome.before, outcome.after) == ("would_apply", EAST, WEST)
    assert client.get_parameter(Name="/app/dry")["Parameter"]["Value"] == EAST


def test_ssm_access_denied_is_permanent(make_client: Any, moto: Moto) -> None:
    # Parameters under /aws/ are AWS's own: writing one is refused, as a missing IAM grant is.
    action = SSMParameter(ssm_action(moto, "/aws/reserved"), make_client("ssm"))

    with pytest.raises(PermanentError, match="AccessDeniedException"):
        reconcile(action, transition(WEST))


def test_paused_server_is_temporary_within_the_timeout(moto: Moto) -> None:
    short = aws_client.client_factory(timeout_seconds=SHORT_TIMEOUT)
    clients = [short(service, EAST, moto.url) for service in ("ssm", "route53")]
    sends: list[str] = []
    for client in clients:
        client.meta.events.register("before-send", lambda request, **_: sends.append(request.url))
    ssm = SSMParameter(ssm_action(moto, "/app/paused"), clients[0])
    route53 = Route53Record(route53_action("ZPAUSED"), clients[1])
    os.killpg(moto.process.pid, signal.SIGSTOP)
    try:
        for action in (ssm, route53):
            started = time.monotonic()
            with pytest.raises(TemporaryError, match="Timeout"):
                action.current()
            # One attempt, no retries, and the timeout holds (not botocore's 60 s).
            assert time.monotonic() - started < 30
    finally:
        os.killpg(moto.process.pid, signal.SIGCONT)
    assert len(sends) == 2, sends
    assert ssm.current() is None


# --- inspect: the plan's read-only view ---


def problems(inspection: Any) -> list[tuple[str, str]]:
    return [(p.kind, p.severity) for p in inspection.problems]


def test_route53_inspect_reads_only(moto: Moto, make_client: Any, zone: str) -> None:
    client = make_client("route53")
    upsert(client, zone, "www.example.com.", VALUES[EAST])
    writes = len(moto.writes())

    seen = Route53Record(route53_action(zone), client).inspect(WEST)

    assert (seen.current, seen.desired) == (
        {"values": [VALUES[EAST]], "ttl": 60},
        {"values": [VALUES[WEST]], "ttl": 60},
    )
    assert (seen.would_change, seen.ready, seen.problems) == (True, True, ())
    assert len(moto.writes()) == writes


def test_route53_inspect_problems(make_client: Any, zone: str) -> None:
    client = make_client("route53")
    absent = Route53Record(route53_action(zone), client).inspect(WEST)
    assert problems(absent) == [("missing", "error")]
    assert absent.problems[0].message.startswith(
        f"apex: record set A www.example.com. does not exist in hosted zone {zone}"
    )

    upsert(client, zone, "www.example.com.", VALUES[EAST], ttl=900)
    values = {EAST: VALUES[EAST], WEST: "2001:db8::1"}
    seen = Route53Record(route53_action(zone, ttl=900, values=values), client).inspect(
        WEST, Limits(max_ttl_seconds=300)
    )
    assert problems(seen) == [("invalid_target", "error"), ("ttl", "warning")]
    assert "'2001:db8::1', is not a valid A record value" in seen.problems[0].message

    gone = Route53Record(route53_action("ZNOSUCHZONE"), client).inspect(WEST)
    assert problems(gone) == [("missing", "error")]
    assert "NoSuchHostedZone" in gone.problems[0].message


def test_ssm_inspect_missing_parameter(moto: Moto, make_client: Any) -> None:
    client = make_client("ssm")
    action = SSMParameter(ssm_action(moto, "/app/inspected"), client)
    seen = action.inspect(WEST)
    assert (problems(seen), seen.current) == ([("missing", "error")], None)
    assert seen.problems[0].message == "param: SSM parameter /app/inspected does not exist"

    client.put_parameter(Name="/app/inspected", Value=EAST, Type="String")
    writes = len(moto.writes())
    seen = action.inspect(WEST)
    assert (seen.ready, seen.current, seen.would_change) == (True, EAST, True)
    assert len(moto.writes()) == writes


def test_inspect_of_a_hung_server_is_unreachable(moto: Moto, make_client: Any) -> None:
    action = SSMParameter(ssm_action(moto, "/app/hung"), make_client("ssm"))
    os.killpg(moto.process.pid, signal.SIGSTOP)
    try:
        seen = action.inspect(WEST)
    finally:
        os.killpg(moto.process.pid, signal.SIGCONT)
    assert problems(seen) == [("unreachable", "error")]
