"""What only the DynamoDB store does: its table's creation, and failing fast when unreachable."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ddb_failover.config import Config, DynamoDBState
from responder.state.backends import open_store
from responder.state.dynamodb.client import client_for
from responder.state.dynamodb.create_table import create_control_table
from responder.state.dynamodb.store import DynamoDBStore
from responder.state.outbox import Delivery, Notice
from responder.state.records import Cause, NewTransition
from responder.state.store import StoreError, StoreUnavailable
from sandbox.control_table import ControlTableServer
from sandbox.net import free_port
from tests.responder.fakes import EAST, WEST, config

# One attempt with a 1 s connect and 2 s read timeout: a black hole costs ~2 s; botocore's
# default (3 attempts with backoff, or a 60 s read) would cost over 6 s.
BLACK_HOLE_BUDGET = 5.5


def with_state(state: DynamoDBState) -> Config:
    return config().model_copy(
        update={"responder": config().responder.model_copy(update={"state": state})}
    )


@pytest.fixture
def state(control_server: ControlTableServer) -> DynamoDBState:
    return DynamoDBState(**control_server.state(f"control-{uuid.uuid4().hex[:12]}"))


def test_open_store_builds_a_dynamodb_store_without_touching_the_network() -> None:
    unreachable = DynamoDBState(
        backend="dynamodb",
        table="ddb-failover-control",
        region="us-west-2",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
    )
    store = open_store(with_state(unreachable))
    assert isinstance(store, DynamoDBStore)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="ddb-failover-control in us-west-2"):
        store.ping()  # connection refused: fails at once
    assert time.monotonic() - started < BLACK_HOLE_BUDGET


def test_a_missing_table_says_how_to_create_it(state: DynamoDBState) -> None:
    store = DynamoDBStore(state, EAST)
    for call in (store.ping, store.state, lambda: store.acquire_lease("a", 5)):
        with pytest.raises(StoreUnavailable, match="ddb-responder init-state --config"):
            call()


def test_create_is_explicit_and_idempotent(state: DynamoDBState) -> None:
    cfg = with_state(state)
    assert create_control_table(cfg) is True
    store = DynamoDBStore(state, EAST)
    store.ping()
    assert store.state().active_region == EAST  # the primary is active in a new table
    store.freeze("alice", "drill")
    assert create_control_table(cfg) is False  # an existing table is fine, and kept
    assert store.state().frozen is not None


def test_create_refuses_a_table_of_another_shape(state: DynamoDBState) -> None:
    client_for(state).create_table(
        TableName=state.table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(StoreError, match="cannot be the control table: key schema"):
        create_control_table(with_state(state))


def test_create_refuses_a_protected_table(control_server: ControlTableServer) -> None:
    protected = DynamoDBState(**control_server.state("wordpress_posts"))
    with pytest.raises(StoreError, match="'wordpress_posts' is a protected table"):
        create_control_table(with_state(protected))
    with pytest.raises(StoreError, match="not dynamodb"):
        create_control_table(config())


def test_replicas_seeding_a_new_table_agree(state: DynamoDBState) -> None:
    create_control_table(with_state(state))
    # A second replica configured with another primary does not overwrite the first's seed.
    first, second = DynamoDBStore(state, EAST), DynamoDBStore(state, WEST)
    assert first.state().active_region == EAST
    assert second.state().active_region == EAST


def test_a_black_holed_table_is_unavailable_within_seconds(
    tmp_path: Path, state: DynamoDBState
) -> None:
    server = ControlTableServer(tmp_path).start()
    try:
        paused = DynamoDBState(**server.state(state.table))
        create_control_table(with_state(paused))
        store = DynamoDBStore(paused, EAST)
        store.state()
        server.pause()
        for call in (store.ping, lambda: store.acquire_lease("a", 5)):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="timeout"):
                call()
            assert time.monotonic() - started < BLACK_HOLE_BUDGET
        server.resume()
        store.ping()  # the same store object recovers with the table
    finally:
        server.close()


def test_a_transition_whose_archive_write_was_lost_stays_in_the_history(
    state: DynamoDBState,
) -> None:
    """Killed between finishing and archiving: the next begin archives it first."""
    create_control_table(with_state(state))
    store = DynamoDBStore(state, EAST)
    cause = Cause(alerts=({"fingerprint": "f", "key": "f@t"},))
    first = store.begin_transition(NewTransition("failover", EAST, WEST, cause, 1.0, False), 0)
    assert first is not None
    lease = store.acquire_lease("me", 60)
    assert lease is not None
    store.finish_transition(first.id, "completed", lease.token)
    client_for(state).delete_item(
        TableName=state.table, Key={"pk": {"S": "transition"}, "sk": {"S": first.id}}
    )
    assert [t["id"] for t in store.history()["transitions"]] == [first.id]  # from the state item
    second = store.begin_transition(
        NewTransition("failback", WEST, EAST, cause, None, False), store.state().version
    )
    assert second is not None
    assert [t["id"] for t in store.history()["transitions"]] == [second.id, first.id]
    assert store.transition(first.id).result == "completed"


def test_notices_of_a_writer_that_died_after_its_change_are_queued_by_the_next(
    state: DynamoDBState,
) -> None:
    """Killed between the chained write and the outbox put: the next writer queues them."""
    create_control_table(with_state(state))
    store = DynamoDBStore(state, EAST)
    told = Notice("t1:started", "started", 1.0, "t1", {"summary": "x"}, {"chat": Delivery()})
    store.record_decision("blocked", "no", Cause(), announce=lambda d: [told])
    client = client_for(state)
    seq = client.get_item(TableName=state.table, Key={"pk": {"S": "state"}, "sk": {"S": "current"}})
    last = f"{int(seq['Item']['chain_seq']['N']):016d}"
    for pk, sk in (("outbox", told.id), ("audit", last)):
        client.delete_item(TableName=state.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    assert store.notices(2.0) == []
    DynamoDBStore(state, EAST).record_decision("ignored", "later", Cause())
    assert [n.id for n in store.notices(2.0)] == [told.id]
    # A delivered notice is not queued again by a later writer's repair.
    claimed = store.claim_notice(told.id, "me", 100.0, 2.0)
    assert claimed is not None
    store.update_notice(
        claimed.with_delivery("chat", Delivery("delivered", 1, 0.0, None, 3.0)), "me"
    )
    DynamoDBStore(state, EAST).record_decision("ignored", "again", Cause())
    assert store.notices(4.0) == []
    assert store.prune(10.0) >= 0 and _outbox(client, state) == []


def _outbox(client: object, state: DynamoDBState) -> list[str]:
    answer = client.query(  # type: ignore[attr-defined]
        TableName=state.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "outbox"}},
    )
    return [i["sk"]["S"] for i in answer["Items"]]


def test_init_state_command_creates_once_and_refuses_sqlite(
    control_server: ControlTableServer, tmp_path: Path
) -> None:
    def init_state(config: Config) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "ddb-failover.yml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
        command = [sys.executable, "-m", "responder", "init-state", "--config", str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    table = f"control-cli-{uuid.uuid4().hex[:8]}"
    with_table = with_state(DynamoDBState(**control_server.state(table)))
    first = init_state(with_table)
    assert (first.returncode, first.stdout.strip()) == (0, f"control table {table}: created")
    again = init_state(with_table)
    assert (again.returncode, again.stdout.strip()) == (0, f"control table {table}: exists")
    sqlite = init_state(config())
    assert sqlite.returncode == 1
    assert "responder.state.backend is not dynamodb" in sqlite.stderr
