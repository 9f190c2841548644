"""The invariants `bench chaos` checks after each schedule (pure: observations in, violations out).

(a) world equals record, (b) history holds, (c) notices arrive, (d) no overlapping writes,
(e) every request answered. Each check returns the violations it found, one short line each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from responder.notify.notices import FINISHED

HANG_SECONDS = 15.0  # a request unanswered for this long hangs


@dataclass(frozen=True)
class Call:
    """One request the harness made to a responder, and how it ended."""

    started: float
    ended: float
    method: str
    path: str
    replica: int
    status: int | None  # None: no HTTP answer (see error)
    error: str | None = None


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def world_equals_record(
    status: Mapping[str, Any], live: Mapping[str, Any], desired: Mapping[str, Any]
) -> list[str]:
    """(a) Each action's live state equals the active region's desired state.

    A stalled transition is in progress: its world is half-changed on purpose, reported
    by its phase and error (check b), so it is not compared.
    """
    if status.get("phase") == "stalled":
        return []
    drift = {d["action"] for d in status.get("drift", []) or []}
    return [
        f"(a) {name}: live {live.get(name)!r}, active {status['active_region']} wants {want!r}"
        for name, want in desired.items()
        if live.get(name) != want and name not in drift
    ]


def _why_stalled(transition: Mapping[str, Any], now: float) -> str | None:
    """What a transition in progress shows as the reason it stalled: an error, or its deadline
    passed; None when it shows neither."""
    attempts = transition.get("attempts") or {}
    errors = [s.get("error") for s in transition.get("steps", []) if s.get("error")]
    error = transition.get("error") or attempts.get("error") or next(iter(errors), None)
    if error:
        return str(error)
    deadline = transition.get("deadline_at")
    if deadline and _unix(deadline) <= now:
        return f"past its deadline {deadline}"
    return None


def history_holds(
    audit_exit: int,
    audit_output: str,
    status: Mapping[str, Any],
    history: Mapping[str, Any],
    now: float,
) -> list[str]:
    """(b) The audit chain verifies; every transition ended, or is stalled with its error
    (or its deadline passed)."""
    found = []
    if audit_exit != 0:
        found.append(f"(b) audit verify exited {audit_exit}: {audit_output.strip()[-300:]}")
    for transition in history.get("transitions", []):
        if transition["result"] != "in_progress":
            continue
        if status.get("phase") != "stalled" or _why_stalled(transition, now) is None:
            found.append(
                f"(b) transition {transition['id']} ({transition['kind']}) still in progress, "
                f"phase {status.get('phase')}, no error shown"
            )
    return found


def notices_arrive(
    history: Mapping[str, Any], sinks: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[str]:
    """(c) Each sink told of each transition's start and end; one event per dedup key."""
    found = []
    for sink, received in sinks.items():
        texts: dict[str, set[str]] = {}
        for item in received:
            texts.setdefault(str(item["key"]), set()).add(str(item["text"]))
        found += [
            f"(c) {sink}: {len(seen)} different events under dedup key {key}"
            for key, seen in texts.items()
            if len(seen) > 1
        ]
        for transition in history.get("transitions", []):
            tid = transition["id"]
            if not any(key.startswith(f"{tid}:") for key in texts):
                found.append(f"(c) {sink}: nothing told of transition {tid}")
            result = transition["result"]
            if result in FINISHED and f"{tid}:{FINISHED[result]}" not in texts:
                found.append(f"(c) {sink}: not told that transition {tid} ended {result}")
    return found


def no_overlapping_writes(requests: Iterable[Mapping[str, Any]]) -> list[str]:
    """(d) No DigitalOcean object written by two lease holders at once; every write names one."""
    writes = [r for r in requests if r["method"] != "GET"]
    found = [
        f"(d) {w['method']} {w['path']} at {w['started']} names no lease holder"
        for w in writes
        if not w.get("holder")
    ]
    by_path: dict[str, list[Mapping[str, Any]]] = {}
    for write in writes:
        if write.get("holder"):
            by_path.setdefault(write["path"], []).append(write)
    for path, same in by_path.items():
        spans = sorted((_unix(w["started"]), _unix(w["ended"]), w["holder"]) for w in same)
        for i, (start, end, holder) in enumerate(spans):
            for other_start, _, other in spans[i + 1 :]:
                if other_start >= end:
                    break
                if other != holder:
                    found.append(f"(d) {path}: {holder} and {other} wrote at once near {start:.3f}")
    return found


def every_request_answered(
    calls: Iterable[Call],
    store_down: Callable[[float, float], bool],
    disrupted: Callable[[Call], bool],
) -> list[str]:
    """(e) No 5xx but 503 while the store is down; no hang; no lost answer but a killed
    process's or a dead replica's."""
    found = []
    for call in calls:
        what = f"{call.method} {call.path} (replica {call.replica})"
        if call.ended - call.started >= HANG_SECONDS or (call.error and "timed out" in call.error):
            found.append(f"(e) {what} hung {call.ended - call.started:.1f}s")
        elif call.status is None:
            if not disrupted(call):
                found.append(f"(e) {what} got no answer: {call.error}")
        elif call.status >= 500 and not (
            call.status == 503 and store_down(call.started, call.ended)
        ):
            found.append(
                f"(e) {what} answered {call.status} with the store up "
                f"(at {call.started:.3f}, after {call.ended - call.started:.1f}s)"
            )
    return found
