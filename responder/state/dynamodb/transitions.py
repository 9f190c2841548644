"""The DynamoDB store's transitions: begun, journaled step by step, operated on, finished, read."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from responder.state import chain
from responder.state.dynamodb import items
from responder.state.dynamodb.chained_table import CURRENT_KEY, TRANSITION, ConditionFailed, Write
from responder.state.dynamodb.items import Item, n, s
from responder.state.dynamodb.table import (
    FENCED,
    RECENT_LIMIT,
    RECENT_WINDOW,
    RUNNING,
    ControlTable,
)
from responder.state.outbox import Announce, Notice, announced
from responder.state.records import (
    VERIFIED_RESULTS,
    Approval,
    Attempts,
    InFlight,
    NewTransition,
    Operation,
    StepRecord,
    TransitionRecord,
)
from responder.state.store import LeaseLost, StoreError, UnknownTransition


class DynamoDBTransitions(ControlTable):
    """The transition on the current item: every change one conditional, chained write."""

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
        except ConditionFailed:
            return None  # another request changed the state first
        return begun

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
        fenced = {**values, **_fenced(fencing_token, transition_id, now)}
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
        except ConditionFailed:
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
            " #t.#attempts = :none, #t.#in_flight = :none",
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
        in_flight: InFlight | None = None,
    ) -> None:
        self._fenced_update(
            transition_id,
            fencing_token,
            "SET #t.#attempts = :attempts, #t.#in_flight = :in_flight",
            {
                ":attempts": items.attempts_value(attempts),
                ":in_flight": items.in_flight_value(in_flight),
            },
            chain.attempted(transition_id, attempts),
            notices=notices,
        )

    def mark_in_flight(
        self, transition_id: str, in_flight: InFlight | None, fencing_token: int
    ) -> None:
        # Not chained (no outcome to keep): a plain fenced UpdateItem on the current item.
        now = self._clock()
        try:
            self._update(
                "SET #t.#in_flight = :in_flight,"
                " #t.#revision = if_not_exists(#t.#revision, :zero) + :one",
                {
                    ":in_flight": items.in_flight_value(in_flight),
                    **_fenced(fencing_token, transition_id, now),
                },
                f"{FENCED} AND {RUNNING}",
            )
        except ConditionFailed:
            raise self._refused(fencing_token, transition_id, now) from None

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
        except ConditionFailed:
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
            " #t.#revision = if_not_exists(#t.#revision, :zero) + :one,"
            " #t.#in_flight = :nothing"
        )
        values: dict[str, Any] = {
            ":result": s(result),
            ":now": n(now),
            ":one": n(1),
            ":token": n(fencing_token),
            ":tid": s(transition_id),
            ":running": s("in_progress"),
            ":zero": n(0),
            ":nothing": items.in_flight_value(None),
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
        except ConditionFailed:
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


def _fenced(fencing_token: int, transition_id: str, now: float) -> dict[str, Any]:
    """The values of FENCED AND RUNNING, and of a revision's increment."""
    return {
        ":token": n(fencing_token),
        ":now": n(now),
        ":tid": s(transition_id),
        ":running": s("in_progress"),
        ":one": n(1),
        ":zero": n(0),
    }
