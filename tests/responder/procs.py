"""Child-process entry points for the cross-process tests: racing webhooks, a crashing reconciler.

python -m tests.responder.procs race STORE GO THREADS  handle region_down.json from THREADS threads
python -m tests.responder.procs crash DB WORKDIR       reconcile until the second action blocks
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from ddb_failover.config import Retry
from responder.execute.reconciler import Reconciler
from responder.intake.handling import handle_alerts
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


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "race":
        race(args[0], Path(args[1]), int(args[2]))
    elif command == "crash":
        crash(Path(args[0]), Path(args[1]))
    else:
        sys.exit(f"unknown command {command}")
