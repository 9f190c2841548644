"""The control table's calls and its current item, which every part of the DynamoDB store reads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from responder.state.dynamodb import chained_table
from responder.state.dynamodb.chained_table import (
    CURRENT_KEY,
    TRANSITION,
    ChainedTable,
    ConditionFailed,
)
from responder.state.dynamodb.items import Item, n, s
from responder.state.repeats import RepeatTally
from responder.state.store import StoreUnavailable

INIT_COMMAND = "ddb-responder init-state --config PATH"
RECENT_LIMIT = 100
RECENT_WINDOW = 2 * 3600.0
# The fencing condition: the caller's token is the live lease's.
FENCED = "#lease_token = :token AND #lease_expires > :now"
RUNNING = "#t.#id = :tid AND #t.#result = :running"


class ControlTable(ChainedTable):
    """The control table: its calls, the current item, and the archive every part shares."""

    table: str
    where: str
    _primary: str
    _clock: Callable[[], float]
    _client: Any
    _tally: RepeatTally

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One API call; every failure but a false condition becomes StoreUnavailable."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed() from None
            if code == "ResourceNotFoundException":
                raise StoreUnavailable(
                    f"control table {self.where} does not exist: create it with `{INIT_COMMAND}`"
                ) from None
            message = error.get("Message", "")
            raise StoreUnavailable(f"control table {self.where}: {code}: {message}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"control table {self.where}: {exc}") from None

    def _get(self, key: Item) -> Item | None:
        answer = self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
        item: Item | None = answer.get("Item")
        return item

    def _put(self, partition: str, sort_key: str, attributes: Item) -> None:
        item = {"pk": s(partition), "sk": s(sort_key), **attributes}
        self._call("put_item", TableName=self.table, Item=item)

    def _current(self) -> Item:
        """The current item, written first if the table is new (the primary is active)."""
        item = self._get(CURRENT_KEY)
        if item is not None:
            return item
        seed = {
            **CURRENT_KEY,
            "active_region": s(self._primary),
            "version": n(0),
            "seq": n(0),
            "lease_token": n(0),
            "lease_expires": n(0),
            "actions": {"M": {}},
            **chained_table.seed(self._clock(), self._key, self._primary),
        }
        # A false condition means another replica seeded it first.
        with contextlib.suppress(ConditionFailed):
            self._call(
                "put_item",
                TableName=self.table,
                Item=seed,
                ConditionExpression="attribute_not_exists(pk)",
            )
        item = self._get(CURRENT_KEY)
        if item is None:
            raise StoreUnavailable(f"control table {self.where}: the state item vanished")
        return item

    def _archive(self, transition: Item) -> None:
        """Keep a finished transition as its own item (idempotent: same key, same content)."""
        self._put(TRANSITION, transition["id"]["S"], transition)
