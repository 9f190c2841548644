"""Child-process entry points for the cross-process tests: racing webhooks, a crashing reconciler.

python -m tests.responder.procs race STORE GO THREADS  handle region_down.json from THREADS threads
python -m tests.responder.procs crash DB WORKDIR       reconcile until the second action blocks
python -m tests.responder.procs switchover DB WORKDIR  the same, in a switchover: fenced, drained
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ddb_failover.config import Retry
from responder.actions.drain import Drain
from responder.actions.fence import FenceValues
from responder.execute.reconciler import Reconciler
from responder.execute.switchover import Course, FencePart
from responder.intake.handling import handle_alerts
from responder.state.records import TransitionRecord
from responder.state.sqlite.store import SqliteStore
from responder.state.store import StateStore
from sandbox.net import wait_until
from tests.responder.fakes import (
    EAST,
    KEYS,
    FileAction,
    always_ready,
    config,
    region_down_alerts,
)

REPO = Path(__file__).resolve().parents[2]


def kill_when_reached(command: str, db: Path, workdir: Path, reached: str) -> None:
    """Run `python -m tests.responder.procs COMMAND DB WORKDIR`; SIGKILL it once the file
    WORKDIR/REACHED exists (an action blocked there), as a crash mid-step."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.responder.procs", command, str(db), str(workdir)],
        cwd=REPO,
        start_new_session=True,
    )
    try:
        wait_until((workdir / reached).exists, 60, message=f"{reached} reached")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def open_spec(spec: str) -> StateStore:
    """A store from a command-line spec: a SQLite path, or dynamodb:TABLE@ENDPOINT_URL."""
    if not spec.startswith("dynamodb:"):
        return SqliteStore(Path(spec), EAST, keys=KEYS)
    from ddb_failover.config import DynamoDBState
    from responder.state.dynamodb.store import DynamoDBStore

    table, _, url = spec.removeprefix("dynamodb:").partition("@")
    state = DynamoDBState(backend="dynamodb", table=table, region="us-west-2", endpoint_url=url)
    return DynamoDBStore(state, EAST, keys=KEYS)


def race(spec: str, go: Path, threads: int) -> None:
    """Wait for the GO file, then handle the same notification from many threads at once."""
    store = open_spec(spec)
    alerts = region_down_alerts()
    cfg = config()
    results: list[str] = []
    barrier = threading.Barrier(threads)

    def one() -> None:
        barrier.wait()
        handled = handle_alerts(alerts, store, cfg, always_ready, time.time())
        results.append(handled.to_json()["kind"])

    print("ready", flush=True)
    wait_until(go.exists, 30, 0.005, "go file")
    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()  # as a worker exits: the repeats it counted in memory are written
    print(json.dumps(results), flush=True)


def crash(db: Path, workdir: Path) -> None:
    """Run the transition in progress; the second action blocks until we are killed."""
    store = SqliteStore(db, EAST, keys=KEYS)
    actions = [FileAction("first", workdir), FileAction("second", workdir, block=True)]
    Reconciler(store, actions, Retry(), holder="doomed", lease_seconds=5.0).run_once()


class FileMarker:
    """The drain marker in a file: replicated at once (the switchover tests' stand-in)."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "marker.json"
        self.log = workdir / "marker.writes"

    def write(self, source: str, transition_id: str, at: float) -> None:
        with self.log.open("a") as log:
            log.write(transition_id + "\n")
        self.path.write_text(json.dumps(transition_id))

    def seen(self, region: str, source: str) -> str | None:
        return json.loads(self.path.read_text()) if self.path.exists() else None


def switchover_course(workdir: Path, block: bool) -> tuple[list[FileAction], Course]:
    """Two file actions behind a file fence ("ro") and a file marker."""
    actions = [FileAction("first", workdir), FileAction("second", workdir, block=block)]
    fence = FencePart(FileAction("ro", workdir), FenceValues("1", "0"))

    def drain(record: TransitionRecord) -> Drain:
        marker = FileMarker(workdir)
        return Drain(marker, record.id, EAST, record.to_region, 5.0)  # type: ignore[arg-type]

    return actions, Course(actions, [fence], drain)


def switchover(db: Path, workdir: Path) -> None:
    """Run the switchover in progress; its second action blocks until we are killed."""
    store = SqliteStore(db, EAST, keys=KEYS)
    actions, course = switchover_course(workdir, block=True)
    Reconciler(
        store, actions, Retry(), holder="doomed", lease_seconds=5.0, course=course
    ).run_once()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "race":
        race(args[0], Path(args[1]), int(args[2]))
    elif command == "crash":
        crash(Path(args[0]), Path(args[1]))
    elif command == "switchover":
        switchover(Path(args[0]), Path(args[1]))
    else:
        sys.exit(f"unknown command {command}")
