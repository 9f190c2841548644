"""Repeats of a recorded decision, counted in memory and written together.

A burst of the same notification (Alertmanager replicas and re-sends, arriving at every
worker) is one decision whose count grows. Once this process has written or counted a
decision, its further repeats cost no write each: they are added up here and written as
one count at most FLUSH_SECONDS later, by a timer, or before this process reads the
history or closes the store. A crash loses at most that second of counting; never a
decision, and never a repeat that changes anything (a blocked decision's, or one whose
alerts resolved: those are written one by one, as before).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from ddb_failover.logs import kv
from responder.state.base import DecisionRecord, StoreError, clears_block

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
# Decisions remembered per process; the oldest is forgotten first (it is counted by a
# write again if it repeats after that).
KNOWN_LIMIT = 256

# Adds times repeats, the last at `at`, to the decision a handle names (a SQLite row, a
# DynamoDB item); the decision as now stored, or None when it is gone (pruned).
Handle = int | str
WriteRepeats = Callable[[Handle, int, float], DecisionRecord | None]


def coalescible(record: DecisionRecord) -> bool:
    """True for a decision whose repeats change nothing but its count."""
    return record.kind in ("ignored", "duplicate") and not clears_block(record)


@dataclass
class _Known:
    handle: Handle
    record: DecisionRecord  # as last written or read
    times: int = 0  # counted since, not yet written
    last_at: float = 0.0


class RepeatTally:
    """Counts repeats of known decisions in memory; one write per decision per flush."""

    def __init__(self, write: WriteRepeats, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._write = write
        self._flush_seconds = flush_seconds
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def count(self, key: str, at: float) -> DecisionRecord | None:
        """key's decision with this repeat counted; None when this process does not know it."""
        with self._lock:
            known = self._known.get(key)
            if known is None:
                return None
            known.times += 1
            known.last_at = at
            if self._timer is None:
                self._timer = threading.Timer(self._flush_seconds, self._flush_later)
                self._timer.daemon = True
                self._timer.start()
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
                known = _Known(handle, record)
            self._known[key] = known
            evicted = []
            while len(self._known) > KNOWN_LIMIT:
                evicted.append(self._known.popitem(last=False))
        for _, oldest in evicted:
            if oldest.times:
                self._write(oldest.handle, oldest.times, oldest.last_at)

    def flush(self) -> None:
        """Write every count not yet written; StoreError when the store refuses (kept).

        Counting goes on meanwhile: the lock is not held while the store writes.
        """
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            taken = [(k, v.handle, v.times, v.last_at) for k, v in self._known.items() if v.times]
            for key, *_ in taken:
                self._known[key].times = 0
        for index, (key, handle, times, at) in enumerate(taken):
            try:
                stored = self._write(handle, times, at)
            except StoreError:
                self._give_back(taken[index:])
                raise
            with self._lock:
                known = self._known.get(key)
                if known is None or known.handle != handle:
                    continue
                if stored is None:  # pruned: a repeat from now on records it anew
                    del self._known[key]
                else:
                    known.record = stored

    def _give_back(self, untold: list[tuple[str, Handle, int, float]]) -> None:
        with self._lock:
            for key, handle, times, at in untold:
                known = self._known.get(key)
                if known is not None and known.handle == handle:
                    known.times += times
                    known.last_at = max(known.last_at, at)

    def _flush_later(self) -> None:
        try:
            self.flush()
        except StoreError as exc:
            # Kept for the next repeat's timer, or the next read or close.
            log.warning(kv(event="repeat_count_not_written", error=str(exc)))
