"""`python -m sandbox up` and `chaos` as separate processes, the way users run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ReadTimeoutError

from sandbox.net import wait_until
from sandbox.regions import dynamodb_client
from tests.conftest import CANARY_KEY, CANARY_VALUE


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, timeout=60
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its parent counts as gone.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(")")[1].split()[0] != "Z"


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[tuple[Path, dict]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--dir", str(tmp_path), "--only", "regions"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def ready() -> dict | None:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        path = tmp_path / "stack.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        config_written = (tmp_path / "ddb-failover.yml").exists()
        return state if config_written and len(state.get("components", {})) == 2 else None

    state = wait_until(ready, 60, interval=0.2, message="sandbox up")
    yield tmp_path, state
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_up_writes_stack_json_and_config(running_stack) -> None:
    directory, state = running_stack
    assert set(state["components"]) == {"region:us-east-1", "region:eu-west-1"}
    for entry in state["components"].values():
        assert entry["url"].startswith("http://127.0.0.1:")
        assert alive(entry["pid"])
    from ddb_failover import config

    loaded = config.load(directory / "ddb-failover.yml")
    assert loaded.region_names == ("us-east-1", "eu-west-1")
    assert loaded.regions[0].endpoint_url == state["components"]["region:us-east-1"]["url"]


def test_chaos_pause_and_resume_a_region(running_stack) -> None:
    directory, state = running_stack
    url = state["components"]["region:us-east-1"]["url"]
    client = dynamodb_client("us-east-1", url, timeout=0.5)
    key = {CANARY_KEY: {"S": CANARY_VALUE}}
    result = sandbox("chaos", "--dir", str(directory), "us-east-1", "pause")
    assert result.returncode == 0, result.stderr
    with pytest.raises(ReadTimeoutError):
        client.get_item(TableName="wordpress_posts", Key=key)
    assert sandbox("chaos", "--dir", str(directory), "us-east-1", "resume").returncode == 0
    assert "Item" in client.get_item(TableName="wordpress_posts", Key=key)


def test_chaos_rejects_bad_requests(running_stack) -> None:
    directory, _ = running_stack
    unknown = sandbox("chaos", "--dir", str(directory), "ap-south-1", "pause")
    assert unknown.returncode == 1
    assert "unknown region 'ap-south-1'" in unknown.stderr
    slow = sandbox("chaos", "--dir", str(directory), "us-east-1", "slow")
    assert slow.returncode == 2
    assert "--delay-ms" in slow.stderr


def test_chaos_without_a_stack_says_so(tmp_path: Path) -> None:
    result = sandbox("chaos", "--dir", str(tmp_path), "us-east-1", "pause")
    assert result.returncode == 1
    assert f"no running sandbox in {tmp_path}" in result.stderr


def test_up_rejects_unknown_component(tmp_path: Path) -> None:
    result = sandbox("up", "--dir", str(tmp_path), "--only", "regions,warp-drive")
    assert result.returncode == 2
    assert "unknown component warp-drive" in result.stderr


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--dir", str(tmp_path), "--only", "regions"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = tmp_path / "stack.json"
    state = wait_until(
        lambda: (
            path.exists()
            and len(json.loads(path.read_text())["components"]) == 2
            and json.loads(path.read_text())
        ),
        60,
        message="stack up",
    )
    pids = [entry["pid"] for entry in state["components"].values()]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    wait_until(lambda: not any(alive(pid) for pid in pids), 30, message="regions stopped")


def test_chaos_pauses_and_resumes_replication_into_a_region(running_stack) -> None:
    directory, state = running_stack
    east = dynamodb_client("us-east-1", state["components"]["region:us-east-1"]["url"])
    west = dynamodb_client("eu-west-1", state["components"]["region:eu-west-1"]["url"])
    paused = sandbox("chaos", "--dir", str(directory), "eu-west-1", "replication-pause")
    assert paused.returncode == 0, paused.stderr
    assert "eu-west-1: replication-pause done" in paused.stdout
    east.put_item(TableName="wordpress_posts", Item={CANARY_KEY: {"S": "queued"}})
    west.put_item(TableName="wordpress_posts", Item={CANARY_KEY: {"S": "outbound"}})
    wait_until(
        lambda: (
            "Item"
            in east.get_item(TableName="wordpress_posts", Key={CANARY_KEY: {"S": "outbound"}})
        ),
        30,
        message="outbound replicated",
    )
    held = west.get_item(TableName="wordpress_posts", Key={CANARY_KEY: {"S": "queued"}})
    assert "Item" not in held
    delay = sandbox("chaos", "--dir", str(directory), "eu-west-1", "replication-delay")
    assert delay.returncode == 2 and "replication-delay needs --delay-ms N" in delay.stderr
    assert (
        sandbox(
            "chaos", "--dir", str(directory), "eu-west-1", "replication-delay", "--delay-ms", "50"
        ).returncode
        == 0
    )
    assert (
        sandbox("chaos", "--dir", str(directory), "eu-west-1", "replication-resume").returncode == 0
    )
    wait_until(
        lambda: (
            "Item" in west.get_item(TableName="wordpress_posts", Key={CANARY_KEY: {"S": "queued"}})
        ),
        30,
        message="queued write applied on resume",
    )
    refused = sandbox("chaos", "--dir", str(directory), "eu-west-1", "replica-status", "ACTIVE")
    assert refused.returncode == 1
    assert "replica-status needs a stack started with --consistency strong" in refused.stderr


def test_up_strong_with_a_witness(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sandbox", "up", "--dir", str(tmp_path), "--only", "regions",
            "--consistency", "strong", "--regions", "us-east-1,us-east-2", "--witness", "us-west-2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        path = tmp_path / "stack.json"

        def ready() -> dict | None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            state = json.loads(path.read_text()) if path.exists() else {}
            done = (tmp_path / "ddb-failover.yml").exists() and len(
                state.get("components", {})
            ) == 3
            return state if done else None

        state = wait_until(ready, 60, interval=0.2, message="sandbox up")
        assert set(state["components"]) == {
            "region:us-east-1",
            "region:us-east-2",
            "witness:us-west-2",
        }
        from ddb_failover import config

        loaded = config.load(tmp_path / "ddb-failover.yml")
        assert loaded.region_names == ("us-east-1", "us-east-2")  # a witness is never probed
        mrsc = loaded.consistency_of("wordpress_posts")
        assert (mrsc.consistency, mrsc.witness) == ("strong", "us-west-2")
        east = dynamodb_client("us-east-1", state["components"]["region:us-east-1"]["url"])
        table = east.describe_table(TableName="wordpress_posts")["Table"]
        assert table["MultiRegionConsistency"] == "STRONG"
        assert table["GlobalTableWitnesses"] == [
            {"RegionName": "us-west-2", "WitnessStatus": "ACTIVE"}
        ]

        disable = sandbox(
            "chaos", "--dir", str(tmp_path), "us-east-2", "replica-status", "REGION_DISABLED"
        )
        assert disable.returncode == 0, disable.stderr
        replicas = east.describe_table(TableName="wordpress_posts")["Table"]["Replicas"]
        assert {r["RegionName"]: r["ReplicaStatus"] for r in replicas} == {
            "us-east-1": "ACTIVE",
            "us-east-2": "REGION_DISABLED",
        }
        bad = sandbox("chaos", "--dir", str(tmp_path), "us-east-2", "replica-status", "ASLEEP")
        assert bad.returncode == 1
        assert "unknown replica status 'ASLEEP'; one of CREATING" in bad.stderr
        missing = sandbox("chaos", "--dir", str(tmp_path), "us-east-2", "replica-status")
        assert missing.returncode == 2 and "replica-status needs a STATUS" in missing.stderr
        witness = sandbox("chaos", "--dir", str(tmp_path), "us-west-2", "pause")
        assert witness.returncode == 0, witness.stderr
        assert sandbox("chaos", "--dir", str(tmp_path), "us-west-2", "resume").returncode == 0
        synchronous = sandbox(
            "chaos", "--dir", str(tmp_path), "us-east-2", "replication-delay", "--delay-ms", "10"
        )
        assert synchronous.returncode == 1
        assert "strong consistency replicates synchronously" in synchronous.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--consistency", "strong"], "strong consistency needs exactly three members"),
        (["--witness", "us-west-2"], "--witness needs --consistency strong"),
        (
            [
                "--consistency",
                "strong",
                "--regions",
                "us-east-1,us-east-2,us-west-2",
                "--witness",
                "eu-west-1",
            ],
            "got 3 region(s) and the witness eu-west-1",
        ),
    ],
)
def test_up_refuses_anything_but_three_strong_members(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = sandbox("up", "--dir", str(tmp_path), "--only", "regions", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "stack.json").exists()
