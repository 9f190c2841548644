"""Text renderings of the API's answers for ddb-responder: a few human lines each."""

from __future__ import annotations

from typing import Any

Json = Any


def transition_line(t: Json) -> str:
    """One transition: id, kind, regions, result, start."""
    line = (
        f"{t['id']} {t['kind']} {t['from_region']} -> {t['to_region']} {t['result']}"
        f" (started {t['started_at']}"
        + (f", finished {t['finished_at']}" if t.get("finished_at") else "")
        + ")"
    )
    return line + ("  (dry run)" if t.get("dry_run") else "")


def trouble_lines(t: Json) -> list[str]:
    """What a transition in progress waits on: the failing step, the deadline, operators."""
    lines: list[str] = []
    attempts = t.get("attempts")
    if attempts and t.get("result") == "in_progress":
        where = f"{attempts['action']}" + (" (rollback)" if attempts.get("rollback") else "")
        if attempts.get("halted"):
            lines.append(
                f"  stopped at {where} after {attempts['count']} attempt(s): {attempts['error']}"
            )
            lines.append(
                f"  next: fix the cause, then `ddb-responder retry`; or "
                f"`skip {attempts['action']} --reason ...`; or `abort --reason ... [--rollback]`"
            )
        else:
            lines.append(
                f"  retrying {where}: {attempts['count']} failed attempt(s) since "
                f"{attempts['first_at']}, next at {attempts['retry_at']}: {attempts['error']}"
            )
    if t.get("deadline_at") and t.get("result") == "in_progress":
        lines.append(f"  deadline: {t['deadline_at']} (stalled and paging after it)")
    for op in t.get("operations") or ():
        what = op["op"] + (f" {op['action']}" if op.get("action") and op["op"] == "skip" else "")
        what += " with rollback" if op.get("rollback") else ""
        lines.append(f"  {op['at']} {what} by {op['by']}: {op['reason'] or '-'}")
    return lines


def step_lines(t: Json) -> list[str]:
    """One line per journaled step."""
    out = []
    for s in t.get("steps", ()):
        back = " (rollback)" if s.get("rollback") else ""
        error = f": {s['error']}" if s.get("error") else ""
        out.append(f"  {s['action']}{back}: {s['result']}{error}")
    return out


def status(status: Json) -> str:
    """The status as a few human lines."""
    lines = [
        f"active region:  {status.get('active_region')}",
        f"desired region: {status.get('desired_region')}",
        f"phase:          {status.get('phase')}",
    ]
    freeze = status.get("freeze") or {}
    frozen = f"yes, by {freeze.get('by')}: {freeze.get('reason')}" if status.get("frozen") else "no"
    lines.append(f"frozen:         {frozen}")
    if status.get("dry_run"):
        lines.append("dry run:        yes")
    last = status.get("last_transition")
    if last:
        lines.append(f"last transition: {transition_line(last)}")
        lines.extend(step_lines(last))
        lines.extend(trouble_lines(last))
    for name, result in sorted((status.get("actions") or {}).items()):
        region = result.get("region") or "unknown"
        error = f": {result['error']}" if result.get("error") else ""
        lines.append(
            f"action {name}: {result.get('result')} at {result.get('at')}, in {region}{error}"
        )
    return "\n".join(lines)


def history(history: Json) -> str:
    """Transitions then decisions, newest first, one line each."""
    lines = ["TRANSITIONS"]
    for t in history.get("transitions", ()):
        lines.append(
            f"{t['started_at']}  {t['id']}  {t['kind']:8} {t['from_region']} -> {t['to_region']}"
            f"  {t['result']}" + ("  (dry run)" if t.get("dry_run") else "")
        )
        lines.extend("  " + line for line in step_lines(t))
        lines.extend("  " + line for line in trouble_lines(t))
    lines.append("DECISIONS")
    for d in history.get("decisions", ()):
        lines.append(f"{d['at']}  {d['kind']:9} {d['reason']}{repeats(d)}")
    return "\n".join(lines)


def repeats(decision: Json) -> str:
    """How often a decision's notification came, when more than once."""
    count = decision.get("count", 1)
    return f"  (repeated {count} times, last at {decision['last_at']})" if count > 1 else ""
