"""One thing `audit verify` found wrong: the record it names, and how it was tampered with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from responder.state.records import Json

Kind = Literal["edited", "inserted", "removed"]


@dataclass(frozen=True)
class Problem:
    """One record found edited, inserted or removed; seq orders it along the chain."""

    kind: Kind
    what: str  # names the record: "decision d-...", "step 2 (www) of transition t-..."
    detail: str
    seq: int | None = None  # the chain position it was found at; None: unknown to the chain

    def __str__(self) -> str:
        return f"{self.what} was {self.kind}: {self.detail}"

    def to_json(self) -> Json:
        """JSON form for --json."""
        return {"kind": self.kind, "record": self.what, "detail": self.detail, "seq": self.seq}


def at_event(seq: int, kind: Kind, detail: str) -> Problem:
    """A problem with the audit event at seq."""
    return Problem(kind, f"audit event #{seq}", detail, seq)
