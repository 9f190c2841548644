"""Render one probe round as a human-readable table (for --once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from exporter.scheduler import Outcome

HEADER = ("REGION", "TABLE", "OPERATION", "RESULT", "REASON", "LATENCY", "DETAIL")
LagOf = Callable[[str, str, str], float | None]  # (table, source, region) -> lag seconds


def _latency(outcome: Outcome) -> str:
    return "-" if outcome.duration is None else f"{outcome.duration * 1000:.1f}ms"


def _detail(outcome: Outcome, peers: Sequence[str], lag_of: LagOf) -> str:
    if outcome.kind != "replication" or not outcome.ok:
        return outcome.detail
    parts = []
    for source in peers:
        lag = lag_of(outcome.table, source, outcome.region)
        parts.append(
            f"lag from {source}: " + ("no heartbeat yet" if lag is None else f"{lag:.2f}s")
        )
    return "; ".join(parts)


def rows(
    outcomes: Sequence[Outcome], regions: Sequence[str], lag_of: LagOf
) -> list[tuple[str, ...]]:
    """One row per region/table/operation."""
    result: list[tuple[str, ...]] = []
    for outcome in outcomes:
        peers = [r for r in regions if r != outcome.region]
        result.append(
            (
                outcome.region,
                outcome.table,
                outcome.kind,
                "ok" if outcome.ok else "FAIL",
                outcome.reason or "-",
                _latency(outcome),
                _detail(outcome, peers, lag_of),
            )
        )
    return result


def table(data: Sequence[tuple[str, ...]]) -> str:
    """Align rows under HEADER; the last column is left ragged."""
    every = [HEADER, *data]
    widths = [max(len(row[i]) for row in every) for i in range(len(HEADER) - 1)]
    lines = []
    for row in every:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def failed(outcomes: Sequence[Outcome]) -> bool:
    """True when any read or write probe failed (replication is measured, not judged)."""
    return any(not o.ok and o.kind != "replication" for o in outcomes)
