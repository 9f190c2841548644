"""STRONG (multi-Region strongly consistent) tables in the sandbox, on real moto processes.

Two replicas and a witness, each its own region server, with the supervisor's
replicator and quorum coordinator in this process.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from sandbox.net import wait_until
from sandbox.quorum import StrongMembers, check_members, replica_statuses, start_members
from tests.conftest import CANARY_KEY, CANARY_VALUE, STRONG_REGIONS, WITNESS

TABLE = "wordpress_posts"
EAST, EAST2 = STRONG_REGIONS
MODEL = botocore.session.get_session().get_service_model("dynamodb")


def key(value: str) -> dict[str, Any]:
    return {CANARY_KEY: {"S": value}}


def get(client: Any, value: str, consistent: bool = True) -> dict[str, Any] | None:
    found = client.get_item(TableName=TABLE, Key=key(value), ConsistentRead=consistent)
    return found.get("Item")


def put(client: Any, value: str, **attrs: str) -> None:
    item = {**key(value), **{k: {"S": v} for k, v in attrs.items()}}
    client.put_item(TableName=TABLE, Item=item)


def raw_describe(url: str, region: str) -> tuple[int, dict[str, Any]]:
    """DescribeTable over HTTP, unparsed: the JSON exactly as the region answers it."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"TableName": TABLE}).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=sandbox/20260101/{region}/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return reply.status, json.load(reply)


