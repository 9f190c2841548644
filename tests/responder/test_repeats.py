"""The repeat tally: counts kept in memory, written together, given back when refused."""

from __future__ import annotations

import pytest

from responder.state.base import Cause, DecisionRecord, StoreUnavailable
from responder.state.repeats import Handle, RepeatTally

ALERT = {"fingerprint": "f1", "key": "f1@t", "status": "firing"}


def decision(kind: str = "duplicate", count: int = 1, status: str = "firing") -> DecisionRecord:
    cause = Cause(alerts=({**ALERT, "status": status},))
    return DecisionRecord("d-1", 1.0, kind, "in progress", cause, count=count)  # type: ignore[arg-type]


class Table:
    """The decisions a store holds, by handle; refuses writes while down."""

    def __init__(self) -> None:
        self.counts: dict[Handle, int] = {"d-1": 1}
        self.writes = 0
        self.down = False

    def write(self, handle: Handle, times: int, at: float) -> DecisionRecord | None:
        if self.down:
            raise StoreUnavailable("control table unreachable")
        self.writes += 1
        if handle not in self.counts:
            return None
        self.counts[handle] += times
        return decision(count=self.counts[handle])


def test_repeats_are_written_once_per_flush() -> None:
    table = Table()
    tally = RepeatTally(table.write, flush_seconds=3600)
    assert tally.count("k", 2.0) is None  # unknown until written once
    tally.remember("k", "d-1", decision())
    counted = [tally.count("k", 2.0 + i) for i in range(50)]
    assert [c.count for c in counted if c] == list(range(2, 52))
    assert table.writes == 0
    tally.flush()
    assert (table.writes, table.counts["d-1"]) == (1, 51)
    tally.flush()
    assert table.writes == 1  # nothing new: no write


def test_refused_counts_are_kept_for_the_next_flush() -> None:
    table = Table()
    tally = RepeatTally(table.write, flush_seconds=3600)
    tally.remember("k", "d-1", decision())
    tally.count("k", 2.0)
    table.down = True
    with pytest.raises(StoreUnavailable):
        tally.flush()
    tally.count("k", 3.0)
    table.down = False
    tally.flush()
    assert table.counts["d-1"] == 3


def test_a_pruned_decision_is_forgotten_and_changes_are_never_coalesced() -> None:
    table = Table()
    tally = RepeatTally(table.write, flush_seconds=3600)
    tally.remember("k", "gone", decision())
    tally.count("k", 2.0)
    tally.flush()
    assert tally.count("k", 3.0) is None  # recorded anew by the store
    tally.remember("b", "d-1", decision(kind="blocked"))
    tally.remember("r", "d-1", decision(status="resolved"))
    assert tally.count("b", 2.0) is None and tally.count("r", 2.0) is None
