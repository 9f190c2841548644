"""What the chain's last events say the live state is, against what the store holds.

The live state (the active region, the freeze, the transition in progress) is what
`status` shows and what the next decision acts on; it lives beside the records (SQLite's
meta row, DynamoDB's current item), so an edit of it changes no record. Replaying the
events gives what it must be: a checkpoint (genesis, key_rotated, pruned) states the
active region and the freeze; a completed transition moves the active region; frozen and
unfrozen set the freeze; a transition begun and not finished is in progress.
Pure: events and the stored live state in, problems out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.records.problem import Problem
from responder.state import chain
from responder.state.chain import Event, Live
from responder.state.records import Json

CHECKPOINTS = (chain.GENESIS, chain.KEY_ROTATED, chain.PRUNED)


@dataclass
class _Said:
    """A value and the event that said it; seq 0: no event has said it."""

    value: Any = None
    seq: int = 0


@dataclass
class Expected:
    """The live state the events say, each part with the event that said it last."""

    active_region: _Said = field(default_factory=_Said)
    frozen: _Said = field(default_factory=_Said)
    in_progress: _Said = field(default_factory=lambda: _Said(None, -1))
    to_regions: dict[str, str | None] = field(default_factory=dict)


def replay(events: Sequence[Event]) -> Expected:
    """The live state according to the events."""
    out = Expected()
    for event in events:
        body = event.body
        if event.type in CHECKPOINTS and isinstance(body.get("live"), dict):
            out.active_region = _Said(body["live"]["active_region"], event.seq)
            out.frozen = _Said(body["live"]["frozen"], event.seq)
        elif event.type == chain.FROZEN:
            out.frozen = _Said(body["freeze"], event.seq)
        elif event.type == chain.UNFROZEN:
            out.frozen = _Said(None, event.seq)
        elif event.type == chain.BEGUN:
            content = body["transition"]
            dry = bool(content.get("dry_run"))
            out.to_regions[event.subject] = None if dry else content["to_region"]
            out.in_progress = _Said(event.subject, event.seq)
        elif event.type == chain.FINISHED:
            _finished(out, event)
    return out


def _finished(out: Expected, event: Event) -> None:
    if out.in_progress.value == event.subject:
        out.in_progress = _Said(None, event.seq)
    if event.body["result"] != "completed" or event.subject not in out.to_regions:
        return
    region = out.to_regions[event.subject]
    if region is not None:  # a dry run moves nothing
        out.active_region = _Said(region, event.seq)


def check(events: Sequence[Event], live: Live) -> tuple[list[Problem], list[str]]:
    """Problems where the stored live state differs from the events'; notes where unknown."""
    said = replay(events)
    problems: list[Problem] = []
    notes: list[str] = []
    frozen = None if live.freeze is None else live.freeze.to_json()
    parts: list[tuple[str, _Said, Json]] = [
        ("active_region", said.active_region, live.active_region),
        ("freeze", said.frozen, frozen),
    ]
    if said.in_progress.seq >= 0:
        parts.append(("transition in progress", said.in_progress, live.in_progress))
    for name, expected, stored in parts:
        if expected.seq == 0:
            notes.append(f"the chain does not state the {name} (it began before this release)")
        elif chain.canonical(expected.value) != chain.canonical(stored):
            detail = (
                f"the store holds {_show(stored)}; audit event #{expected.seq} says"
                f" {_show(expected.value)}"
            )
            problems.append(Problem("edited", f"the live {name}", detail, expected.seq))
    return problems, notes


def _show(value: Json) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict) and "by" in value:
        return f"frozen by {value['by']} ({value.get('reason')})"
    return str(value)
