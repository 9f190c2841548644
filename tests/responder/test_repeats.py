"""The repeat tally: counts kept in memory, written together, kept when refused."""

from __future__ import annotations

from responder.state.records import Cause, DecisionRecord
from responder.state.repeats import KNOWN_LIMIT, Handle, RepeatTally
from responder.state.store import StoreUnavailable

ALERT = {"fingerprint": "f1", "key": "f1@t", "status": "firing"}


def decision(kind: str = "duplicate", count: int = 1, status: str = "firing") -> DecisionRecord:
    cause = Cause(alerts=({**ALERT, "status": status},))
    return DecisionRecord("d-1", 1.0, kind, "in progress", cause, count=count)  # type: ignore[arg-type]


class Table:
    """The decisions a store holds, by handle and key; refuses writes while down."""

    def __init__(self) -> None:
        self.counts: dict[Handle, int] = {"d-1": 1}
        self.keys: dict[Handle, str] = {"d-1": "k"}
        self.writes = 0
        self.down: Exception | None = None
        self.tally: RepeatTally | None = None

    def write(self, key: str, handle: Handle, times: int, at: float) -> DecisionRecord | None:
        if self.down is not None:
            raise self.down
        self.writes += 1
        if self.keys.get(handle) != key:
            return None
        self.counts[handle] += times
        return decision(count=self.counts[handle])

    def record_anew(self, made: DecisionRecord) -> DecisionRecord:
        """What a store's record_decision does with a decision it no longer has."""
        handle = f"d-{len(self.counts) + 1}"
        self.counts[handle], self.keys[handle] = 1, "k"
        assert self.tally is not None
        self.tally.remember("k", handle, decision())
        return decision()


def tally_of(table: Table) -> RepeatTally:
    table.tally = RepeatTally(table.write, table.record_anew, flush_seconds=3600)
    return table.tally


def test_repeats_are_written_once_per_flush() -> None:
    table = Table()
    tally = tally_of(table)
    assert tally.count("k", 2.0) is None  # unknown until written once
    tally.remember("k", "d-1", decision())
    counted = [tally.count("k", 2.0 + i) for i in range(50)]
    assert [c.count for c in counted if c] == list(range(2, 52))
    assert table.writes == 0
    tally.flush()
    assert (table.writes, table.counts["d-1"]) == (1, 51)
    tally.flush()
    assert table.writes == 1  # nothing new: no write


def test_refused_counts_are_kept_whatever_the_error() -> None:
    table = Table()
    tally = tally_of(table)
    tally.remember("k", "d-1", decision())
    tally.count("k", 2.0)
    for error in (StoreUnavailable("control table unreachable"), OSError("flock: EIO")):
        table.down = error
        tally.flush()  # never raises: the caller may be a history read
        tally.count("k", 3.0)
    table.down = None
    tally.flush()
    assert table.counts["d-1"] == 1 + 3


def test_a_pruned_decision_is_recorded_anew_with_its_repeats() -> None:
    table = Table()
    tally = tally_of(table)
    tally.remember("k", "gone", decision())  # the store pruned it since
    for at in (2.0, 3.0, 4.0):
        tally.count("k", at)
    tally.flush()  # the write finds no decision: one is recorded, the rest count on it
    tally.flush()
    assert table.counts == {"d-1": 1, "d-2": 3}


def test_a_handle_now_naming_another_decision_is_not_counted_on() -> None:
    table = Table()
    table.keys["d-1"] = "other"  # the file was replaced: d-1 is another decision now
    tally = tally_of(table)
    tally.remember("k", "d-1", decision())
    tally.count("k", 2.0)
    tally.flush()
    assert table.counts["d-1"] == 1 and table.counts["d-2"] == 1


def test_forgotten_decisions_are_written_by_the_next_flush_not_the_request() -> None:
    table = Table()
    tally = tally_of(table)
    tally.remember("k", "d-1", decision())
    tally.count("k", 2.0)
    table.down = StoreUnavailable("control table unreachable")
    for index in range(KNOWN_LIMIT):  # pushes "k" out; its count must survive
        tally.remember(f"other-{index}", f"o-{index}", decision())
    table.down = None
    tally.flush()
    assert table.counts["d-1"] == 2


def test_changes_are_never_coalesced() -> None:
    tally = tally_of(Table())
    tally.remember("b", "d-1", decision(kind="blocked"))
    tally.remember("r", "d-1", decision(status="resolved"))
    assert tally.count("b", 2.0) is None and tally.count("r", 2.0) is None
