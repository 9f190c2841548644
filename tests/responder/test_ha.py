"""Several responders sharing one DynamoDB control table: exactly one acts, whatever happens.

Each replica is a separate `ddb-responder serve` (gunicorn) process group with
its own local directory, like replicas on separate machines. The control table
is a moto server process; the data regions are sandbox regions. Outside
changes are command actions that append to files, so every run is counted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddb_failover.config import DynamoDBState, load
from responder.actions.registry import STATE_DIR_ENV
from responder.state.dynamodb.create_table import create_control_table
from responder.state.dynamodb.store import DynamoDBStore
from responder.state.records import Lease
from sandbox.control_table import ControlTableServer
from sandbox.net import wait_until
from tests.conftest import RegionFactory
from tests.responder.weblib import (
    VIEWER,
    Responder,
    appender,
    auth,
    blocking,
    http,
    lines,
    payload,
    put_heartbeat,
    write_config,
)

pytestmark = pytest.mark.slow
LEASE = 6.0  # seconds; renewal every LEASE / 3 while an action runs, slack for a loaded machine
TABLE = "ddb-failover-control"
Cluster = Callable[..., list[Responder]]


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlTableServer]:
    server = ControlTableServer(tmp_path / "control").start()
    yield server
    server.close()


@pytest.fixture
def cluster(
    tmp_path: Path,
    start_regions: RegionFactory,
    control: ControlTableServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    """Start COUNT replicas over two sandbox regions and one control table."""
    started: list[Responder] = []

    def start(actions: list[dict[str, Any]], count: int = 3, workers: int = 1) -> list[Responder]:
        regions = start_regions()
        put_heartbeat(regions["eu-west-1"], "us-east-1")
        urls = {name: region.url for name, region in regions.items()}
        path = write_config(tmp_path, region_urls=urls, actions=actions)
        data = yaml.safe_load(path.read_text())
        data["responder"]["state"] = control.state(
            TABLE, lease_seconds=LEASE, renew_seconds=LEASE / 3
        )
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        assert create_control_table(load(path)) is True  # never implicit: done by the operator
        # Start together (boots overlap); each replica's env is copied when its process spawns.
        booting: list[threading.Thread] = []
        errors: list[BaseException] = []
        for index in range(count):
            workdir = tmp_path / f"replica-{index}"
            workdir.mkdir()
            monkeypatch.setenv(STATE_DIR_ENV, str(workdir / "records"))
            server = Responder(path, workdir, workers=workers, lease=LEASE)
            started.append(server)
            booting.append(threading.Thread(target=_start, args=(server, errors)))
            booting[-1].start()
            wait_until(partial(_spawned, server, errors), 30, 0.01, "replica spawned")
        for thread in booting:
            thread.join(60)
        if errors:
            raise errors[0]
        return list(started)

    yield start
    for server in started:
        if server.process is not None and server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGCONT)
        server.stop()


def _spawned(server: Responder, errors: list[BaseException]) -> bool:
    return server.process is not None or bool(errors)


def _start(server: Responder, errors: list[BaseException]) -> None:
    try:
        server.start()
    except BaseException as exc:  # reported by the fixture, with the replica's log
        errors.append(exc)


def holder(servers: list[Responder], starts: Path, run: int) -> tuple[Responder, int]:
    """The replica whose worker started the run-th command, and that command's pid."""
    pid, worker = (int(p) for p in starts.read_text().splitlines()[run - 1].split())
    group = os.getpgid(worker)  # gunicorn's workers stay in the master's process group
    (server,) = [s for s in servers if s.process is not None and s.process.pid == group]
    return server, pid


def finished(server: Responder) -> dict[str, Any] | None:
    transitions = server.history()["transitions"]
    return transitions[0] if transitions and transitions[0]["result"] != "in_progress" else None


def steps(transition: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["action"], s["result"]) for s in transition["steps"]]


