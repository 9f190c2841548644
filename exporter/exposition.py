"""The /metrics body, rendered once per probe round instead of on every scrape."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Exposition:
    """Probe series rendered by the scheduler after each round, plus live process series.

    Probe values only change when a round is recorded, so rendering them then
    is exact, and a scrape costs a byte copy however many tables and regions
    there are.
    """

    def __init__(self, render: Callable[[], bytes], live: CollectorRegistry | None = None) -> None:
        self._render = render
        self._live = live
        self._body = render()

    def refresh(self) -> None:
        """Re-render the probe series; a scrape in progress keeps the previous bytes."""
        self._body = self._render()  # one reference swap: no lock needed

    def render(self) -> bytes:
        """The current /metrics body in the Prometheus text format."""
        if self._live is None:
            return self._body
        return self._body + generate_latest(self._live)
