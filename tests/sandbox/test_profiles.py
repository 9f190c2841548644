"""The sandbox's probe timings: an option wins, then the profile's, then the sandbox's own."""

from __future__ import annotations

from sandbox.components.exporter import SANDBOX_TIMINGS, probe_timings


def test_probe_timings_come_from_options_then_profile_then_sandbox() -> None:
    assert probe_timings({}) == SANDBOX_TIMINGS
    assert probe_timings({"profile": "shipped"}) == {"interval_seconds": 5, "timeout_seconds": 2}
    assert probe_timings({"profile": "fast"}) == {"interval_seconds": 1, "timeout_seconds": 0.5}
    assert probe_timings({"profile": "fast", "probe_interval_seconds": 3}) == {
        "interval_seconds": 3,
        "timeout_seconds": 0.5,
    }
