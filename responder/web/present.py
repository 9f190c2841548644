"""Times and timelines for people: "3 min ago" with the UTC time on hover; durations that add up.

Pure: the time now is an argument. Relative times come out as <time> elements whose
title is the absolute UTC time; the timeline's durations are whole tenths of a second
between consecutive entries' offsets rounded to tenths, so the rounded durations add
up to the rounded total exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from responder.model.alerts import format_time
from responder.records import words

Json = Any


def unix(value: str | float | None) -> float | None:
    """An RFC 3339 time (as the records render them) or Unix seconds as Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def relative(seconds: float) -> str:
    """How long ago (positive) or ahead (negative) in words: "12 s ago", "in 3 min"."""
    span = abs(seconds)
    if span < 1:
        return "just now"
    if span < 60:
        text = f"{int(span)} s"
    elif span < 3600:
        text = f"{int(span // 60)} min"
    elif span < 86400:
        text = f"{int(span // 3600)} h"
    else:
        text = f"{int(span // 86400)} d"
    return f"{text} ago" if seconds > 0 else f"in {text}"


def when(value: str | float | None, now: float) -> Markup:
    """A <time> saying how long ago, with the absolute UTC time on hover; "never" for none."""
    at = unix(value)
    if at is None:
        return Markup("never") if value in (None, "") else Markup("{}").format(value)
    iso = format_time(at)
    shown = iso[:19].replace("T", " ") + " UTC"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, shown, relative(now - at))


def timeline(report: Json, now: float | None = None) -> list[Json]:
    """The report's entries, each with its duration to the next (the last: 0), in tenths.

    A transition in progress ends with an entry "now" (given now): the wait so far, for an
    approval or a step, counts in the durations and the total.
    """
    entries = list(report.get("timeline") or [])
    running = (report.get("transition") or {}).get("result") == "in_progress"
    if running and now is not None and entries and now > float(entries[-1]["unix"]):
        waiting = "waiting for approval" if _waiting(report) else "in progress"
        offset = float(entries[0].get("offset_seconds", 0)) + now - float(entries[0]["unix"])
        entries.append({"event": "now", "unix": now, "offset_seconds": offset, "detail": waiting})
    tenths = [round(float(e.get("offset_seconds", 0)) * 10) for e in entries]
    out = []
    for i, entry in enumerate(entries):
        step = tenths[i + 1] - tenths[i] if i + 1 < len(entries) else 0
        out.append({**entry, "duration_tenths": step, "duration": words.seconds(step / 10)})
    return out


def _waiting(report: Json) -> bool:
    approval = (report.get("transition") or {}).get("approval") or {}
    return approval.get("state") == "waiting"


def total(entries: list[Json]) -> str:
    """The timeline's total, rounded as its entries' durations are: their exact sum."""
    return words.seconds(sum(e["duration_tenths"] for e in entries) / 10)
