"""The shared state store: one DynamoDB control table, so several responder replicas can run.

Everything a guard needs lives in one item, ("state", "current"): the active
region and version, the freeze, the reconciler lease (holder, fencing token,
expiry) and the last transition with its journaled steps. Every change is one
conditional UpdateItem on it, so DynamoDB itself settles races:

- begin_transition() requires the version the decision was made on;
- journal_step() and finish_transition() require the caller's fencing token to
  be the live lease's, in the same write that appends the step;
- the lease changes hands only when the condition sees it free or expired,
  and its token only grows.

No transactions are used. Finished transitions are archived as ("transition",
ID) items (IDs sort by sequence number), decisions as ("decision", ID), and
notification notices as ("outbox", ID). Every change to the history also appends
to the audit chain in the same write (responder.state.dynamodb_chain); the notices
a change queues travel in that write too, and are copied to their own items before
the chain moves on, as its events are.

The client makes one attempt with short timeouts: a black-holed control table
turns into StoreUnavailable (webhook 503, Alertmanager retries) within seconds.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ddb_failover.config import Config, DynamoDBState
from responder.model.alerts import format_time
from responder.state import chain, dynamodb_chain
from responder.state import dynamodb_items as items
from responder.state.base import (
    VERIFIED_RESULTS,
    Approval,
    Attempts,
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    Json,
    Lease,
    LeaseLost,
    NewTransition,
    Operation,
    PhaseInputs,
    State,
    StateStore,
    StepRecord,
    StoreError,
    StoreUnavailable,
    TransitionKind,
    TransitionRecord,
    UnknownTransition,
    blocks_phase,
    clears_block,
    desired_region,
    phase,
    repeat_key,
)
from responder.state.dynamodb_chain import (
    AUDIT,
    CURRENT_KEY,
    DECISION,
    OUTBOX,
    REPEAT,
    TRANSITION,
    ChainedTable,
    Write,
)
from responder.state.dynamodb_items import Item, n, s
from responder.state.dynamodb_repeats import add_repeats, count_or_claim
from responder.state.outbox import Announce, Notice, announced
from responder.state.repeats import Handle, RepeatTally, anew

INIT_COMMAND = "ddb-responder init-state --config PATH"
RECENT_LIMIT = 100
BATCH = 25  # BatchWriteItem's limit
RECENT_WINDOW = 2 * 3600.0
CONNECT_TIMEOUT, READ_TIMEOUT = 1.0, 2.0
# The fencing condition: the caller's token is the live lease's.
FENCED = "#lease_token = :token AND #lease_expires > :now"
RUNNING = "#t.#id = :tid AND #t.#result = :running"


_ConditionFailed = dynamodb_chain.ConditionFailed


def client_for(state: DynamoDBState, timeout: float = READ_TIMEOUT) -> Any:
    """A DynamoDB client for the control table: one attempt, short timeouts, no hidden retries."""
    session = boto3.session.Session()  # the default session is not safe to share across threads
    return session.client(
        "dynamodb",
        region_name=state.region,
        endpoint_url=state.endpoint_url,
        config=BotoConfig(
            connect_timeout=min(CONNECT_TIMEOUT, timeout),
            read_timeout=timeout,
            retries={"total_max_attempts": 1},
        ),
    )


class DynamoDBStore(ChainedTable, StateStore):
    """StateStore on a DynamoDB control table; primary is the active region of a new store.

    Construction does no I/O: a replica starts (and answers 503) while the table is unreachable.
    """

    def __init__(
        self,
        state: DynamoDBState,
        primary: str,
        clock: Callable[[], float] = time.time,
        client: Any = None,
    ) -> None:
        self.table = state.table
        self.where = f"{state.table} in {state.region}" + (
            f" at {state.endpoint_url}" if state.endpoint_url else ""
        )
        self._primary = primary
        self._clock = clock
        self._client = client if client is not None else client_for(state)
        self._tally = RepeatTally(self._write_repeats, anew(self.record_decision))

    # -- calls ---------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One API call; every failure but a false condition becomes StoreUnavailable."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed() from None
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

    # -- the current item ----------------------------------------------------

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
            **dynamodb_chain.seed(self._clock()),
        }
        # A false condition means another replica seeded it first.
        with contextlib.suppress(_ConditionFailed):
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

    def _state(self, item: Item) -> State:
        last = items.transition(item["t"]["M"]) if "t" in item else None
        running = last if last is not None and last.in_progress else None
        active = item["active_region"]["S"]
        now = self._clock()
        starts = [float(v["N"]) for v in item.get("recent_starts", {}).get("L", [])]
        frozen = items.freeze(item)
        return State(
            active_region=active,
            desired_region=desired_region(active, last),
            phase=phase(
                PhaseInputs(
                    frozen=frozen,
                    in_progress=running,
                    last_transition=last,
                    last_blocked_at=items.opt_n(item, "last_blocked_at"),
                    last_unfrozen_at=items.opt_n(item, "unfrozen_at"),
                    now=now,
                )
            ),
            frozen=frozen,
            in_progress=running,
            last_transition=last,
            last_completed_at=items.opt_n(item, "last_completed_at"),
            recent_starts=tuple(reversed([x for x in starts if x > now - RECENT_WINDOW])),
            version=items.integer(item, "version"),
        )

    def _archive(self, transition: Item) -> None:
        """Keep a finished transition as its own item (idempotent: same key, same content)."""
        self._put(TRANSITION, transition["id"]["S"], transition)

    # -- StateStore ----------------------------------------------------------

    def state(self) -> State:
        return self._state(self._current())

    def begin_transition(
        self, new: NewTransition, expected_version: int, announce: Announce | None = None
    ) -> TransitionRecord | None:
        item = self._current()
        previous = item.get("t", {}).get("M")
        if items.integer(item, "version") != expected_version:
            return None
        if previous is not None and previous["result"]["S"] == "in_progress":
            return None
        if previous is not None:
            self._archive(previous)  # before the current item forgets it
        now = self._clock()
        seq = items.integer(item, "seq") + 1
        transition_id = f"t-{seq:08d}-{secrets.token_hex(3)}"
        # The version condition pins seq and recent_starts to what we just read.
        starts = [float(v["N"]) for v in item.get("recent_starts", {}).get("L", [])]
        starts = [x for x in starts if x > now - RECENT_WINDOW][-(RECENT_LIMIT - 1) :]
        record = items.new_transition(transition_id, new, now)
        begun = items.transition(record)
        write = Write(
            "SET #version = :next, #seq = :seq, #t = :t, #recent_starts = :starts",
            {
                ":expected": n(expected_version),
                ":next": n(expected_version + 1),
                ":seq": n(seq),
                ":t": {"M": record},
                ":starts": {"L": [n(x) for x in [*starts, now]]},
            },
            "#version = :expected",
            chain.begun(begun),
            at=now,
            notices=tuple(announced(announce, begun)),
        )
        try:
            self._chained(lambda _: write, item)
        except _ConditionFailed:
            return None  # another request changed the state first
        return begun

    def record_decision(
        self,
        kind: DecisionKind,
        reason: str,
        cause: Cause,
        *,
        region: str | None = None,
        to_region: str | None = None,
        transition_kind: TransitionKind | None = None,
        freeze: Freeze | None = None,
        announce: Announce | None = None,
    ) -> DecisionRecord:
        at = self._clock()
        new = DecisionRecord(
            id=f"d-{int(at * 1e6):016d}-{secrets.token_hex(3)}",
            at=at,
            kind=kind,
            reason=reason,
            cause=cause,
            region=region,
            to_region=to_region,
            transition_kind=transition_kind,
        )
        key = repeat_key(kind, reason, cause)
        if key is not None and freeze is None:
            counted = self._tally.count(key, at)
            if counted is not None:
                return counted
        # The freeze first: if the decision's own write then fails, the webhook answers 503
        # and Alertmanager's retry records it; a freeze is never lost.
        if freeze is not None:
            self._current()
            self._freeze(freeze)
        if key is not None:
            repeated = count_or_claim(self._call, self.table, key, new.id, self._clock)
            if repeated is not None:
                # A repeat blocks (or clears a block) as a new decision would.
                if blocks_phase(repeated):
                    self._current()
                    self._update(
                        "SET #last_blocked_at = :at", {":at": n(at)}, "attribute_exists(pk)"
                    )
                elif clears_block(repeated):
                    self._current()
                    self._update("REMOVE #last_blocked_at", condition="attribute_exists(pk)")
                self._tally.remember(key, repeated.id, repeated)
                return repeated
        notices = tuple(announced(announce, new))
        self._chained(lambda _: _decision_write(new, notices))
        if key is not None:
            self._tally.remember(key, new.id, new)
        return new

    def _write_repeats(
        self, key: str, decision_id: Handle, times: int, at: float
    ) -> DecisionRecord | None:
        """The tally's write: times more repeats of key's decision (None: pruned). Decision
        ids are unique, so the id alone names key's decision."""
        return add_repeats(self._call, self.table, str(decision_id), at, times)

    def _freeze(self, freeze: Freeze) -> None:
        freeze = replace(freeze, at=freeze.at or self._clock())
        write = Write(
            "SET #frozen_by = :by, #frozen_reason = :reason, #frozen_at = :at,"
            " #frozen_auto = :auto, #version = #version + :one",
            {
                ":by": s(freeze.by),
                ":reason": s(freeze.reason),
                ":at": n(freeze.at),
                ":auto": {"BOOL": freeze.automatic},
                ":one": n(1),
            },
            "attribute_exists(pk) AND attribute_not_exists(#frozen_by)",
            chain.frozen(freeze),
        )
        # A false condition means already frozen: the first freeze's who and why stay.
        with contextlib.suppress(_ConditionFailed):
            self._chained(lambda _: write)

    def _refused(self, token: int, transition_id: str, now: float) -> StoreError:
        """What a refused fenced write means: LeaseLost first, as the SQLite store says."""
        item = self._get(CURRENT_KEY) or {}
        live = items.opt_n(item, "lease_expires") or 0.0
        if items.integer(item, "lease_token") != token or live <= now:
            return LeaseLost(f"fencing token {token} is stale or its lease expired")
        return UnknownTransition(f"no transition {transition_id} in progress")

    def _fenced_update(
        self,
        transition_id: str,
        fencing_token: int,
        update: str,
        values: Mapping[str, Any],
        event: chain.Pending,
        extra_names: Mapping[str, str] | None = None,
        notices: Sequence[Notice] = (),
    ) -> None:
        """An update of the running transition by the lease holder; LeaseLost when refused."""
        now = self._clock()
        fenced = {
            **values,
            ":token": n(fencing_token),
            ":now": n(now),
            ":tid": s(transition_id),
            ":running": s("in_progress"),
            ":one": n(1),
            ":zero": n(0),
        }
        write = Write(
            f"{update}, #t.#revision = if_not_exists(#t.#revision, :zero) + :one",
            fenced,
            f"{FENCED} AND {RUNNING}",
            event,
            extra_names,
            notices=tuple(notices),
        )
        try:
            self._chained(lambda _: write)
        except _ConditionFailed:
            raise self._refused(fencing_token, transition_id, now) from None

    def journal_step(self, transition_id: str, step: StepRecord, fencing_token: int) -> None:
        at = step.at or self._clock()
        running = self._current().get("t", {}).get("M")
        region = None
        if running is not None and running["id"]["S"] == transition_id:
            region = self._step_region(running, step)
        stored = replace(step, at=at, fencing_token=fencing_token)
        # Steps run one at a time: once one is journaled, nothing is in trouble.
        self._fenced_update(
            transition_id,
            fencing_token,
            "SET #t.#steps = list_append(#t.#steps, :step), #actions.#action = :summary,"
            " #t.#attempts = :none",
            {
                ":step": {"L": [items.step_value(step, fencing_token, at)]},
                ":summary": items.action_summary(transition_id, step, at, region),
                ":none": items.attempts_value(None),
            },
            chain.journaled(transition_id, stored),
            {"#action": step.action},
        )

    def _step_region(self, running: Item, step: StepRecord) -> str | None:
        """The region a step leaves its object in; else the one the summary already had."""
        if step.result in VERIFIED_RESULTS:
            record = items.transition(running)
            return record.from_region if step.rollback else record.to_region
        summary = self._current().get("actions", {}).get("M", {}).get(step.action, {}).get("M")
        return items.opt_s(summary, "region") if summary else None

    def record_attempts(
        self,
        transition_id: str,
        attempts: Attempts,
        fencing_token: int,
        notices: Sequence[Notice] = (),
    ) -> None:
        self._fenced_update(
            transition_id,
            fencing_token,
            "SET #t.#attempts = :attempts",
            {":attempts": items.attempts_value(attempts)},
            chain.attempted(transition_id, attempts),
            notices=notices,
        )

    def operate(
        self,
        transition_id: str,
        expected_revision: int,
        operation: Operation | None,
        attempts: Attempts | None,
        step: StepRecord | None = None,
        approval: Approval | None = None,
        notices: Sequence[Notice] = (),
    ) -> TransitionRecord | None:
        update = "SET #t.#attempts = :attempts, #t.#revision = :next"
        values: dict[str, Any] = {
            ":attempts": items.attempts_value(attempts),
            ":next": n(expected_revision + 1),
            ":tid": s(transition_id),
            ":running": s("in_progress"),
        }
        names: dict[str, str] = {}
        if operation is not None:
            update += ", #t.#operations = list_append(if_not_exists(#t.#operations, :empty), :op)"
            values[":op"] = {"L": [items.operation_value(operation)]}
            values[":empty"] = {"L": []}
        if approval is not None:
            update += ", #t.#approval = :approval"
            values[":approval"] = items.j(approval.to_store())
        stored = None
        if step is not None:
            at = step.at or self._clock()
            stored = replace(step, at=at, fencing_token=0)  # as items.step_value(step, 0) keeps it
            running = self._current().get("t", {}).get("M") or {}
            region = self._step_region(running, step) if running else None
            update += ", #t.#steps = list_append(#t.#steps, :step), #actions.#action = :summary"
            values[":step"] = {"L": [items.step_value(step, 0, at)]}
            values[":summary"] = items.action_summary(transition_id, step, at, region)
            names["#action"] = step.action
        revision = (
            "#t.#revision = :expected"
            if expected_revision
            else ("(attribute_not_exists(#t.#revision) OR #t.#revision = :expected)")
        )
        values[":expected"] = n(expected_revision)
        write = Write(
            update,
            values,
            f"{RUNNING} AND {revision}",
            chain.operated(transition_id, operation, attempts, stored, approval),
            names,
            notices=tuple(notices),
        )
        try:
            self._chained(lambda _: write)
        except _ConditionFailed:
            running = self._current().get("t", {}).get("M")
            if running is None or running["id"]["S"] != transition_id:
                raise UnknownTransition(f"no transition {transition_id} in progress") from None
            if running["result"]["S"] != "in_progress":
                raise UnknownTransition(f"no transition {transition_id} in progress") from None
            return None  # the revision moved: the caller reads again and re-checks
        return self.transition(transition_id)

    def completed_steps(self, transition_id: str) -> dict[str, StepRecord]:
        try:
            record = self.transition(transition_id)
        except UnknownTransition:
            return {}
        return record.done_steps()

    def finish_transition(
        self,
        transition_id: str,
        result: Literal["completed", "failed", "aborted", "declined", "blocked"],
        fencing_token: int,
        error: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> TransitionRecord:
        now = self._clock()
        running = self._current().get("t", {}).get("M")
        if running is None or running["id"]["S"] != transition_id:
            raise self._refused(fencing_token, transition_id, now)
        update = (
            "SET #t.#result = :result, #t.#finished_at = :now, #version = #version + :one,"
            " #t.#revision = if_not_exists(#t.#revision, :zero) + :one"
        )
        values: dict[str, Any] = {
            ":result": s(result),
            ":now": n(now),
            ":one": n(1),
            ":token": n(fencing_token),
            ":tid": s(transition_id),
            ":running": s("in_progress"),
            ":zero": n(0),
        }
        if error is not None:
            update += ", #t.#error = :error"
            values[":error"] = s(error)
        if result == "completed":
            update += ", #last_completed_at = :now"
            if not running["dry_run"]["BOOL"]:  # to_region never changes: safe to read first
                update += ", #active_region = :to"
                values[":to"] = running["to_region"]
        ended = replace(items.transition(running), result=result, finished_at=now)
        ended = ended if error is None else replace(ended, error=error)
        write = Write(
            update,
            values,
            f"{FENCED} AND {RUNNING}",
            chain.finished(ended),
            at=now,
            notices=tuple(notices),
        )
        try:
            self._chained(lambda _: write)
        except _ConditionFailed:
            raise self._refused(fencing_token, transition_id, now) from None
        finished = self._current()["t"]["M"]
        if finished["id"]["S"] != transition_id:
            return self.transition(transition_id)  # a newer one began and archived ours
        self._archive(finished)
        return items.transition(finished)

    def transition(self, transition_id: str) -> TransitionRecord:
        current = self._current().get("t", {}).get("M")
        if current is not None and current["id"]["S"] == transition_id:
            return items.transition(current)
        archived = self._get({"pk": s(TRANSITION), "sk": s(transition_id)})
        if archived is None:
            raise UnknownTransition(f"no transition {transition_id}")
        return items.transition(archived)

    def freeze(self, by: str, reason: str, automatic: bool = False) -> State:
        self._current()
        self._freeze(Freeze(by, reason, self._clock(), automatic))
        return self.state()

    def unfreeze(self, by: str, reason: str) -> State:
        now = self._clock()
        write = Write(
            "SET #unfrozen_at = :now, #version = #version + :one"
            " REMOVE #frozen_by, #frozen_reason, #frozen_at, #frozen_auto",
            {":now": n(now), ":one": n(1)},
            "attribute_exists(#frozen_by)",
            chain.unfrozen(by, reason, now),
            at=now,
        )
        # A false condition means not frozen: nothing to do.
        with contextlib.suppress(_ConditionFailed):
            self._chained(lambda _: write)
        return self.state()

    def _newest(self, partition: str, limit: int) -> Iterator[Item]:
        """Up to limit items of a partition, newest (largest sort key) first."""
        left = limit
        start: Item | None = None
        while left > 0:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": s(partition)},
                "ScanIndexForward": False,
                "ConsistentRead": True,
                "Limit": left,
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._call("query", **kwargs)
            found = answer.get("Items", [])
            yield from found
            left -= len(found)
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return

    def history(self, limit: int = 50) -> Json:
        self._tally.flush()
        current = self._current().get("t", {}).get("M")
        transitions = []
        if current is not None:  # the authoritative copy, archived or not yet
            transitions.append(items.transition(current))
        for item in self._newest(TRANSITION, limit + 1):
            if current is None or item["id"]["S"] != current["id"]["S"]:
                transitions.append(items.transition(item))
        return {
            "transitions": [t.to_json() for t in transitions[:limit]],
            "decisions": [items.decision(i).to_json() for i in self._newest(DECISION, limit)],
        }

    def action_results(self) -> dict[str, Json]:
        actions = self._current().get("actions", {}).get("M", {})
        out: dict[str, Json] = {}
        for name in sorted(actions):
            m = actions[name]["M"]
            out[name] = {
                "result": m["result"]["S"],
                "at": format_time(float(m["at"]["N"])),
                "transition_id": m["transition_id"]["S"],
                "error": items.opt_s(m, "error"),
                "region": items.opt_s(m, "region"),
            }
        return out

    def acquire_lease(self, holder: str, ttl_seconds: float) -> Lease | None:
        now = self._clock()
        expires = now + ttl_seconds
        item = self._current()
        live = items.lease(item, now)
        token = items.integer(item, "lease_token")
        if live is not None and live.holder != holder:
            return None
        values = {":holder": s(holder), ":expires": n(expires), ":token": n(token), ":now": n(now)}
        try:
            if live is not None:
                # Re-acquiring our own live lease keeps the token.
                self._update(
                    "SET #lease_expires = :expires",
                    values,
                    f"#lease_holder = :holder AND {FENCED}",
                )
                return Lease(holder, token, expires)
            # Taking over: the condition pins the token we read, so two contenders cannot
            # both get token+1, and tokens only ever grow.
            self._update(
                "SET #lease_holder = :holder, #lease_token = :next, #lease_expires = :expires",
                {**values, ":next": n(token + 1)},
                "#lease_token = :token AND (attribute_not_exists(#lease_holder)"
                " OR #lease_expires <= :now)",
            )
        except _ConditionFailed:
            return None  # someone else moved first
        return Lease(holder, token + 1, expires)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        now = self._clock()
        try:
            self._update(
                "SET #lease_expires = :expires",
                {
                    ":expires": n(now + ttl_seconds),
                    ":holder": s(lease.holder),
                    ":token": n(lease.token),
                    ":now": n(now),
                },
                f"#lease_holder = :holder AND {FENCED}",
            )
        except _ConditionFailed:
            raise LeaseLost(f"lease of {lease.holder} (token {lease.token}) is lost") from None
        return Lease(lease.holder, lease.token, now + ttl_seconds)

    def release_lease(self, lease: Lease) -> None:
        # A false condition means the lease is not ours any more: nothing to give up.
        with contextlib.suppress(_ConditionFailed):
            self._update(
                "SET #lease_expires = :zero REMOVE #lease_holder",
                {":zero": n(0), ":holder": s(lease.holder), ":token": n(lease.token)},
                "#lease_holder = :holder AND #lease_token = :token",
            )

    def current_lease(self) -> Lease | None:
        """Who holds the reconciler lease now (for operators and tests); None when free."""
        return items.lease(self._current(), self._clock())

    def notices(self, now: float, limit: int = 50) -> list[Notice]:
        pending = [items.notice(i) for i in self._query(OUTBOX) if i["pending"]["BOOL"]]
        return sorted(pending, key=lambda x: (x.at, x.id))[:limit]

    def claim_notice(self, notice_id: str, holder: str, until: float, now: float) -> Notice | None:
        try:
            answer = self._call(
                "update_item",
                TableName=self.table,
                Key={"pk": s(OUTBOX), "sk": s(notice_id)},
                UpdateExpression="SET #claimed_by = :holder, #claim_until = :until",
                ConditionExpression="#pending = :true AND #claim_until <= :now",
                ExpressionAttributeNames={
                    "#claimed_by": "claimed_by",
                    "#claim_until": "claim_until",
                    "#pending": "pending",
                },
                ExpressionAttributeValues={
                    ":holder": s(holder),
                    ":until": n(until),
                    ":now": n(now),
                    ":true": {"BOOL": True},
                },
                ReturnValues="ALL_NEW",
            )
        except _ConditionFailed:
            return None
        notice = items.notice(answer["Attributes"])
        if not notice.due(now):  # listed as due, retried since: let it wait its own time
            self.update_notice(notice, holder)
            return None
        return notice

    def update_notice(self, notice: Notice, holder: str) -> None:
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=items.notice_item(notice),
                ConditionExpression="#claimed_by = :holder",
                ExpressionAttributeNames={"#claimed_by": "claimed_by"},
                ExpressionAttributeValues={":holder": s(holder)},
            )
        except _ConditionFailed:
            raise LeaseLost(f"notice {notice.id} is not claimed by {holder}") from None

    def audit_log(self) -> chain.AuditLog:
        self._tally.flush()
        return super().audit_log()

    def close(self) -> None:
        self._tally.flush()

    def prune(self, before: float) -> int:
        self._tally.flush()
        current = self._current().get("t", {}).get("M")
        keep = current["id"]["S"] if current is not None else None
        listed = [i for p in (DECISION, TRANSITION) for i in self._partition(p)]
        delivered = [i for i in self._partition(OUTBOX) if _older(i, before)]
        doomed = [i for i in listed if _older(i, before) and i["sk"]["S"] != keep]
        gone = {i["sk"]["S"] for i in doomed}
        kept = {i["sk"]["S"] for i in listed} - gone
        events: list[int] = []

        def build(item: Item) -> Write | None:
            anchor = items.anchor(item)
            assert anchor is not None
            after = self._query(AUDIT, dynamodb_chain.sort_key(anchor.seq))
            moved = chain.prune_anchor(map(items.event, after), anchor, before, kept)
            events[:] = range(anchor.seq + 1, moved.seq + 1)
            if not doomed and not events:
                return None
            return Write(
                "SET #chain_anchor = :anchor",
                {":anchor": s(json.dumps(moved.to_json()))},
                None,
                chain.pruned(len(doomed), moved),
            )

        if self._chained(build) is None and not delivered:
            return 0
        audit = [{"pk": s(AUDIT), "sk": s(dynamodb_chain.sort_key(q))} for q in events]
        indexes = [
            {"pk": i["pk"], "sk": i["sk"]}
            for i in self._partition(REPEAT)
            if i.get("decision_id", {}).get("S") in gone
        ]
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in doomed + delivered] + indexes + audit
        for start in range(0, len(keys), BATCH):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + BATCH]]
            unprocessed: Any = {self.table: requests}
            while unprocessed:
                answer = self._call("batch_write_item", RequestItems=unprocessed)
                unprocessed = answer.get("UnprocessedItems") or {}
        return len(doomed)

    def _partition(self, partition: str) -> Iterator[Item]:
        """Every item of a partition, keys and times only."""
        return self._query(
            partition, project="pk, sk, #at, started_at, #result, decision_id, #pending"
        )

    def ping(self) -> None:
        self._get(CURRENT_KEY)


def _decision_write(record: DecisionRecord, notices: tuple[Notice, ...] = ()) -> Write:
    """A new decision as a chained write: its phase effect on the current item, its event,
    and the notices it queues."""
    update = ""
    values: dict[str, Any] = {}
    if blocks_phase(record):
        update, values = "SET #last_blocked_at = :at", {":at": n(record.at)}
    elif clears_block(record):
        update = "REMOVE #last_blocked_at"
    return Write(
        update,
        values,
        "attribute_exists(pk)",
        chain.decided(record),
        at=record.at,
        notices=notices,
    )


def _older(item: Item, before: float) -> bool:
    """A decision made, a delivered notice, or a finished transition started, before the cutoff."""
    if item["pk"]["S"] == DECISION:
        return float(item["at"]["N"]) < before
    if item["pk"]["S"] == OUTBOX:
        return not item["pending"]["BOOL"] and float(item["at"]["N"]) < before
    finished = item.get("result", {}).get("S") != "in_progress"
    return finished and float(item["started_at"]["N"]) < before


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
    store = DynamoDBStore(state, config.primary, client=client)
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
