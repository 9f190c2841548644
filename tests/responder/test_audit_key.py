"""The keyed audit chain on both stores: forgeries by someone who can write the store but
does not hold the key are named, and so are edits of the live state beside the records.

Tampering goes past the store (SQL on the file, DynamoDB calls on the table), as in
test_audit_chain; a forger recomputes every hash they can, with the recipe the docs give.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddb_failover.config import AuditConfig, ConfigError, SqliteState
from responder.cli.main import main
from responder.model.alerts import format_time
from responder.records.audit import Verdict, verify
from responder.state import chain
from responder.state.chain import Event, Head
from responder.state.dynamodb import items
from responder.state.dynamodb.chained_table import AUDIT, sort_key
from responder.state.keys import AuditKey, AuditKeys
from responder.state.records import NewTransition, StepRecord
from responder.state.sqlite.file import insert_event
from responder.state.store import StateStore
from tests.responder.fakes import KEYS, WEST, config
from tests.responder.stores import Backend, Clock
from tests.responder.test_audit_chain import Tamper, firing, history_of_everything
from tests.responder.weblib import write_config

DAY = 86400.0
OTHER = AuditKeys.of(b"k" * 40)  # a key the forger made up
OLD = AuditKeys.of(b"o" * 40)  # the key before a rotation


class Forger(Tamper):
    """Rewrites the chain itself: events, head and anchor, and the live state."""

    def events(self) -> list[Event]:
        if self.db is not None:
            rows = self.db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
            names = [d[0] for d in self.db.execute("SELECT * FROM audit LIMIT 0").description]
            out = []
            for row in rows:
                values = dict(zip(names, row, strict=True))
                values["body"] = json.loads(values["body"])
                out.append(Event.from_json(values))
            return out
        assert self.ddb is not None and self.backend.table is not None
        answer = self.ddb.query(
            TableName=self.backend.table.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": AUDIT}},
        )
        return [items.event(i) for i in answer["Items"]]

    def write(self, events: list[Event]) -> None:
        """Store events as they are, and make the last one the head."""
        for event in events:
            if self.db is not None:
                self.sql("DELETE FROM audit WHERE seq = ?", event.seq)
                insert_event(self.db, event)
            else:
                self.put(
                    {
                        "pk": {"S": AUDIT},
                        "sk": {"S": sort_key(event.seq)},
                        **items.event_item(event),
                    }
                )
        last = events[-1]
        if self.db is not None:
            self.sql("UPDATE meta SET chain_seq = ?, chain_hash = ?", last.seq, last.hash)
            return
        current = self.item("state", "current")
        current["chain_seq"] = {"N": str(last.seq)}
        current["chain_hash"] = {"S": last.hash}
        current["chain_last"] = {"S": chain.canonical(last.to_json()).decode("utf-8")}
        self.put(current)

    def rechain(
        self, start: int, key: AuditKey | None, edit: Callable[[Event], Event] = lambda e: e
    ) -> None:
        """Re-seal every event from seq start on under key (None: plain sha256)."""
        events = self.events()
        head = Head()
        out = []
        for event in events:
            if event.seq < start:
                head = event.head
                continue
            event = edit(event)
            resealed = chain.seal(
                head, event.at, chain.Pending(event.type, event.subject, event.body), key
            )
            out.append(resealed)
            head = resealed.head
        self.write(out)

    def set_anchor(self, anchor: dict[str, Any]) -> None:
        text = json.dumps(anchor)
        if self.db is not None:
            self.sql("UPDATE meta SET chain_anchor = ?", text)
            return
        self.put({**self.item("state", "current"), "chain_anchor": {"S": text}})

    def anchor(self) -> dict[str, Any]:
        if self.db is not None:
            return dict(json.loads(self.db.execute("SELECT chain_anchor FROM meta").fetchone()[0]))
        return dict(json.loads(self.item("state", "current")["chain_anchor"]["S"]))

    def set_active_region(self, region: str) -> None:
        if self.db is not None:
            self.sql("UPDATE meta SET active_region = ?", region)
            return
        self.put({**self.item("state", "current"), "active_region": {"S": region}})

    def clear_freeze(self) -> None:
        if self.db is not None:
            self.sql(
                "UPDATE meta SET frozen_by = NULL, frozen_reason = NULL, frozen_at = NULL,"
                " frozen_auto = NULL"
            )
            return
        current = self.item("state", "current")
        for name in ("frozen_by", "frozen_reason", "frozen_at", "frozen_auto"):
            current.pop(name, None)
        self.put(current)


def first(verdict: Verdict) -> str:
    assert not verdict.ok, "verify passed a forged history"
    return str(verdict.problems[0])


def event_of(store: StateStore, kind: str) -> Event:
    return next(e for e in store.audit_events() if e.type == kind)


def test_every_event_is_sealed_with_the_key_and_names_it(store: StateStore, clock: Clock) -> None:
    history_of_everything(store, clock)
    events = list(store.audit_events())
    assert {e.key_id for e in events} == {KEYS.current.id}
    assert all(KEYS.current.secret.hex() not in json.dumps(e.to_json()) for e in events)
    assert all(e.intact(KEYS.current) and not e.intact(None) for e in events)
    verdict = verify(store.audit_log(), KEYS)
    assert verdict.ok, verdict.problems
    # Without the key, the same chain does not verify: the key is what vouches for it.
    assert first(verify(store.audit_log(), OTHER)).startswith(
        f"audit event #1 was edited: it is sealed with key {KEYS.current.id},"
        " neither key_file nor a previous_key_file"
    )


def test_a_rechain_with_plain_sha256_is_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    history_of_everything(store, clock)
    decided = event_of(store, "decision")

    def lie(event: Event) -> Event:
        if event.seq != decided.seq:
            return event
        body = json.loads(json.dumps(event.body))
        body["decision"]["reason"] = "all fine"
        return Event(event.seq, event.at, event.type, event.subject, body, event.prev, event.hash)

    Forger(backend).rechain(decided.seq, None, lie)
    assert first(verify(store.audit_log(), KEYS)) == (
        f"audit event #{decided.seq} was edited: it is not sealed with the audit key"
        " (plain sha256: re-chained without the key?) after a keyed event"
    )


def test_a_whole_chain_rechained_with_plain_sha256_is_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    history_of_everything(store, clock)
    Forger(backend).rechain(1, None)
    assert first(verify(store.audit_log(), KEYS)).startswith(
        "audit event #1 was edited: it is not sealed with the audit key"
    )


@pytest.mark.parametrize("claimed", ["own", "ours"])
def test_a_rechain_under_another_key_is_named(
    store: StateStore, clock: Clock, backend: Backend, claimed: str
) -> None:
    history_of_everything(store, clock)
    step = event_of(store, "step_journaled")
    # The forger's own key, named as itself or as ours.
    forged = OTHER.current if claimed == "own" else AuditKey(KEYS.current.id, OTHER.current.secret)
    Forger(backend).rechain(step.seq, forged)
    expected = (
        f"audit event #{step.seq} was edited: it is sealed with key {OTHER.current.id}"
        if claimed == "own"
        else f"audit event #{step.seq} was edited: its hash does not match its content"
    )
    assert first(verify(store.audit_log(), KEYS)).startswith(expected)


def test_a_deleted_decision_is_named(store: StateStore, clock: Clock, backend: Backend) -> None:
    history_of_everything(store, clock)
    decision = store.history()["decisions"][0]["id"]
    tamper = Tamper(backend)
    if tamper.db is not None:
        tamper.sql("DELETE FROM decisions WHERE id = ?", decision)
    else:
        tamper.delete("decision", decision)
    assert first(verify(store.audit_log(), KEYS)).startswith(
        f"decision {decision} was removed: audit event #"
    )


def pruned_history(store: StateStore, clock: Clock) -> None:
    """Two old transitions and decisions, pruned after retention; newer history kept."""
    lease = store.acquire_lease("me", 10**9)
    assert lease is not None
    for index in range(2):
        began = store.begin_transition(
            NewTransition("failover", "us-east-1", WEST, firing(f"p{index}"), None, False),
            store.state().version,
        )
        assert began is not None
        store.journal_step(began.id, StepRecord("www", "applied", 1, 2), lease.token)
        store.finish_transition(began.id, "completed", lease.token)
        store.record_decision("ignored", f"old {index}", firing(f"o{index}"))
        clock.now += DAY
    clock.now += 100 * DAY
    store.record_decision("ignored", "recent", firing("recent"))
    assert store.prune(clock.now - 90 * DAY) == 3  # never the newest transition


def test_a_prune_within_retention_verifies_and_one_into_it_is_named(
    store: StateStore, clock: Clock
) -> None:
    pruned_history(store, clock)
    verdict = verify(store.audit_log(), KEYS, retain_days=90)
    assert verdict.ok, verdict.problems
    assert verify(store.audit_log(), KEYS, retain_days=89).ok
    # A prune that reaches into the retention period (by a writer with the key that
    # pruned too much, or a lower retain_days than the auditor's) is named.
    store.record_decision("ignored", "new", firing("new"))
    clock.now += DAY
    assert store.prune(clock.now - 0.5 * DAY) >= 1
    prune = [e for e in store.audit_events() if e.type == "pruned"][-1]
    assert first(verify(store.audit_log(), KEYS, retain_days=90)) == (
        f"the prune at audit event #{prune.seq} was removed: its cutoff"
        f" {format_time(clock.now - 0.5 * DAY)} reaches into the retention period:"
        " 0.50 day(s) before the prune, retain_days is 90"
    )


@pytest.mark.parametrize("forged", ["seq", "cutoff", "both"])
def test_a_forged_anchor_is_named(
    store: StateStore, clock: Clock, backend: Backend, forged: str
) -> None:
    pruned_history(store, clock)
    forger = Forger(backend)
    anchor = forger.anchor()
    if forged in ("seq", "both"):
        anchor["seq"] += 2
    if forged in ("cutoff", "both"):
        anchor["pruned_before"] = clock.now - DAY
    forger.set_anchor(anchor)
    problems = [str(p) for p in verify(store.audit_log(), KEYS).problems]
    assert "the chain's anchor was edited: no prune or genesis event records it" in problems


def test_a_forged_prune_event_cannot_hide_history_from_a_recorded_head(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    """The attack of issue 21: drop the history up to past a recorded head, claim a prune."""
    history_of_everything(store, clock)
    recorded = verify(store.audit_log(), KEYS).head
    store.record_decision("ignored", "later", firing("later"))
    forger = Forger(backend)
    events = forger.events()
    cut = recorded.seq + 1  # everything up to and including the recorded head goes
    anchor = {**forger.anchor(), "seq": cut, "hash": events[cut - 1].hash}
    anchor["pruned_before"] = clock.now + 1
    for event in events[:cut]:
        forger.delete_event(event.seq)
    forger.set_anchor(anchor)
    head = events[-1].head
    for key in (None, OTHER.current):
        claim = chain.pruned(10, chain.Anchor.from_json(anchor))
        forger.write([chain.seal(head, clock.now, claim, key)])
        verdict = verify(store.audit_log(), KEYS, recorded)
        assert first(verdict).startswith(f"audit event #{head.seq + 1} was edited: it is ")


def test_an_edited_active_region_is_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    history_of_everything(store, clock)  # a completed failover to eu-west-1
    assert store.state().active_region == WEST
    finished = event_of(store, "transition_finished")
    Forger(backend).set_active_region("us-east-1")
    assert first(verify(store.audit_log(), KEYS)) == (
        "the live active_region was edited: the store holds us-east-1;"
        f" audit event #{finished.seq} says eu-west-1"
    )


def test_a_cleared_freeze_is_named(store: StateStore, clock: Clock, backend: Backend) -> None:
    history_of_everything(store, clock)
    store.freeze("alice", "hands off")
    frozen = [e for e in store.audit_events() if e.type == "frozen"][-1]
    assert verify(store.audit_log(), KEYS).ok
    Forger(backend).clear_freeze()
    assert store.state().frozen is None
    assert first(verify(store.audit_log(), KEYS)) == (
        "the live freeze was edited: the store holds none;"
        f" audit event #{frozen.seq} says frozen by alice (hands off)"
    )


def test_a_transition_in_progress_the_store_hides_is_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    began = store.begin_transition(
        NewTransition("failover", "us-east-1", WEST, firing(), None, False), store.state().version
    )
    assert began is not None
    assert verify(store.audit_log(), KEYS).ok
    tamper = Tamper(backend)
    if tamper.db is not None:
        tamper.sql("UPDATE transitions SET result = 'aborted' WHERE id = ?", began.id)
    else:
        current = tamper.item("state", "current")
        current["t"]["M"]["result"] = {"S": "aborted"}
        tamper.put(current)
    problems = [str(p) for p in verify(store.audit_log(), KEYS).problems]
    assert f"transition {began.id} was edited: result differ from its audit events" in (
        p[: len(f"transition {began.id} was edited: result differ from its audit events")]
        for p in problems
    )
    assert any(
        p.startswith("the live transition in progress was edited: the store holds none")
        for p in problems
    )


def test_a_rotated_key_verifies_with_the_previous_key_file(backend: Backend, clock: Clock) -> None:
    old = backend.open_with(OLD, clock)
    history_of_everything(old, clock)
    rotated = AuditKeys(KEYS.current, (OLD.current,))
    new = backend.open_with(rotated, clock)
    clock.now += 1
    new.record_decision("ignored", "after the rotation", firing("new"))
    events = list(new.audit_events())
    rotation = [e for e in events if e.type == "key_rotated"][-1]
    assert rotation.body["from"] == OLD.current.id and rotation.body["to"] == KEYS.current.id
    assert rotation.body["live"]["active_region"] == WEST
    assert rotation.key_id == KEYS.current.id and events[-1].key_id == KEYS.current.id
    assert events[rotation.seq - 2].key_id == OLD.current.id
    verdict = verify(new.audit_log(), rotated)
    assert verdict.ok, verdict.problems
    # Without the previous key file, the events before the rotation cannot be vouched for.
    sealed_old = next(e for e in events if e.key_id == OLD.current.id)
    assert first(verify(new.audit_log(), KEYS)).startswith(
        f"audit event #{sealed_old.seq} was edited: it is sealed with key {OLD.current.id},"
    )
    # A rotation the forger writes without the key names itself.
    Forger(backend).rechain(rotation.seq, OTHER.current)
    assert first(verify(new.audit_log(), rotated)).startswith(
        f"audit event #{rotation.seq} was edited: it is sealed with key {OTHER.current.id}"
    )


def test_an_unkeyed_chain_from_before_the_key_is_sealed_from_the_upgrade_on(
    backend: Backend, clock: Clock
) -> None:
    """Decision: the events from before keys stay plain sha256; the first write with a key
    appends key_rotated (from none), which pins them; verify says where the keyed part starts."""
    backend.open_with(None, clock)  # SQLite: the file
    Tamper(backend).forget_chain()  # as before the chain (DynamoDB's was begun by init-state)
    before = backend.open_with(None, clock)
    history_of_everything(before, clock)
    upgraded = backend.open_with(KEYS, clock)
    clock.now += 1
    upgraded.record_decision("ignored", "after the upgrade", firing("new"))
    events = list(upgraded.audit_events())
    rotation = next(e for e in events if e.type == "key_rotated")
    assert rotation.body["from"] is None and rotation.key_id == KEYS.current.id
    verdict = verify(upgraded.audit_log(), KEYS)
    assert verdict.ok, verdict.problems
    assert (
        f"events #1..#{rotation.seq - 1} predate the audit key (plain sha256); the keyed chain"
        f" starts at #{rotation.seq}"
    ) in " ".join(verdict.notes)
    # The plain part is pinned by the keyed event after it: an edit there is named.
    decided = next(e for e in events if e.type == "decision")
    body = json.loads(json.dumps(decided.body))
    body["decision"]["reason"] = "all fine"
    Forger(backend).rechain(
        decided.seq,
        None,
        lambda e: (
            e
            if e.seq != decided.seq
            else Event(e.seq, e.at, e.type, e.subject, body, e.prev, e.hash)
        ),
    )
    assert not verify(upgraded.audit_log(), KEYS).ok


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "responder.audit.key_file: cannot read {path}: No such file or directory"),
        (b"\n \n", "responder.audit.key_file: {path} is empty"),
        (
            b"short",
            "responder.audit.key_file: {path} holds 5 bytes; an audit key needs at least 32",
        ),
    ],
)
def test_a_missing_empty_or_short_key_file_is_a_config_error_naming_the_key(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "audit-key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        AuditKeys.from_config(AuditConfig(key_file=path))
    assert str(raised.value).startswith(message.format(path=path))
    with pytest.raises(ConfigError, match=r"^responder\.audit\.key_file: not set"):
        AuditKeys.from_config(AuditConfig())
    path.write_bytes(b"x" * 32)
    with pytest.raises(ConfigError, match=r"^responder\.audit\.previous_key_files\.0: cannot read"):
        AuditKeys.from_config(AuditConfig(key_file=path, previous_key_files=(tmp_path / "gone",)))


def test_the_cli_stops_on_a_missing_key_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-key"
    path = write_config(tmp_path, extra={"audit": {"key_file": str(missing)}})
    expected = f"responder.audit.key_file: cannot read {missing}: No such file or directory"
    commands = (
        ["audit", "verify"],
        ["audit", "export", "--since", "1h"],
        ["check-config"],
        ["serve"],
        ["init-state"],
    )
    for command in commands:
        assert main([*command, "--config", str(path)]) == 2, command
        assert expected in capsys.readouterr().err, command
    assert not (tmp_path / "state" / "state.db").exists()  # nothing opened, nothing written


def test_audit_verify_reads_either_store_with_the_configured_key(
    store: StateStore,
    clock: Clock,
    backend: Backend,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history_of_everything(store, clock)
    where = backend.table if backend.table is not None else SqliteState(path=backend.path)
    base = config()
    section = base.responder.model_copy(update={"state": where})
    path = tmp_path / "ddb-failover.yml"
    dumped = base.model_copy(update={"responder": section}).model_dump(mode="json")
    path.write_text(yaml.safe_dump(dumped))
    assert main(["audit", "verify", "--config", str(path)]) == 0
    assert capsys.readouterr().out.startswith("audit chain OK: ")
    Forger(backend).set_active_region("us-east-1")
    assert main(["audit", "verify", "--config", str(path)]) == 1
    assert capsys.readouterr().out.startswith(
        "audit chain BROKEN: the live active_region was edited: the store holds us-east-1;"
    )


def test_an_inserted_event_with_its_record_is_named(
    store: StateStore, clock: Clock, backend: Backend
) -> None:
    """A forger adds a decision and an event recording it, without the key, and renumbers."""
    history_of_everything(store, clock)
    forger = Forger(backend)
    events = forger.events()
    decided = event_of(store, "decision")
    place = decided.seq + 1
    body = json.loads(json.dumps(decided.body))
    body["decision"]["id"] = "d-forged"
    forged = chain.seal(
        events[place - 2].head, decided.at + 0.5, chain.Pending("decision", "d-forged", body)
    )
    shifted = [
        Event(e.seq + 1, e.at, e.type, e.subject, e.body, e.prev, e.hash, e.key_id)
        for e in events[place - 1 :]
    ]
    forger.write([forged, *shifted])
    Tamper(backend).copy_decision(decided.subject, "d-forged")
    assert first(verify(store.audit_log(), KEYS)) == (
        f"audit event #{place} was inserted: the events after it were renumbered"
    )
