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
    wait_until(lambda: not any(alive(pid) for pid in pids), 10, message="regions stopped")
