"""Sandbox regions: one moto server process per region, with chaos controls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from sandbox.net import free_port, port_open, wait_until

START_TIMEOUT = 30.0
# Dummy credentials: moto accepts any, and real ones must never reach the sandbox.
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


def dynamodb_client(region: str, url: str, timeout: float = 2.0) -> Any:
    """A DynamoDB client for a sandbox region, with no retries and short timeouts."""
    return boto3.client(
        "dynamodb",
        region_name=region,
        endpoint_url=url,
        config=BotoConfig(
            connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
        ),
        **SANDBOX_CREDENTIALS,
    )


def create_table(client: Any, table: str, key: str) -> None:
    """Create a table keyed on key (S) with a stream, as a Global Table replica has."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


class Region:
    """One sandbox region's process: start, pause, resume, stop, slow, fast.

    With a coordinator_url its tables are in STRONG mode (sandbox/quorum.py): it
    creates them without the canary, which arrives by replication, and with
    witness=True it is the witness, which holds no table.
    """

    def __init__(
        self,
        name: str,
        tables: Sequence[str],
        canary_key: str,
        canary_value: str,
        workdir: Path,
        port: int | None = None,
        seed: bool = True,
        coordinator_url: str = "",
        witness: bool = False,
    ) -> None:
        self.name = name
        self.tables = () if witness else tuple(tables)
        self.canary_key = canary_key
        self.canary_value = canary_value
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.seed = seed and not witness
        self.coordinator_url = coordinator_url
        self.witness = witness
        self.process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        """The region's DynamoDB endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process id, or None when stopped."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def client(self, timeout: float = 2.0) -> Any:
        """A DynamoDB client for this region."""
        return dynamodb_client(self.name, self.url, timeout)

    def start(self) -> None:
        """Spawn the server, wait until it answers, and create tables and the canary."""
        if self.pid is not None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"region-{self.name}.log", "ab")  # noqa: SIM115
        argv = [sys.executable, "-m", "sandbox.region_server", "--port", str(self.port)]
        if self.coordinator_url:
            argv += ["--region", self.name, "--coordinator", self.coordinator_url]
            argv += ["--strong-tables", ",".join(self.tables)]
            argv += ["--witness"] if self.witness else []
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._paused = False
        wait_until(
            lambda: self._alive() and port_open(self.port),
            START_TIMEOUT,
            message=f"region {self.name} on port {self.port}",
        )
        if self.seed:
            self.create_tables()

    def _alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"region {self.name} server exited; see its log in {self.workdir}")
        return True

    def create_tables(self) -> None:
        """Create every table and put the canary item in it (STRONG: the canary comes later)."""
        client = self.client(timeout=10.0)
        for table in self.tables:
            create_table(client, table, self.canary_key)
            if not self.coordinator_url:
                self.put_canary(table)

    def put_canary(self, table: str) -> None:
        """Write the canary item into table."""
        self.client(timeout=10.0).put_item(
            TableName=table,
            Item={self.canary_key: {"S": self.canary_value}, "purpose": {"S": "canary"}},
        )

    def pause(self) -> None:
        """Black-hole the region: the process is stopped, connections hang."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo pause."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def stop(self) -> None:
        """Kill the process: connections are refused. Its data is lost, as in a rebuild."""
        if self.process is None:
            return
        if self._paused:
            self.resume()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def slow(self, delay_ms: int) -> None:
        """Add delay_ms of latency to every request."""
        request = urllib.request.Request(
            f"{self.url}/_sandbox/delay?ms={int(delay_ms)}", method="POST", data=b""
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def fast(self) -> None:
        """Remove added latency."""
        self.slow(0)

    def close(self) -> None:
        """Stop the region for good; safe to call twice."""
        self.stop()

    def _signal(self, signum: int) -> None:
        if self.pid is None:
            raise RuntimeError(f"region {self.name} is not running")
        assert self.process is not None
        os.killpg(self.process.pid, signum)
