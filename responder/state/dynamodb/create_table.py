"""`ddb-responder init-state`: create the control table the config names, or check the one there."""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from ddb_failover.config import Config, DynamoDBState
from responder.state.dynamodb.client import client_for
from responder.state.dynamodb.store import DynamoDBStore
from responder.state.keys import AuditKeys
from responder.state.records import Json
from responder.state.store import StoreError, StoreUnavailable


def _key_schema_problem(table: Json) -> str | None:
    """Why an existing table cannot be the control table, or None when it can."""
    keys = sorted((k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", []))
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    if keys != [("pk", "HASH"), ("sk", "RANGE")] or (types.get("pk"), types.get("sk")) != (
        "S",
        "S",
    ):
        return f"key schema {keys} is not pk (S, HASH) + sk (S, RANGE)"
    return None


def create_control_table(config: Config, wait_seconds: float = 120.0) -> bool:
    """Create the control table the config names; False when a suitable one already exists.

    StoreError when an existing table has another key schema or the table is a
    protected one; StoreUnavailable when DynamoDB cannot be reached.
    """
    state = config.responder.state
    if not isinstance(state, DynamoDBState):
        raise StoreError("responder.state.backend is not dynamodb: there is no table to create")
    if state.table in config.tables:
        raise StoreError(
            f"responder.state.table {state.table!r} is a protected table: use a separate table"
        )
    client = client_for(state, timeout=10.0)
    # The genesis is sealed with the audit key when one is configured (the responder needs it).
    audit = config.responder.audit
    keys = AuditKeys.from_config(audit) if audit.key_file is not None else None
    store = DynamoDBStore(state, config.primary, client=client, keys=keys)
    created = True
    try:
        client.create_table(
            TableName=state.table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise StoreUnavailable(f"cannot create control table {store.where}: {exc}") from None
        created = False
    except BotoCoreError as exc:
        raise StoreUnavailable(f"cannot create control table {store.where}: {exc}") from None
    deadline = time.monotonic() + wait_seconds
    while True:
        table = store._call("describe_table", TableName=state.table)["Table"]
        problem = _key_schema_problem(table)
        if problem is not None:
            raise StoreError(f"table {store.where} cannot be the control table: {problem}")
        if table.get("TableStatus") == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"control table {store.where} is not ACTIVE after {wait_seconds:g}s"
            )
        time.sleep(1.0)  # real DynamoDB takes seconds to create a table: poll, gently
    store.state()  # seed the state item: the primary is active
    return created
