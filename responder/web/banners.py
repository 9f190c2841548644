"""The banners of states that need someone, each naming the exact command to run.

Pure: the status and plan documents in; banners out, most urgent first. Each banner
says which operator forms go with it (web/forms.py), so an operator gets the buttons
where the words are, and a viewer the same words without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Json = Any
Describe = Callable[[str, Json], str]
# Runbook sections (docs/runbook.md headings, as GitHub anchors them).
SECTIONS = {
    "drift": "failoverdrift",
    "stalled": "failoverstalled",
    "awaiting_approval": "failoverawaitingapproval",
    "frozen": "failoverblocked",
    "blocked": "failoverblocked",
    "plan_not_ready": "failoverplannotready",
}


@dataclass(frozen=True)
class Banner:
    """One state that needs someone: what it is, what to type, which forms go with it."""

    kind: str  # a key of SECTIONS
    title: str
    detail: str
    commands: tuple[str, ...]
    forms: tuple[str, ...] = ()  # operations of web/forms.py
    transition_id: str | None = None
    action: str | None = None  # the step a skip would name
    lines: tuple[str, ...] = field(default=())
    line_keys: tuple[str, ...] = ()  # what each line is about (drift: the action), for tools
    until: str | None = None  # when the state ends by itself (an approval's deadline)

    @property
    def section(self) -> str:
        return SECTIONS[self.kind]


def _approval(t: Json) -> Banner | None:
    ap = t.get("approval") or {}
    if ap.get("state") != "waiting" or t.get("result") != "in_progress":
        return None
    detail = f"{t['kind']} {t['from_region']} → {t['to_region']} waits for a person"
    if ap.get("requested_by"):
        detail += f"; requested by {ap['requested_by']}: another operator's token must approve"
    if ap.get("alerts_resolved_at"):
        detail += "; its alerts have resolved: it does not cancel itself"
    return Banner(
        "awaiting_approval",
        "Awaiting approval",
        detail + f"; when the wait ends: {ap.get('on_timeout')}.",
        (f"ddb-responder approve {t['id']}", f"ddb-responder decline {t['id']} --reason ..."),
        ("approve", "decline", "abort"),
        transition_id=t["id"],
        until=ap.get("deadline_at"),
    )


def _stalled(t: Json, phase: str) -> Banner | None:
    a = t.get("attempts")
    if t.get("result") != "in_progress" or not (phase == "stalled" or (a and a.get("halted"))):
        return None
    action = a["action"] if a else None
    if a:
        back = " (rollback)" if a.get("rollback") else ""
        detail = (
            f"Stopped at {action}{back} after {a['count']} attempt(s): {a['error'].rstrip('.')}."
        )
    else:
        detail = "Past its deadline; it keeps retrying."
    commands = ["ddb-responder retry"]
    if action:
        commands.append(f"ddb-responder skip {action} --reason ...")
    commands.append("ddb-responder abort --reason ... [--rollback]")
    return Banner(
        "stalled",
        "Stalled",
        detail,
        tuple(commands),
        ("retry", "skip", "abort") if action else ("retry", "abort"),
        transition_id=t["id"],
        action=action,
    )


def _drift(plan: Json, describe: Describe) -> Banner | None:
    drift = plan.get("drift") or []
    if not drift:
        return None
    lines = tuple(
        f"{d.get('action')}: is {describe(str(d.get('action')), d.get('current'))}, "
        f"should be {describe(str(d.get('action')), d.get('desired'))}"
        for d in drift
    )
    names = ", ".join(str(d.get("action")) for d in drift)
    return Banner(
        "drift",
        "Drift",
        f"The live state of {names} differs from the active region's: changed by hand?",
        ("ddb-responder repair --reason ...",),
        ("repair",),
        lines=lines,
        line_keys=tuple(str(d.get("action")) for d in drift),
    )


def _plan(plan: Json, active: str) -> Banner | None:
    if plan.get("evaluated_at") is None:
        return None
    bad = [r for r, p in (plan.get("regions") or {}).items() if r != active and not p.get("ready")]
    if not bad:
        return None
    return Banner(
        "plan_not_ready",
        "Plan not ready",
        f"A move to {', '.join(bad)} would fail now: fix what the plan names before it is needed.",
        tuple(f"ddb-responder plan --to {r}" for r in bad),
    )


def banners(
    status: Json, plan: Json, describe: Describe, blocked_reason: str | None = None
) -> list[Banner]:
    """The banners for the status and plan documents, most urgent first.

    describe(action, value) puts one action's state in words (records.words).
    """
    out: list[Banner | None] = []
    phase = status.get("phase")
    t = status.get("last_transition") or {}
    if t:
        out += [_approval(t), _stalled(t, phase)]
    if status.get("frozen"):
        freeze = status.get("freeze") or {}
        out.append(
            Banner(
                "frozen",
                "Frozen",
                f"Automatic transitions are stopped: frozen by {freeze.get('by')}"
                f" at {freeze.get('at')}: {freeze.get('reason') or '-'}.",
                ("ddb-responder unfreeze --reason ...",),
                ("unfreeze",),
            )
        )
    elif phase == "blocked":
        region = t.get("to_region") if t else None
        out.append(
            Banner(
                "blocked",
                "Blocked",
                f"{blocked_reason or 'The last transition failed or was blocked'}.",
                (
                    "ddb-responder plan",
                    f"ddb-responder failover --to {region or 'REGION'} --reason ...",
                ),
            )
        )
    out += [_drift(plan, describe), _plan(plan, status.get("active_region", ""))]
    return [b for b in out if b is not None]
