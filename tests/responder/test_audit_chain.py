"""The audit chain on both stores: every change is covered, and a tampered history is named.

Tampering goes past the store, as someone with write access to the SQLite file or
the control table would: SQL on the file, DynamoDB calls on the table.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from typing import Any

import pytest

from responder.records import render
from responder.records.audit import parse_head, verify
from responder.state import chain
from responder.state.chain import Head
from responder.state.dynamodb.chained_table import AUDIT, sort_key
from responder.state.dynamodb.client import client_for
from responder.state.records import Attempts, Cause, Freeze, NewTransition, Operation, StepRecord
from responder.state.store import StateStore
from sandbox.net import wait_until
from tests.responder.fakes import EAST, KEYS, WEST
from tests.responder.stores import Backend, Clock


def firing(fingerprint: str = "f1", starts: str = "2027-01-15T08:00:00.000Z") -> Cause:
    alert = {"fingerprint": fingerprint, "key": f"{fingerprint}@{starts}", "status": "firing"}
    return Cause(alerts=({"alertname": "DynamoDBRegionDown", "region": EAST, **alert},))


def history_of_everything(store: StateStore, clock: Clock) -> str:
    """One of every kind of change; returns the transition's id."""
    store.record_decision("blocked", "no healthy region", firing(), transition_kind="failover")
    clock.now += 1
    store.record_decision("blocked", "no healthy region", firing(), transition_kind="failover")
    store.freeze("alice", "look first")
    store.unfreeze("alice", "looked")
    lease = store.acquire_lease("me", 10**6)
    assert lease is not None
    evidence = {"received_at": clock.now - 0.5, "readiness": [{"region": WEST, "canary_ok": True}]}
    began = store.begin_transition(
        NewTransition(
            "failover", EAST, WEST, firing("f2"), 3.5, False, clock.now + 900, evidence=evidence
        ),
        store.state().version,
    )
    assert began is not None
    clock.now += 1
    store.journal_step(
        began.id,
        StepRecord("www", "applied", {"ip": "a"}, {"ip": "b"}, started_at=clock.now - 1),
        lease.token,
    )
    trouble = Attempts("lb", False, 2, clock.now, clock.now + 1, "HTTP 401", None, clock.now - 0.2)
    store.record_attempts(began.id, trouble, lease.token)
    clock.now += 2
    skip = Operation("skip", "bob", "moved by hand", clock.now, action="lb")
    step = StepRecord("lb", "skipped", error="skipped by bob", at=clock.now, attempts=2)
    record = store.state().in_progress
    assert record is not None
    assert store.operate(began.id, record.revision, skip, None, step) is not None
    store.journal_step(began.id, StepRecord("env", "unchanged", 1, 1), lease.token)
    clock.now += 1
    store.finish_transition(began.id, "completed", lease.token)
    store.record_decision("duplicate", "already handled", firing("f2"))
    return began.id


