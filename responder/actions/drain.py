"""A switchover's drain: a marker written in the source, awaited in the target.

After the fence no application write reaches the source; the marker, written after
the fence, reaches the target behind the writes made before it, so once a strongly
consistent read in the target sees the marker (in every table), those writes are
there too. The wait is bounded by responder.switchover.drain_timeout_seconds: a drain
that runs out of time is journaled as such (drained: false), never retried forever
with the fence on; the switchover then unfences and moves nothing, unless forced.

DynamoDB promises no order across items, only that each replicates: the marker is
the evidence the replication stream has caught up, as AWS's guidance for planned
moves has it (pause writes, then wait for replication), not a proof for every item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from responder.actions.aws_client import AWSClientFactory, classify
from responder.actions.base import Action, Json, Transition

DRAIN = "drain"  # the step's name in the journal
KEY_PREFIX = "__ddb_failover_switchover__#"
TRANSITION = "transition_id"
WRITTEN_AT = "written_at"
POLL_SECONDS = 0.1
STOP_CHECK_SECONDS = 1.0  # how often a waiting drain asks whether its transition is aborted
STOPPED = "stopped: the transition is being aborted"


def key_value(source: str) -> str:
    """The canary-key value of the marker written in source (one item per source region)."""
    return KEY_PREFIX + source


class Marker:
    """Writes and reads the drain marker in each table of a region; clients made once."""

    def __init__(
        self,
        endpoints: Mapping[str, str | None],
        tables: Sequence[str],
        key_name: str,
        factory: AWSClientFactory,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._tables = tuple(tables)
        self._key = key_name
        self._factory = factory
        self._clients: dict[str, Any] = {}

    def _client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is None:
            client = self._factory("dynamodb", region, self._endpoints.get(region))
            self._clients[region] = client
        return client

    def write(self, source: str, transition_id: str, at: float) -> None:
        """Put the marker naming transition_id in every table, in source."""
        client = self._client(source)
        for table in self._tables:
            item = {
                self._key: {"S": key_value(source)},
                TRANSITION: {"S": transition_id},
                WRITTEN_AT: {"N": f"{at:.6f}"},
            }
            client.put_item(TableName=table, Item=item)

    def seen(self, region: str, source: str) -> str | None:
        """The transition the source's marker names in region, when every table agrees."""
        client = self._client(region)
        found: set[str | None] = set()
        for table in self._tables:
            answer = client.get_item(
                TableName=table, Key={self._key: {"S": key_value(source)}}, ConsistentRead=True
            )
            item = answer.get("Item") or {}
            found.add(item.get(TRANSITION, {}).get("S"))
        return found.pop() if len(found) == 1 else None


class Drain(Action):
    """The drain step of one switchover: desired is its own marker seen in the target."""

    type = DRAIN

    def __init__(
        self,
        marker: Marker,
        transition_id: str,
        source: str,
        target: str,
        wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(DRAIN)
        self.marker = marker
        self.transition_id = transition_id
        self.source = source
        self.target = target
        self.wait_seconds = wait_seconds
        # The attempt's own bound: the wait, and time for the reads around it.
        self.timeout_seconds = wait_seconds + 30.0
        self._clock = clock
        self._sleep = sleep
        # True once an abort was asked: the wait ends then (the fence stays on until the
        # rollback opens it), not at the timeout, so the abort does not wait it out.
        self._stopped = stopped
        self._waited: Json = {}

    def current(self) -> Json:
        """The transition whose marker from the source the target shows (strongly consistent);
        an unreadable target shows none."""
        try:
            return {"marker": self.marker.seen(self.target, self.source)}
        except (BotoCoreError, ClientError):
            return {"marker": None}  # not seen: apply() waits, bounded, with the fence on

    def desired(self, region: str) -> Json:
        """This switchover's marker."""
        return {"marker": self.transition_id}

    def apply(self, desired: Json, transition: Transition) -> None:
        """Write the marker in the source, then read the target until it shows, or time out.

        Failed writes and reads count against the wait, not as errors: with the fence on,
        a drain must end in bounded time either way. An abort ends the wait too.
        """
        start = self._clock()
        deadline, ask_at = start + self.wait_seconds, start + STOP_CHECK_SECONDS
        written = False
        error = None
        while True:
            try:
                if not written:
                    self.marker.write(self.source, self.transition_id, time.time())
                    written = True
                if self.marker.seen(self.target, self.source) == self.transition_id:
                    self._waited = {"drained": True, "seconds": self._clock() - start}
                    return
            except (BotoCoreError, ClientError) as exc:
                where = self.target if written else self.source
                error = str(classify(f"{DRAIN} in {where}", exc))
            if self._clock() >= deadline:
                break
            if self._clock() >= ask_at:
                ask_at = self._clock() + STOP_CHECK_SECONDS
                if self._stopped():
                    self._waited = {"drained": False, "seconds": self._clock() - start}
                    self._waited["error"] = STOPPED
                    return
            self._sleep(min(POLL_SECONDS, max(0.0, deadline - self._clock())))
        why = (
            f"{self.target} did not show the marker written in {self.source} within "
            f"{self.wait_seconds:g}s"
            + ("" if written else f" (the marker could not be written: {error})")
            + (f" (last error: {error})" if written and error else "")
        )
        self._waited = {"drained": False, "seconds": self._clock() - start, "error": why}

    def verify(self, desired: Json) -> Json:
        """What the wait found; a drain that timed out is a result, not an error."""
        return {
            "marker": desired["marker"] if self._waited.get("drained") else None,
            "timeout_seconds": self.wait_seconds,
            **self._waited,
        }
