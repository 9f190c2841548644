"""Repeats of a recorded decision, counted in memory and written together.

A burst of the same notification (Alertmanager replicas and re-sends, arriving at every
worker) is one decision whose count grows. Once this process has written or counted a
decision, its further repeats cost no write each: they are added up here and written as
one count at most FLUSH_SECONDS later, by a timer, or before this process reads the
history or closes the store. A crash loses at most that second of counting; never a
decision, and never a repeat that changes anything (a blocked decision's, or one whose
alerts resolved: those are written one by one, as before). A count the store refuses is
kept and tried again a second later; one whose decision is gone (pruned) records the
decision anew and counts on it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from ddb_failover.logs import kv
from responder.state.phases import clears_block
from responder.state.records import DecisionRecord

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
# Decisions remembered per process; the oldest is forgotten first (it is counted by a
# write again if it repeats after that).
KNOWN_LIMIT = 256

# Adds times repeats, the last at `at`, to the decision of key that a handle names (a
# SQLite row, a DynamoDB item); the decision as now stored, or None when the handle no
# longer names key's decision (pruned, or the file replaced).
Handle = int | str
WriteRepeats = Callable[[str, Handle, int, float], DecisionRecord | None]
# Records a decision like this one as the store records any new decision.
RecordAnew = Callable[[DecisionRecord], object]


def coalescible(record: DecisionRecord) -> bool:
    """True for a decision whose repeats change nothing but its count."""
    return record.kind in ("ignored", "duplicate") and not clears_block(record)


def anew(record_decision: Callable[..., DecisionRecord]) -> RecordAnew:
    """A RecordAnew through a store's own record_decision."""

    def record(made: DecisionRecord) -> DecisionRecord:
        return record_decision(
            made.kind,
            made.reason,
            made.cause,
            region=made.region,
            to_region=made.to_region,
            transition_kind=made.transition_kind,
        )

    return record


@dataclass
class _Known:
    handle: Handle
    record: DecisionRecord  # as last written or read
    times: int = 0  # counted since, not yet written
    last_at: float = 0.0


class _Untold(NamedTuple):
    key: str
    handle: Handle
    times: int
    at: float
    record: DecisionRecord


class RepeatTally:
    """Counts repeats of known decisions in memory; one write per decision per flush."""

    def __init__(
        self, write: WriteRepeats, record_anew: RecordAnew, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self._write = write
        self._record_anew = record_anew
        self._flush_seconds = flush_seconds
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._orphans: list[_Untold] = []  # counts of decisions forgotten before written
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def count(self, key: str, at: float, times: int = 1) -> DecisionRecord | None:
        """key's decision with these repeats counted; None when this process does not know it."""
        with self._lock:
            known = self._known.get(key)
            if known is None:
                return None
            known.times += times
            known.last_at = max(known.last_at, at)
            self._schedule()
            return replace(known.record, count=known.record.count + known.times, last_at=at)

    def remember(self, key: str, handle: Handle, record: DecisionRecord) -> None:
        """record, just written under key: its repeats may be counted here from now on."""
        if not coalescible(record):
            return
        with self._lock:
            known = self._known.pop(key, None)
            if known is not None and known.handle == handle:
                known.record = record
            else:
                if known is not None and known.times:
                    self._orphans.append(_untold(key, known))
                known = _Known(handle, record)
            self._known[key] = known
            while len(self._known) > KNOWN_LIMIT:
                old_key, oldest = self._known.popitem(last=False)
                if oldest.times:  # written by the next flush, not in this caller's request
                    self._orphans.append(_untold(old_key, oldest))
            if self._orphans:
                self._schedule()

    def flush(self) -> None:
        """Write every count not yet written. Never raises: what the store refuses is kept
        and tried again FLUSH_SECONDS later. Counting goes on meanwhile: the lock is not
        held while the store writes."""
        if self._flush_once():
            self._flush_once()  # the repeats of decisions just recorded anew

    def _flush_once(self) -> bool:
        """One pass; True when a decision was recorded anew and counted on."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            taken = [_untold(k, v) for k, v in self._known.items() if v.times] + self._orphans
            self._orphans = []
            for key, *_ in taken:
                if key in self._known:
                    self._known[key].times = 0
        gone = []
        for index, untold in enumerate(taken):
            try:
                stored = self._write(untold.key, untold.handle, untold.times, untold.at)
            except Exception as exc:
                log.warning(kv(event="repeat_count_not_written", error=str(exc)))
                self._give_back(taken[index:])
                return False
            with self._lock:
                known = self._known.get(untold.key)
                if known is not None and known.handle == untold.handle:
                    if stored is None:
                        del self._known[untold.key]
                    else:
                        known.record = stored
            if stored is None:
                gone.append(untold)
        for untold in gone:
            self._count_anew(untold)
        return bool(gone)

    def _count_anew(self, untold: _Untold) -> None:
        """Repeats of a decision the store no longer has: recorded anew, counted on it."""
        try:
            self._record_anew(untold.record)  # remembers it again: the rest count on it
        except Exception as exc:
            log.warning(kv(event="repeat_count_not_written", error=str(exc)))
            return
        if untold.times > 1:
            self.count(untold.key, untold.at, untold.times - 1)

    def _schedule(self) -> None:
        """Start the flush timer unless one is running; the lock is held."""
        if self._timer is None:
            self._timer = threading.Timer(self._flush_seconds, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def _give_back(self, untold: list[_Untold]) -> None:
        with self._lock:
            for item in untold:
                known = self._known.get(item.key)
                if known is not None and known.handle == item.handle:
                    known.times += item.times
                    known.last_at = max(known.last_at, item.at)
                else:
                    self._orphans.append(item)
            self._schedule()


def _untold(key: str, known: _Known) -> _Untold:
    return _Untold(key, known.handle, known.times, known.last_at, known.record)
