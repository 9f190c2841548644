"""`ddb-responder audit verify`: walk a store's audit chain and check every record against it.

Pure: the store's AuditLog and the keys in, a Verdict out. The checks:

1. The chain: each event's hash is its seal under the key it names (responder.records.
   sealing: the key rules, and retention of prunes), follows the previous event's (from
   the anchor), with no gap, and ends at the head the store records.
2. The records: replaying the events gives every decision, transition and step as it
   must be; a record that differs was edited, one the chain never saw was inserted,
   one the chain has but the store lacks was removed.
3. The live state: the active region, freeze and transition in progress the store holds
   are what the chain's last events say (responder.records.live_state).

Records older than the last prune's cutoff may be gone (retention) or not yet gone;
records older than a chain begun on an existing store predate it: neither is a problem.
A decision's repeat tally (count, last_at) is outside the chain: only checked for sense.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.model.alerts import format_time
from responder.records import live_state, sealing
from responder.records.problem import Kind, Problem, at_event
from responder.records.sealing import Seals
from responder.state import chain
from responder.state.chain import Anchor, AuditLog, Event, Head
from responder.state.keys import AuditKeys
from responder.state.records import DecisionRecord, Json, TransitionRecord

__all__ = ["Kind", "Problem", "Verdict", "parse_head", "verify", "walk"]


@dataclass(frozen=True)
class Verdict:
    """What verify found: problems first along the chain, and notes that are not problems."""

    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    events: int
    records: int
    head: Head
    anchor: Anchor

    @property
    def ok(self) -> bool:
        """True when nothing was edited, inserted or removed."""
        return not self.problems

    def to_json(self) -> Json:
        """JSON form for --json."""
        return {
            "ok": self.ok,
            "first_problem": str(self.problems[0]) if self.problems else None,
            "problems": [p.to_json() for p in self.problems],
            "notes": list(self.notes),
            "events": self.events,
            "records": self.records,
            "head": {"seq": self.head.seq, "hash": self.head.hash},
            "anchor": self.anchor.to_json(),
        }


@dataclass
class _Decision:
    content: Json
    seq: int = 0


@dataclass
class _Transition:
    content: Json | None  # None: it began before the anchor (only its later events remain)
    state: dict[str, Any]
    steps: list[tuple[Json, int]] = field(default_factory=list)  # (content, seq)
    seq: int = 0


@dataclass
class _Replay:
    decisions: dict[str, _Decision] = field(default_factory=dict)
    transitions: dict[str, _Transition] = field(default_factory=dict)
    pruned: list[Json] = field(default_factory=list)
    genesis: Json | None = None


def walk(events: Sequence[Event], start: Head, seals: Seals) -> list[Problem]:
    """Chain problems: an event edited, inserted or removed, from start (anchor or genesis)."""
    problems: list[Problem] = []
    previous = start
    shift = 0  # events renumbered after an insertion (+1) or a removal (-1)
    for event in events:
        if not seals.intact(event, event.seq - shift):
            moved = next((d for d in (1, -1) if seals.intact(event, event.seq - d)), None)
            if moved is None:
                problems.append(_event(event.seq, "edited", seals.why(event)))
            else:
                shift = moved
                place = event.seq - 1 if moved == 1 else event.seq
                kind: Kind = "inserted" if moved == 1 else "removed"
                problems.append(_event(place, kind, "the events after it were renumbered"))
        elif event.seq - shift > previous.seq + 1 and event.prev != previous.hash:
            missing = f"#{previous.seq + 1}" + (
                f"..#{event.seq - 1}" if event.seq - 1 > previous.seq + 1 else ""
            )
            problems.append(
                Problem("removed", f"audit event {missing}", "the chain skips it", previous.seq + 1)
            )
        elif event.prev != previous.hash:
            detail = f"#{event.seq} was chained to another event before it"
            problems.append(_event(event.seq - 1, "edited", detail + " (replaced)"))
        previous = Head(event.seq, event.hash)
    return problems


_event = at_event


def _head(log: AuditLog) -> list[Problem]:
    """The chain must end where the store says its head is."""
    last = log.events[-1].head if log.events else log.anchor.head
    if last == log.head:
        return []
    if log.head.seq > last.seq:
        detail = f"the head is #{log.head.seq} but the chain ends at #{last.seq}"
        return [Problem("removed", f"audit event #{last.seq + 1}", detail, last.seq + 1)]
    if log.head.seq < last.seq:
        detail = f"the head is #{log.head.seq} but the chain goes on to #{last.seq}"
        return [Problem("inserted", f"audit event #{log.head.seq + 1}", detail, log.head.seq + 1)]
    return [_event(last.seq, "edited", "it is not the event the head records")]


def _anchor(log: AuditLog, replay: _Replay) -> list[Problem]:
    """The anchor must be the one the newest prune (or the genesis) recorded."""
    if replay.pruned:
        recorded = replay.pruned[-1]["anchor"]
    elif replay.genesis is not None and log.anchor.seq == 0:
        began = {"fresh": bool(replay.genesis.get("fresh")), "genesis_at": replay.genesis["at"]}
        recorded = {**log.anchor.to_json(), **began}
    else:
        return [] if log.anchor.seq == 0 and log.anchor.pruned_before is None else [_bad_anchor()]
    return [] if recorded == log.anchor.to_json() else [_bad_anchor()]


def _bad_anchor() -> Problem:
    return Problem("edited", "the chain's anchor", "no prune or genesis event records it", 0)


def replay(events: Iterable[Event]) -> _Replay:
    """What the records must be, according to the events."""
    out = _Replay()
    for event in events:
        body, subject = event.body, event.subject
        if event.type == chain.GENESIS:
            out.genesis = {**body, "at": event.at}
        elif event.type == chain.PRUNED:
            out.pruned.append(body)
        elif event.type == chain.DECIDED:
            out.decisions[subject] = _Decision(body["decision"], seq=event.seq)
        elif event.type == chain.BEGUN:
            state: dict[str, Any] = {"result": "in_progress", "finished_at": None, "error": None}
            state.update(attempts=None, operations=[], approval=body.get("approval"))
            out.transitions[subject] = _Transition(body["transition"], state, seq=event.seq)
        elif event.type in (chain.JOURNALED, chain.ATTEMPTED, chain.OPERATED, chain.FINISHED):
            _transition_event(out.transitions, event)
    return out


def _transition_event(transitions: dict[str, _Transition], event: Event) -> None:
    known = transitions.setdefault(event.subject, _Transition(None, {"operations": []}))
    body, state = event.body, known.state
    known.seq = event.seq
    if event.type == chain.JOURNALED:
        known.steps.append((body["step"], event.seq))
        state["attempts"] = None
    elif event.type == chain.ATTEMPTED:
        state["attempts"] = body["attempts"]
    elif event.type == chain.OPERATED:
        if body["operation"] is not None:
            state.setdefault("operations", []).append(body["operation"])
        if body.get("approval") is not None:
            state["approval"] = body["approval"]
        state["attempts"] = body["attempts"]
        if body["step"] is not None:
            known.steps.append((body["step"], event.seq))
    else:
        state.update(result=body["result"], finished_at=body["finished_at"], error=body["error"])


@dataclass(frozen=True)
class _Window:
    """What the chain covers: records newer than the genesis (or any, if fresh) and the prune."""

    genesis_at: float
    fresh: bool
    pruned_before: float | None

    def pruned(self, at: float) -> bool:
        """A record this old may be gone, or not yet gone: retention."""
        return self.pruned_before is not None and at < self.pruned_before

    def uncovered(self, at: float) -> str | None:
        """Why a record the chain never saw is not a problem, or None when it is one."""
        if self.pruned(at):
            return "older than the last prune's cutoff"
        if not self.fresh and at < self.genesis_at:
            return "predates the audit chain"
        return None


def _decisions(
    replay: _Replay, records: Sequence[DecisionRecord], window: _Window
) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    notes: list[str] = []
    stored = {d.id: d for d in records}
    for id, expected in replay.decisions.items():
        what = f"decision {id}"
        record = stored.get(id)
        if record is None:
            if not window.pruned(expected.content["at"]):
                detail = f"audit event #{expected.seq} records it; the store has no such decision"
                problems.append(Problem("removed", what, detail, expected.seq))
            continue
        differ = _differ(expected.content, chain.decision_content(record))
        # Not last_at against at: replicas' clocks and workers' tallies may set it a little
        # before the first notification's time; the tally is an account, not evidence.
        if record.count < 1:
            differ.append("its repeat tally (count)")
        if differ:
            detail = f"{', '.join(differ)} differ from audit event #{expected.seq}"
            problems.append(Problem("edited", what, detail, expected.seq))
    for record in records:
        if record.id in replay.decisions:
            continue
        why = window.uncovered(record.at)
        if why is None:
            detail = "no audit event records it"
            problems.append(Problem("inserted", f"decision {record.id}", detail))
        else:
            notes.append(f"decision {record.id} ({format_time(record.at)}) {why}")
    return problems, notes


def _transitions(
    replay: _Replay, records: Sequence[TransitionRecord], window: _Window
) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    notes: list[str] = []
    copies: dict[str, list[TransitionRecord]] = {}
    for record in records:
        copies.setdefault(record.id, []).append(record)
    for id, expected in replay.transitions.items():
        what = f"transition {id}"
        if expected.content is None:
            continue  # begun before the anchor: pruned with it, or left by an interrupted prune
        if not copies.get(id):
            finished = expected.state["result"] != "in_progress"
            if not (finished and window.pruned(expected.content["started_at"])):
                detail = f"audit event #{expected.seq} records it; the store has no such transition"
                problems.append(Problem("removed", what, detail, expected.seq))
            continue
        for record in copies[id]:
            problems.extend(_compare_transition(expected, record))
    for id, stored in copies.items():
        if id in replay.transitions:
            continue
        why = window.uncovered(stored[0].started_at)
        if why is None:
            problems.append(Problem("inserted", f"transition {id}", "no audit event records it"))
        else:
            notes.append(f"transition {id} ({format_time(stored[0].started_at)}) {why}")
    return problems, notes


def _compare_transition(expected: _Transition, record: TransitionRecord) -> list[Problem]:
    assert expected.content is not None
    what = f"transition {record.id}"
    differ = _differ(expected.content, chain.transition_content(record))
    differ += _differ(expected.state, chain.transition_state(record))
    problems = []
    if differ:
        detail = f"{', '.join(differ)} differ from its audit events (last #{expected.seq})"
        problems.append(Problem("edited", what, detail, expected.seq))
    steps = [chain.step_content(s) for s in record.steps]
    found = _steps([c for c, _ in expected.steps], steps)
    if found is not None:
        kind, index = found
        listed = expected.steps if kind != "inserted" else [(c, 0) for c in steps]
        action = listed[min(index, len(listed) - 1)][0]["action"] if listed else "?"
        seq = expected.steps[index][1] if index < len(expected.steps) else expected.seq
        detail = {
            "edited": "it differs from the audit event that journaled it",
            "inserted": "no audit event journaled it",
            "removed": "an audit event journaled it; the store does not have it",
        }[kind]
        step = f"step {index + 1} ({action}) of transition {record.id}"
        problems.append(Problem(kind, step, detail, seq))
    return problems


def _steps(expected: list[Json], actual: list[Json]) -> tuple[Kind, int] | None:
    """The first step that differs, and how: edited, inserted or removed."""
    if expected == actual:
        return None
    index = next(
        (i for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if e != a),
        min(len(expected), len(actual)),
    )
    if len(actual) < len(expected) and actual[index:] == expected[index + 1 :]:
        return "removed", index
    if len(actual) > len(expected) and actual[index + 1 :] == expected[index:]:
        return "inserted", index
    return "edited", index


def _differ(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ (as canonical JSON: 1 and 1.0 are the same number)."""
    keys = sorted(set(expected) | set(actual))
    return [
        k
        for k in keys
        if chain.canonical(_num(expected.get(k))) != chain.canonical(_num(actual.get(k)))
    ]