def test_one_notification_to_every_replica_makes_one_transition(
    cluster: Cluster, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    servers = cluster([appender("notify", runs)], count=3, workers=2)
    body = payload()
    per_server = 6
    barrier = threading.Barrier(per_server * len(servers))
    answers: list[tuple[int, Any]] = []

    def deliver(server: Responder) -> None:
        barrier.wait()
        answers.append(server.webhook(body))

    threads = [
        threading.Thread(target=deliver, args=(s,)) for s in servers for _ in range(per_server)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in answers] == [202] * len(threads)
    kinds = [a["decisions"][0]["kind"] for _, a in answers]
    assert kinds.count("failover") == 1
    assert kinds.count("duplicate") + kinds.count("ignored") == len(threads) - 1

    done = wait_until(lambda: finished(servers[0]), 30, 0.1, "transition completed")
    assert steps(done) == [("notify", "applied")]
    assert lines(runs) == 1
    for server in servers:  # every replica reads the same shared state
        history = server.history()
        assert [t["id"] for t in history["transitions"]] == [done["id"]]
        # Every other delivery is counted: as a decision, or as a repeat of one. Repeats
        # reach the shared history within a second of their replica counting them.
        wait_until(lambda s=server: counted(s) == len(threads) - 1, 30, 0.2, "every repeat counted")
        status = http("GET", f"{server.url}/api/v1/status", headers=auth(VIEWER))[1]
        assert status["active_region"] == "eu-west-1"


def counted(server: Responder) -> int:
    """Deliveries the server's history accounts for, each decision with its repeats."""
    return sum(d["count"] for d in server.history()["decisions"])


def test_killed_holder_is_finished_by_another_without_repeating_a_step(
    cluster: Cluster, tmp_path: Path
) -> None:
    first, second, starts, gate = (tmp_path / n for n in ("first", "second", "starts", "gate"))
    servers = cluster([appender("first", first), blocking("second", starts, gate, second)])
    status, answer = servers[0].webhook(payload())
    assert status == 202
    transition_id = answer["decisions"][0]["transition_id"]
    wait_until(lambda: lines(starts) == 1, 30, 0.05, "second step started")
    doomed, command = holder(servers, starts, 1)
    doomed.kill()
    # The command runs in its own session and outlived its worker: a dead machine takes it too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(command, signal.SIGKILL)
    assert (lines(first), lines(second)) == (1, 0)

    # Once the dead holder's lease expires, a survivor takes over and resumes the journal.
    wait_until(lambda: lines(starts) == 2, 5 * LEASE, 0.05, "a survivor took over")
    successor, _ = holder(servers, starts, 2)
    assert successor is not doomed
    gate.touch()
    survivors = [s for s in servers if s is not doomed]
    done = wait_until(lambda: finished(survivors[0]), 30, 0.1, "transition completed")
    assert (done["id"], done["result"]) == (transition_id, "completed")
    assert steps(done) == [("first", "applied"), ("second", "applied")]
    assert (lines(first), lines(second)) == (1, 1)


def renewed_past(store: DynamoDBStore, lease: Lease) -> bool:
    """True once lease's first expiry has passed and the same holder still has it."""
    now = store.current_lease()
    return time.time() > lease.expires_at + 0.5 and now is not None and now.token == lease.token


def test_paused_holder_resumes_to_find_it_lost_the_lease_and_does_nothing(
    cluster: Cluster, control: ControlTableServer, tmp_path: Path
) -> None:
    first, second, third, starts, gate = (
        tmp_path / n for n in ("first", "second", "third", "starts", "gate")
    )
    servers = cluster(
        [
            appender("first", first),
            blocking("second", starts, gate, second),
            appender("third", third),
        ]
    )
    assert servers[1].webhook(payload())[0] == 202
    wait_until(lambda: lines(starts) == 1, 30, 0.05, "second step started")
    paused, _ = holder(servers, starts, 1)
    assert paused.process is not None
    # While its command waits, the live holder keeps renewing: nobody takes over.
    store = DynamoDBStore(DynamoDBState(**control.state(TABLE)), "us-east-1")
    first_lease = store.current_lease()
    assert first_lease is not None
    wait_until(
        lambda: renewed_past(store, first_lease), 3 * LEASE, 0.1, "lease renewed past its expiry"
    )
    assert lines(starts) == 1
    os.killpg(paused.process.pid, signal.SIGSTOP)  # master and worker; the command keeps waiting
    try:
        wait_until(lambda: lines(starts) == 2, 5 * LEASE, 0.05, "another replica took over")
        successor, _ = holder(servers, starts, 2)
        assert successor is not paused
        gate.touch()  # both commands finish: the one started before the pause, and the new one
        done = wait_until(lambda: finished(successor), 30, 0.1, "transition completed")
    finally:
        os.killpg(paused.process.pid, signal.SIGCONT)
    expected = [("first", "applied"), ("second", "applied"), ("third", "applied")]
    assert steps(done) == expected

    # Resumed, the old holder finds its lease gone: its keeper exits the worker at once, or its
    # journal write is refused first (LeaseLost); gunicorn starts a fresh worker either way.
    wait_until(
        lambda: "event=worker_exit" in paused.log() or "event=reconciler_stopped" in paused.log(),
        30,
        0.1,
        "old holder stopped",
    )
    assert "lost" in paused.log() or "stale" in paused.log()
    wait_until(lambda: http("GET", f"{paused.url}/readyz")[0] == 200, 30, 0.1, "serving again")
    after = successor.history()["transitions"]
    assert [t["id"] for t in after] == [done["id"]] and steps(after[0]) == expected
    assert (lines(first), lines(starts), lines(third)) == (1, 2, 1)


def test_a_black_holed_control_table_fails_readiness_and_acts_on_nothing(
    cluster: Cluster, control: ControlTableServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    servers = cluster([appender("notify", runs)], count=2)
    control.pause()
    try:
        for server in servers:
            status, body = http("GET", f"{server.url}/readyz")
            # The public answer says the store is down; the error itself is in the log.
            assert status == 503 and body["status"] == "unavailable"
            assert "event=not_ready" in server.log() and "timeout" in server.log()
            status, body = server.webhook(payload())
            # 503: Alertmanager keeps the notification and retries it.
            assert status == 503 and "state store unavailable" in body["error"]
        assert lines(runs) == 0
    finally:
        control.resume()
    # Alertmanager's retry, once the table is back, is handled once.
    status, answer = servers[1].webhook(payload())
    assert status == 202 and answer["decisions"][0]["kind"] == "failover"
    done = wait_until(lambda: finished(servers[0]), 30, 0.1, "transition completed")
    assert steps(done) == [("notify", "applied")] and lines(runs) == 1
