"""What a read-only inspection of an action finds: its state, the region's, and the problems.

Each problem has a stable kind, so the runbook (docs/runbook.md, FailoverPlanNotReady)
has a section per kind, and a message in words naming the object and the region.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ddb_failover.logs import redact
from responder.actions import _files
from responder.model.errors import ActionError, TemporaryError

Json = Any
Severity = Literal["error", "warning"]

CREDENTIALS = "credentials"  # the token or AWS credentials are refused, or cannot be read
MISSING = "missing"  # the object the action changes does not exist
INVALID_TARGET = "invalid_target"  # the region's desired state cannot be applied as configured
TTL = "ttl"  # a DNS TTL above plan.max_ttl_seconds (a warning)
NOT_WRITABLE = "not_writable"  # a file the action writes cannot be written
NOT_EXECUTABLE = "not_executable"  # a command the action runs cannot be run
RATE_LIMITED = "rate_limited"  # the API answered 429
RATELIMIT = "ratelimit"  # DigitalOcean's API budget is low: under 3 times a failover's reserve
UNREACHABLE = "unreachable"  # no usable answer now: timeout, refused connection, 5xx
READINESS = "readiness"  # the region itself: canary unreadable, or data at risk over the RPO
SITE = "site"  # the region's WordPress does not answer its health check as configured
ERROR = "error"  # any other failure; the message says which
KINDS = (
    CREDENTIALS,
    MISSING,
    INVALID_TARGET,
    TTL,
    NOT_WRITABLE,
    NOT_EXECUTABLE,
    RATE_LIMITED,
    RATELIMIT,
    UNREACHABLE,
    READINESS,
    SITE,
    ERROR,
)
_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Limits:
    """What an inspection holds every action to (responder.plan.plan)."""

    max_ttl_seconds: float = 300.0


@dataclass(frozen=True)
class Problem:
    """One thing that would stop (error) or hamper (warning) a move to a region."""

    kind: str
    message: str
    severity: Severity = "error"

    def to_json(self) -> dict[str, str]:
        """{"kind", "severity", "message"}."""
        return {"kind": self.kind, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class Inspection:
    """One action's read-only view of a move to a region."""

    action: str
    type: str
    current: Json
    desired: Json
    would_change: bool | None  # None when the current state could not be read
    problems: tuple[Problem, ...] = ()

    @property
    def ready(self) -> bool:
        """True when nothing but warnings stands in the way."""
        return all(p.severity == "warning" for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        """The plan's per-action entry."""
        return {
            "action": self.action,
            "type": self.type,
            "ready": self.ready,
            "current": self.current,
            "desired": self.desired,
            "would_change": self.would_change,
            "problems": [p.to_json() for p in self.problems],
        }


def problem_of(exc: ActionError) -> Problem:
    """The problem an action's error stands for: its kind, else unreachable or error."""
    kind = exc.kind or (UNREACHABLE if isinstance(exc, TemporaryError) else ERROR)
    message = redact(str(exc))  # before the cut, which could leave part of a secret
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS] + "..."
    return Problem(kind, message)


def command_problems(argv: Sequence[str], what: str) -> list[Problem]:
    """not_executable when argv's program is not an executable file (or not on PATH)."""
    program = argv[0]
    if os.sep in program:
        if not os.path.isfile(program):
            return [Problem(NOT_EXECUTABLE, f"{what}: {program} does not exist")]
        if not os.access(program, os.X_OK):
            return [Problem(NOT_EXECUTABLE, f"{what}: {program} is not executable")]
        return []
    if shutil.which(program) is None:
        return [Problem(NOT_EXECUTABLE, f"{what}: {program!r} is not found on PATH")]
    return []


def writable_problems(action: str, path: Path, create_parents: bool = False) -> list[Problem]:
    """not_writable when a failover could not replace the file at path."""
    reason = _files.unwritable_reason(path, create_parents)
    if reason is None:
        return []
    return [Problem(NOT_WRITABLE, f"{action}: cannot write {path}: {reason}")]