def _num(value: Any) -> Any:
    """Numbers as floats, everywhere inside value: stores differ in int versus float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _num(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_num(v) for v in value]
    return value


def verify(
    log: AuditLog,
    keys: AuditKeys,
    expect: Head | None = None,
    retain_days: float | None = None,
) -> Verdict:
    """Check the chain under keys and every record against it; expect: a head recorded
    earlier; retain_days: every prune must have kept that much history."""
    problems = walk(log.events, log.anchor.head, Seals(keys)) + _head(log)
    keyed, notes = sealing.key_problems(log.events)
    problems += keyed
    if not log.events:
        problems.append(
            _event(log.head.seq, "removed", "the chain is empty (even a new one has its genesis)")
        )
    if retain_days is not None:
        problems += sealing.retention_problems(log.events, retain_days)
    if log.live is not None:
        found, unknown = live_state.check(log.events, log.live)
        problems += found
        notes += unknown
    replayed = replay(log.events)
    problems += _anchor(log, replayed)
    anchor = log.anchor
    window = _Window(anchor.genesis_at, anchor.fresh, anchor.pruned_before)
    found, later = _decisions(replayed, log.decisions, window)
    more, latest = _transitions(replayed, log.transitions, window)
    problems += found + more
    notes += later + latest
    if expect is not None:
        problems += _expected(log, expect, notes)
    problems = list({str(p): p for p in problems}.values())  # a record's copies say it once
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    steps = {(t.id, len(t.steps)) for t in log.transitions}
    records = len(log.decisions) + len(steps) + sum(n for _, n in steps)
    return Verdict(tuple(problems), tuple(notes), len(log.events), records, log.head, anchor)


def _expected(log: AuditLog, expect: Head, notes: list[str]) -> list[Problem]:
    """A head recorded earlier (audit verify --expect SEQ:HASH) must still be in the chain."""
    if expect.seq <= log.anchor.seq:
        notes.append(f"expected head #{expect.seq} is at or before the anchor: pruned")
        return []
    found = next((e for e in log.events if e.seq == expect.seq), None)
    if found is None:
        return [_event(expect.seq, "removed", "it was the head you recorded")]
    if found.hash != expect.hash:
        return [_event(expect.seq, "edited", "its hash is not the one you recorded")]
    return []


def parse_head(text: str) -> Head:
    """SEQ:HASH, as `audit verify` prints the head; ValueError when malformed."""
    seq, _, hashed = text.partition(":")
    if not seq.isdigit() or len(hashed) != 64 or not all(c in "0123456789abcdef" for c in hashed):
        raise ValueError(f"{text!r} is not SEQ:HASH (a number, a colon, 64 hex digits)")
    return Head(int(seq), hashed)
