"""The record follows the world with two responder replicas on the DynamoDB control table.

The record stack of test_record.py (its actions' and DigitalOcean client's timeouts), whose
own responder is replaced by two `ddb-responder serve` replicas (gunicorn, two workers each)
sharing a DynamoDB control table on a moto server, as replicas on two machines would. The
first replica listens where the sandbox's responder did, so the stack's config and the
CLI reach it unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.chaos_stack import LEASE_SECONDS, Replica
from ddb_failover.config import load
from responder.state.dynamodb.create_table import create_control_table
from sandbox.control_table import ControlTableServer
from sandbox.net import wait_until
from tests.e2e.conftest import CONFIG, E2EStack, small_stack
from tests.e2e.test_record import (
    OPTIONS,
    crash_between_applying_and_journaling,
    plan,
    skip_during_an_attempt,
)

# Its replicas replace the stack's responder: on the record copy, away from test_plan's rows.
pytestmark = [pytest.mark.e2e, pytest.mark.stack_copy(2)]
NEEDED = ("responder", "exporter", "do_api")
TABLE = "ddb-failover-control"


def _gone(pid: int) -> bool:
    """True when pid has exited (a zombie its parent, the sandbox, has not reaped yet counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    with small_stack(tmp_path_factory, NEEDED, *OPTIONS) as view:
        sandboxed = json.loads((view.dir / "stack.json").read_text())
        pid = sandboxed["components"]["responder"]["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # its SQLite store gives way to the control table
        wait_until(lambda: _gone(pid), 30, 0.1, "the sandbox's responder gone")
        control = ControlTableServer(view.dir / "control-table").start()
        replicas: list[Replica] = []
        try:
            path = view.dir / CONFIG
            config = yaml.safe_load(path.read_text())
            config["responder"]["state"] = control.state(
                TABLE, lease_seconds=LEASE_SECONDS, renew_seconds=LEASE_SECONDS / 3
            )
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            assert create_control_table(load(path)) is True
            # The env file is one file both replicas write (as on shared storage); so is the
            # record of its last reload (DDB_FAILOVER_STATE_DIR), or a replica that did not
            # reload it last would report drift (docs/ha.md).
            records = view.dir / "action-records"
            records.mkdir()
            for index in range(2):
                workdir = view.dir / "replicas" / f"replica-{index}"
                workdir.mkdir(parents=True)
                (workdir / "records").symlink_to(records)
                replicas.append(Replica(index, path, workdir))
            replicas[0].port = urllib.parse.urlsplit(view.urls["responder"]).port or 0
            for replica in replicas:  # booting together, as on two machines
                replica.spawn()
            for replica in replicas:
                replica.wait_ready()
            e2e = E2EStack(view.dir, view.urls, view.token)
            wait_until(lambda: not plan(e2e)["stale"], 90, 0.5, "the first plan evaluation")
            yield e2e
        finally:
            for replica in replicas:
                replica.kill()
            control.close()


def test_a_crash_between_applying_and_journaling_with_two_replicas(stack: E2EStack) -> None:
    """The worker that sent the landed PATCH dies; a worker of either replica takes the
    lease once it runs out, finds www moved, and the rollback moves it back."""
    crash_between_applying_and_journaling(stack)


def test_skip_during_an_attempt_with_two_replicas(stack: E2EStack) -> None:
    """The in-flight marker lives in the control table: skip is refused while the attempt
    runs, and after it fails for good either replica drives the retry and the rollback."""
    skip_during_an_attempt(stack)