def shape_problems(value: Any, shape: Any, path: str = "") -> list[str]:
    """Where value does not fit botocore's shape: unknown keys, wrong types, bad enum values."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        problems = []
        for name, member in value.items():
            if name not in shape.members:
                problems.append(f"{path}.{name}: not in {shape.name}")
            else:
                problems += shape_problems(member, shape.members[name], f"{path}.{name}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [
            p for i, v in enumerate(value) for p in shape_problems(v, shape.member, f"{path}[{i}]")
        ]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        return [p for k, v in value.items() for p in shape_problems(v, shape.value, f"{path}.{k}")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        return (
            [f"{path}: {value!r} not in {shape.name}"]
            if shape.enum and value not in shape.enum
            else []
        )
    if kind == "timestamp":
        return [] if isinstance(value, int | float) else [f"{path}: not epoch seconds"]
    if kind in ("long", "integer", "double"):
        return [] if isinstance(value, int | float) else [f"{path}: not a number"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: not a boolean"]
    return []


def test_describe_table_answers_in_strong_mode_in_botocores_shape(strong: StrongMembers) -> None:
    output = MODEL.operation_model("DescribeTable").output_shape
    for name, region in strong.regions.items():
        status, answer = raw_describe(region.url, name)
        assert status == 200
        assert shape_problems(answer, output) == []
        table = answer["Table"]
        assert table["MultiRegionConsistency"] == "STRONG"
        assert table["Replicas"] == [
            {"RegionName": EAST, "ReplicaStatus": "ACTIVE"},
            {"RegionName": EAST2, "ReplicaStatus": "ACTIVE"},
        ]
        assert table["GlobalTableWitnesses"] == [{"RegionName": WITNESS, "WitnessStatus": "ACTIVE"}]
        # boto3 parses it (its checksum included) into the same fields.
        parsed = region.client().describe_table(TableName=TABLE)["Table"]
        assert parsed["MultiRegionConsistency"] == "STRONG"
        assert parsed["GlobalTableWitnesses"][0]["RegionName"] == WITNESS


def test_the_installed_botocore_knows_mrsc() -> None:
    shape = MODEL.shape_for("TableDescription")
    assert {"MultiRegionConsistency", "GlobalTableWitnesses", "Replicas"} <= set(shape.members)
    assert "REGION_DISABLED" in replica_statuses()
    assert "ReplicatedWriteConflictException" in {e.name for e in MODEL.error_shapes}


def test_the_witness_serves_no_reads_or_writes(strong: StrongMembers) -> None:
    witness = strong.all[WITNESS].client()
    with pytest.raises(ClientError) as caught:
        get(witness, CANARY_VALUE)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_write_is_in_the_other_replica_when_it_returns(strong: StrongMembers) -> None:
    east, east2 = strong.regions[EAST].client(), strong.regions[EAST2].client()
    assert get(east2, CANARY_VALUE) is not None  # the canary, written once, replicated
    for n in range(10):
        put(east, f"post-{n}", title=f"t{n}")
        assert get(east2, f"post-{n}") == {**key(f"post-{n}"), "title": {"S": f"t{n}"}}
    east2.update_item(
        TableName=TABLE,
        Key=key("post-1"),
        UpdateExpression="SET title = :t",
        ExpressionAttributeValues={":t": {"S": "edited"}},
    )
    assert get(east, "post-1") == {**key("post-1"), "title": {"S": "edited"}}
    east.batch_write_item(
        RequestItems={
            TABLE: [
                {"DeleteRequest": {"Key": key("post-2")}},
                {"PutRequest": {"Item": {**key("post-10"), "title": {"S": "t10"}}}},
            ]
        }
    )
    assert get(east2, "post-2") is None
    assert get(east2, "post-10") is not None
    east.delete_item(TableName=TABLE, Key=key("post-10"))
    assert get(east2, "post-10") is None


def test_a_refused_write_is_replicated_nowhere(strong: StrongMembers) -> None:
    east, east2 = strong.regions[EAST].client(), strong.regions[EAST2].client()
    put(east, "guarded", title="first")
    with pytest.raises(ClientError) as caught:
        east.put_item(
            TableName=TABLE,
            Item={**key("guarded"), "title": {"S": "second"}},
            ConditionExpression="attribute_not_exists(health_check_id)",
        )
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert get(east2, "guarded") == {**key("guarded"), "title": {"S": "first"}}


@pytest.mark.parametrize("down", ["pause", "stop"])
@pytest.mark.parametrize("lost", [EAST2, WITNESS])
def test_one_member_down_leaves_a_quorum(strong: StrongMembers, down: str, lost: str) -> None:
    east = strong.regions[EAST].client(timeout=3)
    getattr(strong.all[lost], down)()
    put(east, f"without-{lost}-{down}")  # at once: the other member makes the quorum
    assert get(east, f"without-{lost}-{down}") is not None


@pytest.mark.parametrize("down", ["pause", "stop"])
def test_without_a_second_member_writes_and_strong_reads_fail(
    strong: StrongMembers, down: str
) -> None:
    east = strong.regions[EAST].client(timeout=3)
    put(east, "before")
    getattr(strong.all[EAST2], down)()
    getattr(strong.all[WITNESS], down)()
    # A write in the moment the members went away may fail after it was applied (an
    # ambiguous 500, as anywhere); once the region knows, nothing is applied.
    wait_until(lambda: not strong.coordinator.has_quorum(EAST), 30, message="quorum lost")
    with pytest.raises(ClientError) as caught:
        put(east, f"lost-{down}")
    error = caught.value
    assert error.response["Error"]["Code"] == "InternalServerError"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "cannot reach a second member" in error.response["Error"]["Message"]
    with pytest.raises(ClientError) as read:
        get(east, "before")
    assert read.value.response["Error"]["Code"] == "InternalServerError"
    # Eventually consistent reads are still served, and the refused write is not there.
    assert get(east, "before", consistent=False) is not None
    assert get(east, f"lost-{down}", consistent=False) is None


def test_a_region_that_missed_writes_catches_up_before_it_serves(strong: StrongMembers) -> None:
    east, east2 = strong.regions[EAST].client(), strong.regions[EAST2].client(timeout=3)
    strong.replicator.pause_into(EAST2)
    put(east, "while-isolated")  # the witness makes the quorum
    assert get(east2, "while-isolated", consistent=False) is None
    with pytest.raises(ClientError) as caught:
        get(east2, "while-isolated")  # behind: no strongly consistent read
    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    strong.replicator.resume_into(EAST2)
    assert wait_until(lambda: get(east2, "while-isolated"), 30, message="caught up")


def test_a_restarted_region_is_refilled_before_it_serves(strong: StrongMembers) -> None:
    east = strong.regions[EAST].client()
    restarted = strong.regions[EAST2]
    put(east, "old-post")
    restarted.stop()
    put(east, "newer-post")
    restarted.start()
    strong.coordinator.rejoin(EAST2)
    client = restarted.client()
    for value in (CANARY_VALUE, "old-post", "newer-post"):
        assert wait_until(partial(get, client, value), 30, message=f"{value} refilled")


def test_a_write_of_an_item_another_region_is_writing_conflicts(strong: StrongMembers) -> None:
    east = strong.regions[EAST].client()
    held = strong.coordinator.prepare(EAST2, TABLE, [json.dumps(key("hot"), sort_keys=True)])
    try:
        with pytest.raises(ClientError) as caught:
            put(east, "hot", by="east")
    finally:
        strong.coordinator.release(held)
    error = caught.value.response
    assert error["Error"]["Code"] == "ReplicatedWriteConflictException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert isinstance(caught.value, east.exceptions.ReplicatedWriteConflictException)
    assert get(east, "hot") is None  # nothing applied
    put(east, "hot", by="east")  # retry-safe: once the other write is done, it succeeds
    assert get(strong.regions[EAST2].client(), "hot") is not None


def test_replica_status_is_what_describe_table_reports(strong: StrongMembers) -> None:
    before = datetime.now().timestamp()
    strong.coordinator.set_status(EAST2, "REGION_DISABLED")
    for name, region in strong.regions.items():
        replicas = region.client().describe_table(TableName=TABLE)["Table"]["Replicas"]
        statuses = {r["RegionName"]: r["ReplicaStatus"] for r in replicas}
        assert statuses == {EAST: "ACTIVE", EAST2: "REGION_DISABLED"}, name
        [disabled] = [r for r in replicas if r["RegionName"] == EAST2]
        assert disabled["ReplicaInaccessibleDateTime"].timestamp() >= before - 1
    strong.coordinator.set_status(EAST2, "ACTIVE")
    [replica] = [
        r
        for r in strong.regions[EAST].client().describe_table(TableName=TABLE)["Table"]["Replicas"]
        if r["RegionName"] == EAST2
    ]
    assert replica == {"RegionName": EAST2, "ReplicaStatus": "ACTIVE"}


def test_replica_status_refuses_what_does_not_exist(strong: StrongMembers) -> None:
    with pytest.raises(ValueError, match="unknown replica status 'BROKEN'; one of CREATING"):
        strong.coordinator.set_status(EAST2, "BROKEN")
    with pytest.raises(ValueError, match="us-west-2 is the witness"):
        strong.coordinator.set_status(WITNESS, "ACTIVE")
    with pytest.raises(ValueError, match="unknown region 'ap-south-1'"):
        strong.coordinator.set_status("ap-south-1", "ACTIVE")


@pytest.mark.parametrize(
    ("regions", "witness", "message"),
    [
        ([EAST, EAST2], None, "got 2 region(s)"),
        ([EAST, EAST2, WITNESS], "eu-west-1", "got 3 region(s) and the witness eu-west-1"),
        ([EAST], WITNESS, "got 1 region(s) and the witness us-west-2"),
        ([EAST, EAST2, WITNESS, "eu-west-1"], None, "got 4 region(s)"),
        ([EAST, EAST2], EAST2, "the witness us-east-2 must be a region without a replica"),
    ],
)
def test_anything_but_three_members_is_refused(
    regions: list[str], witness: str | None, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_members(regions, witness)
    with pytest.raises(ValueError, match=r"exactly three members|without a replica"):
        start_members(regions, witness, [TABLE], {"key": CANARY_KEY, "value": "x"}, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was started
