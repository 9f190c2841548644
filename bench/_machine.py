"""How busy the machine was while a benchmark ran: /proc/loadavg sampled in the background."""

from __future__ import annotations

import os
import threading
from types import TracebackType

from bench import Figures

SAMPLE_SECONDS = 5.0


class Load:
    """Samples the 1-minute load average until the with-block ends; figures() reports it."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadavg", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.samples.append(os.getloadavg()[0])

    def figures(self) -> Figures:
        """CPU count and the 1-minute load average at the start, the end, on average and at most."""
        return {
            "cpus": os.cpu_count(),
            "loadavg_1m_start": round(self.samples[0], 2),
            "loadavg_1m_end": round(self.samples[-1], 2),
            "loadavg_1m_mean": round(sum(self.samples) / len(self.samples), 2),
            "loadavg_1m_max": round(max(self.samples), 2),
        }
