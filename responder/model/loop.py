"""A daemon thread that works in rounds: woken at once, else after the pause a round asks for."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class Loop(ABC):
    """start(), wake(), stop(); a subclass says what one round does and how long to rest."""

    name = "loop"

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; call it in each worker after fork (threads do not survive fork)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Ask for a round now."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current round; waits up to timeout."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake() during the round triggers another one
            self._wake.wait(self.round())

    @abstractmethod
    def round(self) -> float:
        """One round, its errors handled; how many seconds to rest before the next."""
