"""One writer at a time per SQLite file: threads and gunicorn workers queue on a file lock.

Correctness does not depend on it (SQLite's write lock and the store's
compare-and-set do that). It is about latency: SQLite's busy handler sleeps and
polls when writers collide, so a storm of notifications waits in growing sleeps;
a kernel file lock wakes the next waiter the moment the lock is free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriterLock:
    """A process-wide lock, plus an flock on path when one is given (same-host backends)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def _descriptor(self) -> int | None:
        if self.path is None:
            return None
        # Open after fork, per process: an inherited descriptor would share the lock.
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block; best effort across processes if the file is unusable."""
        with self._thread_lock:
            try:
                fd = self._descriptor()
            except OSError:
                fd = None  # the store will report the real problem
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
