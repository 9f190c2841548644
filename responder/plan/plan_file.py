"""The evaluated plan as one JSON file per replica: written by its evaluator, read by every worker.

The file is replaced atomically, so a reader sees one whole evaluation. Readers judge
its age: a plan older than stale_after seconds (its evaluator died, hangs, or has not
finished its first evaluation since a restart) is served marked "stale", never as fresh.
Problems quote what APIs and commands answered, so the file is written redacted and
readable by its owner only, like the state store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from responder.actions import _files

Json = Any
FILE_NAME = "plan.json"


def stale_after(interval_seconds: float) -> float:
    """How old a plan may be before it is stale: three intervals, plus time to evaluate."""
    return 3 * interval_seconds + 30.0


def empty() -> dict[str, Any]:
    """The document before any evaluation."""
    return {
        "evaluated_at": None,
        "evaluated_at_unix": None,
        "ready": None,
        "regions": {},
    }


def judged(document: dict[str, Any], now: float, stale_after_seconds: float) -> dict[str, Any]:
    """document with "age_seconds" and "stale" as of now."""
    evaluated = document.get("evaluated_at_unix")
    if not isinstance(evaluated, int | float):
        return {**document, "age_seconds": None, "stale": True}
    age = max(0.0, now - evaluated)
    return {**document, "age_seconds": round(age, 1), "stale": age > stale_after_seconds}


def not_ready(document: dict[str, Any], region: str, active_region: str) -> str | None:
    """Why the plan does not let a planned move to region go ahead; None when it does.

    A stale plan (or none yet) does not, nor one evaluated while another region was active
    (it plans moves from there): a switchover starts only on a fresh yes.
    """
    if document.get("stale", True):
        return "the plan has no fresh evaluation (none yet, or stale): try again after the next"
    evaluated_from = document.get("active_region")
    if evaluated_from != active_region:
        return (
            f"the plan has no fresh evaluation (evaluated while {evaluated_from} was active, "
            f"now {active_region}): try again after the next"
        )
    entry = document.get("regions", {}).get(region)
    if entry is None:
        return f"the plan has no entry for {region}"
    fences = document.get("fences") or []
    if entry.get("ready") and not _errors(fences):
        return None
    errors = _errors(entry.get("actions", [])) + _errors(fences)
    return f"the plan for {region} is not ready: {'; '.join(errors[:3]) or 'see the plan'}"


def _errors(inspections: list[dict[str, Any]]) -> list[str]:
    return [
        str(problem.get("message"))
        for inspection in inspections
        for problem in inspection.get("problems", [])
        if problem.get("severity") == "error"
    ]


def select(document: dict[str, Any], region: str) -> dict[str, Any]:
    """The document narrowed to one region, its "ready" recomputed (null when not planned)."""
    regions = {r: v for r, v in document.get("regions", {}).items() if r == region}
    ready = regions[region]["ready"] if region in regions else None
    if document.get("evaluated_at") is None:
        ready = None
    return {**document, "regions": regions, "ready": ready}


class PlanFile:
    """DIR/plan.json: write(plan document), read() -> the document judged for staleness."""

    def __init__(
        self,
        directory: Path,
        stale_after_seconds: float,
        clock: Callable[[], float] = time.time,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.stale_after_seconds = stale_after_seconds
        self.clock = clock
        self.redact = redact

    def write(self, document: dict[str, Any]) -> None:
        """Replace the file with document; ActionError when the directory is unusable."""
        _files.make_parent(self.path, "plan")
        text = self.redact(json.dumps(document, sort_keys=False))
        _files.atomic_write(self.path, text + "\n", default_mode=0o600)

    def read(self) -> dict[str, Any]:
        """The last evaluation with its age and staleness; an empty, stale one if none."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None  # none yet, or unreadable: either way nothing to trust
        if not isinstance(document, dict):
            document = empty()
        return judged(document, self.clock(), self.stale_after_seconds)
