"""ddb-exporter as a process: --once, serving, and bad configs."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from sandbox.net import wait_until
from tests.exporter.exporterlib import TABLE, config_data, scrape, value

NAMES = ("us-east-1", "eu-west-1")


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def exporter(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows(stdout: str) -> dict[tuple[str, str, str], list[str]]:
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["REGION", "TABLE", "OPERATION"]
    return {tuple(line.split()[:3]): line.split() for line in lines[1:]}  # type: ignore[misc]


@pytest.mark.slow
def test_once_exit_codes_and_table(start_regions: Callable[..., dict], tmp_path: Path) -> None:
    regions = start_regions(NAMES, (TABLE,))
    config = write_config(tmp_path / "c.yml", config_data(list(regions.values())))

    healthy = exporter("--config", str(config), "--once")
    assert healthy.returncode == 0, healthy.stderr
    table = rows(healthy.stdout)
    for region in NAMES:
        for op in ("read", "write"):
            assert table[(region, TABLE, op)][3:5] == ["ok", "-"]
        assert (region, TABLE, "replication") in table

    regions["eu-west-1"].stop()
    down = exporter("--config", str(config), "--once")
    assert down.returncode == 1
    table = rows(down.stdout)
    assert table[("eu-west-1", TABLE, "read")][3:5] == ["FAIL", "connection"]
    assert table[("us-east-1", TABLE, "read")][3:5] == ["ok", "-"]
    assert "region=eu-west-1" in down.stderr and "reason=connection" in down.stderr


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    data = {
        "tables": [TABLE],
        "canary": {"key": "id", "value": "ping"},
        "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
        "exporter": {"interval_seconds": -1},
    }
    result = exporter("--config", str(write_config(tmp_path / "bad.yml", data)), "--once")
    assert result.returncode == 2
    assert "exporter.interval_seconds" in result.stderr
    assert result.stdout == ""


def test_bad_listen_override_exits_2(tmp_path: Path) -> None:
    data = {
        "tables": [TABLE],
        "canary": {"key": "id", "value": "ping"},
        "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
    }
    config = write_config(tmp_path / "c.yml", data)
    result = exporter("--config", str(config), "--listen", "127.0.0.1:99999")
    assert result.returncode == 2
    assert "--listen: listen: must be HOST:PORT" in result.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = exporter("--config", str(tmp_path / "absent.yml"))
    assert result.returncode == 2
    assert "absent.yml: cannot read" in result.stderr


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@pytest.mark.slow
def test_serves_metrics_on_the_listen_override(
    start_regions: Callable[..., dict], tmp_path: Path
) -> None:
    regions = start_regions(NAMES, (TABLE,))
    config = write_config(tmp_path / "c.yml", config_data(list(regions.values())))
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config", str(config), "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
        deadline = time.monotonic() + 20
        address = ""
        while not address:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if "msg=listening" in line:
                address = line.split("address=")[1].split()[0]
        url = f"http://{address}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            assert response.read() == b"ok\n"
        with urllib.request.urlopen(f"{url}/", timeout=2) as response:
            assert b'href="/metrics"' in response.read()
        wait_until(
            lambda: (
                value(scrape(url)[0], "dynamodb_probe_success", region=NAMES[1], operation="write")
                == 1
            ),
            30,
            message="write probe succeeding",
        )
        samples, _ = scrape(url)
        assert any(name == "process_resident_memory_bytes" for name, _ in samples)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