class Tamper:
    """Edits the history behind the store's back."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.db = sqlite3.connect(backend.path, isolation_level=None) if backend.path else None
        self.ddb = client_for(backend.table) if backend.table else None

    def sql(self, statement: str, *args: Any) -> None:
        assert self.db is not None
        self.db.execute(statement, args)

    def item(self, pk: str, sk: str) -> dict[str, Any]:
        assert self.ddb is not None and self.backend.table is not None
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        found = self.ddb.get_item(TableName=self.backend.table.table, Key=key)["Item"]
        return dict(found)

    def put(self, item: dict[str, Any]) -> None:
        assert self.ddb is not None and self.backend.table is not None
        self.ddb.put_item(TableName=self.backend.table.table, Item=item)

    def delete(self, pk: str, sk: str) -> None:
        assert self.ddb is not None and self.backend.table is not None
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        self.ddb.delete_item(TableName=self.backend.table.table, Key=key)

    def edit_decision_reason(self, decision_id: str, reason: str) -> None:
        if self.db is not None:
            self.sql("UPDATE decisions SET reason = ? WHERE id = ?", reason, decision_id)
        else:
            self.put({**self.item("decision", decision_id), "reason": {"S": reason}})

    def copy_decision(self, decision_id: str, new_id: str) -> None:
        if self.db is not None:
            self.sql(
                "INSERT INTO decisions (id, at, kind, reason, region, to_region, transition_kind,"
                " cause, count) SELECT ?, at + 1, kind, reason, region, to_region,"
                " transition_kind, cause, 1 FROM decisions WHERE id = ?",
                new_id,
                decision_id,
            )
        else:
            item = self.item("decision", decision_id)
            at = float(item["at"]["N"]) + 1
            self.put({**item, "sk": {"S": new_id}, "id": {"S": new_id}, "at": {"N": repr(at)}})

    def delete_step(self, transition_id: str, index: int) -> None:
        """Remove one journaled step from every stored copy of the transition."""
        self._step(transition_id, index, None)

    def edit_step_after(self, transition_id: str, index: int, after: Any) -> None:
        """Change what one journaled step says it left behind, in every stored copy."""
        self._step(transition_id, index, after)

    def _step(self, transition_id: str, index: int, after: Any) -> None:
        if self.db is not None:
            rows = self.db.execute(
                "SELECT seq FROM steps WHERE transition_id = ? ORDER BY seq", (transition_id,)
            ).fetchall()
            if after is None:
                self.sql("DELETE FROM steps WHERE seq = ?", rows[index][0])
            else:
                self.sql(
                    "UPDATE steps SET after = ? WHERE seq = ?", json.dumps(after), rows[index][0]
                )
            return
        archived = self.item("transition", transition_id)
        current = self.item("state", "current")
        copies = [archived] + (
            [current["t"]["M"]] if current["t"]["M"]["id"]["S"] == transition_id else []
        )
        for copy in copies:
            if after is None:
                del copy["steps"]["L"][index]
            else:
                copy["steps"]["L"][index]["M"]["after"] = {"S": json.dumps(after)}
        self.put(archived)
        self.put(current)

    def edit_event_body(self, seq: int, body: Any) -> None:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if self.db is not None:
            self.sql("UPDATE audit SET body = ? WHERE seq = ?", text, seq)
        else:
            self.put({**self.item(AUDIT, sort_key(seq)), "body": {"S": text}})

    def delete_event(self, seq: int) -> None:
        if self.db is not None:
            self.sql("DELETE FROM audit WHERE seq = ?", seq)
        else:
            self.delete(AUDIT, sort_key(seq))

    def mark_chain_not_fresh(self) -> None:
        """Claim the store held history before its chain began (old forgeries would pass)."""
        if self.db is not None:
            text = self.db.execute("SELECT chain_anchor FROM meta").fetchone()[0]
            anchor = {**json.loads(text), "fresh": False}
            self.sql("UPDATE meta SET chain_anchor = ?", json.dumps(anchor))
            return
        current = self.item("state", "current")
        anchor = {**json.loads(current["chain_anchor"]["S"]), "fresh": False}
        self.put({**current, "chain_anchor": {"S": json.dumps(anchor)}})

    def forget_chain(self) -> None:
        """Make the store look as one written before the audit chain existed."""
        if self.db is not None:
            self.sql("DELETE FROM audit")
            self.sql("UPDATE meta SET chain_seq = 0, chain_hash = NULL, chain_anchor = NULL")
            return
        current = self.item("state", "current")
        for name in ("chain_seq", "chain_hash", "chain_last", "chain_anchor"):
            current.pop(name)
        self.put(current)
        for event in range(1, 100):
            self.delete(AUDIT, sort_key(event))


def events_of(store: StateStore, kind: str) -> list[chain.Event]:
    return [e for e in store.audit_events() if e.type == kind]


def test_every_change_is_an_event_and_the_untouched_chain_verifies(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    transition_id = history_of_everything(store, clock)
    kinds = [e.type for e in store.audit_events()]
    assert kinds == [
        "genesis",
        "decision",
        "frozen",
        "unfrozen",
        "transition_begun",
        "step_journaled",
        "attempts_recorded",
        "operator_command",
        "step_journaled",
        "transition_finished",
        "decision",
    ]
    verdict = verify(backend.open(clock).audit_log(), KEYS)  # a new process reads the same chain
    assert verdict.ok, verdict.problems
    assert verdict.events == len(kinds) and verdict.head.seq == len(kinds)
    # Each event is chained to the previous one's hash.
    events = list(store.audit_events())
    assert all(b.prev == a.hash for a, b in itertools.pairwise(events))
    assert events[0].prev == chain.GENESIS_PREV
    # Two decisions (one repeated) and one transition with three steps.
    assert verdict.records == 2 + 1 + 3
    begun = events_of(store, "transition_begun")[0]
    assert begun.subject == transition_id
    assert begun.body["transition"]["evidence"]["readiness"][0]["region"] == WEST


@pytest.mark.parametrize("target", ["decision", "step", "event"])
def test_an_edited_record_is_named(
    store: StateStore, clock: Clock, backend: Backend, target: str
) -> None:
    transition_id = history_of_everything(store, clock)
    decision = store.history()["decisions"][-1]  # the blocked one, repeated
    tamper = Tamper(backend)
    if target == "decision":
        tamper.edit_decision_reason(decision["id"], "all fine")
        expected = f"decision {decision['id']} was edited: reason differ"
    elif target == "step":
        tamper.edit_step_after(transition_id, 0, {"ip": "c"})
        assert store.transition(transition_id).steps[0].after == {"ip": "c"}
        expected = f"step 1 (www) of transition {transition_id} was edited"
    else:
        first = events_of(store, "decision")[0]
        edited = json.loads(json.dumps(first.body))
        edited["decision"]["reason"] = "all fine"
        tamper.edit_event_body(first.seq, edited)
        expected = f"audit event #{first.seq} was edited: its hash does not match"
    verdict = verify(store.audit_log(), KEYS)
    assert not verdict.ok
    assert str(verdict.problems[0]).startswith(expected), verdict.problems


def test_an_inserted_decision_is_named(store: StateStore, clock: Clock, backend: Backend) -> None:
    history_of_everything(store, clock)
    original = store.history()["decisions"][0]["id"]
    Tamper(backend).copy_decision(original, "d-forged")
    verdict = verify(store.audit_log(), KEYS)
    assert [str(p) for p in verdict.problems] == [
        "decision d-forged was inserted: no audit event records it"
    ]


def test_a_deleted_event_and_a_deleted_step_are_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    transition_id = history_of_everything(store, clock)
    tamper = Tamper(backend)
    tamper.delete_step(transition_id, 1)
    problems = [str(p) for p in verify(store.audit_log(), KEYS).problems]
    assert problems == [
        f"step 2 (lb) of transition {transition_id} was removed: an audit event journaled it;"
        " the store does not have it"
    ]
    # Removing the event that journaled it as well: the first problem is the hole in the
    # chain (the transition's operations still name the skip the replay no longer has).
    operated = events_of(store, "operator_command")[0]
    tamper.delete_event(operated.seq)
    problems = [str(p) for p in verify(store.audit_log(), KEYS).problems]
    assert problems[0] == f"audit event #{operated.seq} was removed: the chain skips it"
    assert problems[1].startswith(f"transition {transition_id} was edited: operations differ")


def test_an_edited_anchor_is_named(store: StateStore, clock: Clock, backend: Backend) -> None:
    history_of_everything(store, clock)
    Tamper(backend).mark_chain_not_fresh()
    (problem,) = verify(store.audit_log(), KEYS).problems
    assert str(problem) == "the chain's anchor was edited: no prune or genesis event records it"


def test_a_recorded_head_catches_a_rewritten_end(store: StateStore, clock: Clock) -> None:
    history_of_everything(store, clock)
    verdict = verify(store.audit_log(), KEYS)
    recorded = f"{verdict.head.seq}:{verdict.head.hash}"
    assert verify(store.audit_log(), KEYS, parse_head(recorded)).ok
    forged = Head(verdict.head.seq, "0" * 64)
    (problem,) = verify(store.audit_log(), KEYS, forged).problems
    assert (
        str(problem)
        == f"audit event #{verdict.head.seq} was edited: its hash is not the one you recorded"
    )
    with pytest.raises(ValueError, match="SEQ:HASH"):
        parse_head("12:abc")


def test_repeats_coalesce_into_one_decision(store: StateStore, clock: Clock) -> None:
    first = store.record_decision(
        "blocked", "no healthy region", firing(), transition_kind="failover"
    )
    for _ in range(11):
        clock.now += 60
        again = store.record_decision(
            "blocked", "no healthy region", firing(), transition_kind="failover"
        )
        assert again.id == first.id
    assert (again.count, again.last_at, again.at) == (12, clock.now, first.at)
    assert store.state().phase == "blocked"
    # Another reason, another firing episode (startsAt), or an operator: not repeats.
    store.record_decision("blocked", "cap: 4 transitions", firing(), transition_kind="failover")
    later = firing(starts="2027-01-15T09:00:00.000Z")
    store.record_decision("blocked", "no healthy region", later, transition_kind="failover")
    operator = Cause(operator="alice", reason="drill")
    store.record_decision("ignored", "already active", operator)
    store.record_decision("ignored", "already active", operator)
    decisions = store.history()["decisions"]
    assert [d["count"] for d in decisions] == [1, 1, 1, 1, 12]
    repeated = decisions[-1]
    assert repeated["id"] == first.id and repeated["last_at"] != repeated["at"]
    assert "repeated 12 times" in render.history(store.history())
    # Repeats are tallies: no audit event each (the decisions, and the genesis).
    assert [e.type for e in store.audit_events()].count("decision") == 5
    assert verify(store.audit_log(), KEYS).ok


def test_a_burst_of_repeats_costs_one_write_and_loses_no_count(
    store: StateStore, backend: Backend, clock: Clock
) -> None:
    """Repeats that change nothing are counted in memory and written together."""
    other = backend.open(clock)  # another worker or replica, reading what was written
    first = store.record_decision("duplicate", "transition t-1 in progress", firing())
    for times in range(2, 8):
        clock.now += 1
        again = store.record_decision("duplicate", "transition t-1 in progress", firing())
        assert (again.id, again.count, again.last_at) == (first.id, times, clock.now)

    def written() -> int:
        (decision,) = other.history()["decisions"]
        return int(decision["count"])

    assert written() < 7  # not one write per repeat
    wait_until(lambda: written() == 7, 30, 0.05, "the counts written within a second")
    # A repeat that changes the phase is written at once, as a new decision is.
    store.record_decision("blocked", "no healthy region", firing("f2"), transition_kind="failover")
    store.record_decision("blocked", "no healthy region", firing("f2"), transition_kind="failover")
    counts = {d["reason"]: d["count"] for d in other.history()["decisions"]}
    assert counts == {"no healthy region": 2, "transition t-1 in progress": 7}
    # Closing writes what is still in memory.
    store.record_decision("duplicate", "transition t-1 in progress", firing())
    store.close()
    counts = {d["reason"]: d["count"] for d in other.history()["decisions"]}
    assert counts["transition t-1 in progress"] == 8


def test_repeats_of_a_pruned_decision_are_recorded_anew_not_lost(
    store: StateStore, backend: Backend, clock: Clock
) -> None:
    reason = "region us-east-1 is not active (active is eu-west-1)"
    other = backend.open(clock)  # another worker, which has counted the decision too
    first = store.record_decision("ignored", reason, firing())
    assert other.record_decision("ignored", reason, firing()).count == 2
    clock.now += 10 * 86400
    assert store.prune(clock.now - 1) >= 1  # the alert repeats for longer than retention
    for _ in range(3):  # the other worker counts them on the decision it knew
        other.record_decision("ignored", reason, firing())
    other.close()
    (again,) = [d for d in store.history()["decisions"] if d["reason"] == reason]
    assert again["id"] != first.id and again["count"] == 3
    assert verify(store.audit_log(), KEYS).ok


def test_a_repeat_stamped_by_a_clock_a_little_behind_is_not_tampering(
    store: StateStore, backend: Backend, clock: Clock
) -> None:
    other = backend.open(clock)  # a replica whose clock is 10 ms behind
    store.record_decision("ignored", "alerts resolved", firing())
    clock.now -= 0.01
    other.record_decision("ignored", "alerts resolved", firing())
    other.close()
    result = verify(store.audit_log(), KEYS)
    assert result.ok, result.problems


def test_a_repeat_keeps_the_phase_blocked_after_a_transition(
    store: StateStore, clock: Clock
) -> None:
    store.record_decision("blocked", "frozen by alice: x", firing(), transition_kind="failover")
    lease = store.acquire_lease("me", 10**6)
    assert lease is not None
    began = store.begin_transition(
        NewTransition("manual", EAST, WEST, Cause(), None, False), store.state().version
    )
    assert began is not None
    clock.now += 1
    store.finish_transition(began.id, "completed", lease.token)
    assert store.state().phase == "steady"
    clock.now += 1
    store.record_decision("blocked", "frozen by alice: x", firing(), transition_kind="failover")
    assert store.state().phase == "blocked"  # the repeat is a fresh block, as a new row was


def test_the_chain_verifies_after_a_prune(store: StateStore, clock: Clock) -> None:
    lease = store.acquire_lease("me", 10**7)
    assert lease is not None
    for index in range(3):
        began = store.begin_transition(
            NewTransition("failover", EAST, WEST, firing(f"p{index}"), None, False),
            store.state().version,
        )
        assert began is not None
        store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
        store.finish_transition(began.id, "completed", lease.token)
        store.record_decision("ignored", f"old {index}", firing(f"o{index}"))
        clock.now += 86400
    kept = store.record_decision(
        "blocked", "old but repeated", firing("r"), transition_kind="failover"
    )
    store.freeze("x", "y", automatic=False)
    clock.now += 86400
    store.record_decision("blocked", "old but repeated", firing("r"), transition_kind="failover")
    before = verify(store.audit_log(), KEYS)
    assert store.prune(clock.now - 2 * 86400) == 2 + 2
    after = verify(store.audit_log(), KEYS)
    assert after.ok, after.problems
    assert after.anchor.seq > 0 and after.anchor.pruned_before == clock.now - 2 * 86400
    assert after.events < before.events and after.head.seq == before.head.seq + 1
    (pruned,) = [e for e in store.audit_events() if e.type == "pruned"]
    assert pruned.body["records"] == 4 and pruned.body["anchor"] == after.anchor.to_json()
    assert pruned.body["live"] == {"active_region": WEST, "frozen": store.state().frozen.to_json()}
    # A second prune that removes nothing changes nothing.
    assert store.prune(clock.now - 2 * 86400) == 0
    assert verify(store.audit_log(), KEYS).head == after.head
    # A decision still repeating goes with its age; its next repeat records it afresh.
    assert store.prune(clock.now + 1) >= 1
    again = store.record_decision(
        "blocked", "old but repeated", firing("r"), transition_kind="failover"
    )
    assert again.id != kept.id and again.count == 1
    final = verify(store.audit_log(), KEYS)
    assert final.ok, final.problems


def test_a_store_from_before_the_chain_starts_one(backend: Backend, clock: Clock) -> None:
    store = backend.open(clock)
    old = store.record_decision("ignored", "from the old release", firing())
    Tamper(backend).forget_chain()
    clock.now += 10
    reopened = backend.open(clock)
    reopened.record_decision("ignored", "after the upgrade", firing("new"))
    verdict = verify(reopened.audit_log(), KEYS)
    assert verdict.ok, verdict.problems
    assert verdict.notes == (
        f"decision {old.id} (2027-01-15T08:00:00.000Z) predates the audit chain",
    )
    genesis = next(iter(reopened.audit_events()))
    assert (genesis.type, genesis.body["fresh"]) == ("genesis", False)


def test_freeze_with_a_decision_is_two_events(store: StateStore, clock: Clock) -> None:
    freeze = Freeze("responder", "cap", clock.now, automatic=True)
    store.record_decision("blocked", "cap", firing(), transition_kind="failover", freeze=freeze)
    assert [e.type for e in store.audit_events()][-2:] in (
        ["frozen", "decision"],
        ["decision", "frozen"],
    )
    assert verify(store.audit_log(), KEYS).ok
