"""A few probe threads run Python at a time, and never one that is waiting on the network.

Every lane has its own thread so a hung region can never hold up another, but
a round's probes all wake at once. Left to the interpreter lock, hundreds of
threads wait for it together, and CPython's waiters wake every switch
interval to ask for it: with 100 tables in 3 regions (900 threads) that
storm cost as much CPU as the probes themselves. A probe thread therefore
holds a permit while it runs Python (building its request, parsing the
answer) and gives it back while botocore waits on the network, so at most
PERMITS threads contend for the lock and the rest sleep on a semaphore,
which costs nothing while they wait. No permit is ever held across I/O, so a
hung region cannot take one from the others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The interpreter runs one thread at a time; a second permit keeps one thread
# ready while the other is in a system call.
PERMITS = 2


class Gate:
    """Permits for probe threads, handed back by botocore's send and taken again to parse."""

    def __init__(self, permits: int = PERMITS) -> None:
        self._permits = threading.BoundedSemaphore(permits)
        self._local = threading.local()

    def _enter(self, **_: Any) -> None:
        if not getattr(self._local, "held", False):
            self._permits.acquire()
            self._local.held = True

    def _leave(self, **_: Any) -> None:
        if getattr(self._local, "held", False):
            self._local.held = False
            self._permits.release()

    def attach(self, client: Any) -> None:
        """Give the permit back while client sends and waits; take it again to parse."""
        # Handlers must return None: a value from before-send would be taken as the response.
        client.meta.events.register("before-send", self._leave)
        client.meta.events.register("before-parse", self._enter)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Run the body (one probe) holding a permit whenever it is not on the network."""
        self._enter()
        try:
            yield
        finally:
            self._leave()
