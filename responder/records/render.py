"""Text renderings of the API's answers for ddb-responder: a few human lines each."""

from __future__ import annotations

import json
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
    in_flight = t.get("in_flight")
    if in_flight and t.get("result") == "in_progress":
        lines.append(
            f"  in flight: {in_flight['action']} attempt {in_flight['attempt']} since "
            f"{in_flight['started_at']} (by {in_flight['holder']}): skip and abort wait for it"
        )
    if t.get("deadline_at") and t.get("result") == "in_progress":
        lines.append(f"  deadline: {t['deadline_at']} (stalled and paging after it)")
    for op in t.get("operations") or ():
        what = op["op"] + (f" {op['action']}" if op.get("action") and op["op"] == "skip" else "")
        what += " with rollback" if op.get("rollback") else ""
        lines.append(f"  {op['at']} {what} by {op['by']}: {op['reason'] or '-'}")
    return lines


def approval_lines(t: Json) -> list[str]:
    """A transition's approval: what waits for whom, and what it would change."""
    approval = t.get("approval")
    if not approval:
        return []
    if approval["state"] != "waiting":
        return [
            f"  approval: {approval['state']} by {approval['decided_by']} at "
            f"{approval['decided_at']}: {approval['reason'] or '-'}"
        ]
    lines = [
        f"  waiting for approval until {approval['deadline_at']} (then "
        f"{approval['on_timeout']}): ddb-responder approve {t['id']}   |   "
        f"ddb-responder decline {t['id']} --reason ..."
    ]
    if approval.get("requested_by"):
        lines.append(f"  requested by {approval['requested_by']}: another token must approve")
    if approval.get("alerts_resolved_at"):
        lines.append(
            f"  its alerts resolved at {approval['alerts_resolved_at']}: still yours to decide"
        )
    for item in approval.get("preview") or ():
        change = "would change" if item.get("would_change") else "unchanged"
        problems = "; ".join(p["message"] for p in item.get("problems") or ())
        lines.append(
            f"    {item['action']}: {json.dumps(item.get('current'))} -> "
            f"{json.dumps(item.get('desired'))} ({change})" + (f": {problems}" if problems else "")
        )
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
        lines.extend(approval_lines(last))
        lines.extend(step_lines(last))
        lines.extend(trouble_lines(last))
    lines.extend(drift_lines(status.get("drift")))
    for name, result in sorted((status.get("actions") or {}).items()):
        region = result.get("region") or "unknown"
        error = f": {result['error']}" if result.get("error") else ""
        lines.append(
            f"action {name}: {result.get('result')} at {result.get('at')}, in {region}{error}"
        )
    return "\n".join(lines)


def drift_lines(drift: Json) -> list[str]:
    """What differs from the active region's desired state, and what to do about it."""
    if not drift:
        return ["drift:          not known now (a transition runs, or no fresh plan)"]
    found = drift.get("actions") or []
    unknown = drift.get("unknown") or []
    lines = [f"drift:          {len(found) or 'none'} (checked {drift.get('evaluated_at')})"]
    for d in found:
        lines.append(
            f"  DRIFT {d.get('action')}: is {json.dumps(d.get('current'))}, "
            f"the active region wants {json.dumps(d.get('desired'))}"
        )
    if unknown:
        lines.append(f"  not readable: {', '.join(unknown)}")
    if found:
        lines.append("  to put it back: ddb-responder repair --reason WHY [--action NAME]")
    return lines


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


def _compact(value: Json) -> str:
    return json.dumps(value, sort_keys=True)


def _change_lines(entry: Json) -> list[str]:
    """What would change, key by key for objects (like `terraform plan`), else whole."""
    current, desired = entry.get("current"), entry.get("desired")
    if entry.get("action") == "readiness":
        risk = (current or {}).get("data_at_risk_seconds")
        canary = "canary readable" if (current or {}).get("canary_ok") else "canary NOT readable"
        at_risk = "unknown" if risk is None else f"{risk:.1f} s"
        limit = (desired or {}).get("data_at_risk_seconds_at_most")
        rpo = f" (RPO {limit:g} s)" if isinstance(limit, int | float) else ""
        if (current or {}).get("rpo"):  # a strongly consistent region: it must take a write
            written = "takes writes" if current.get("write_ok") else "does NOT take writes"
            return [f"{canary}, {written}, {current['rpo']}"]
        return [f"{canary}, data at risk {at_risk}{rpo}"]
    if not entry.get("would_change"):
        return []
    if isinstance(current, dict) and isinstance(desired, dict):
        keys = sorted(set(current) | set(desired))
        return [
            f"{key}: {_compact(current.get(key))} -> {_compact(desired.get(key))}"
            for key in keys
            if current.get(key) != desired.get(key)
        ]
    return [f"{_compact(current)} -> {_compact(desired)}"]


def plan_action(entry: Json) -> list[str]:
    """One action of a region's plan: a header line, the changes, then each problem."""
    change = {True: "would change", False: "no change", None: "current state unknown"}
    symbol = {True: "~", False: "=", None: "?"}[entry.get("would_change")]
    verdict = "ready" if entry.get("ready") else "NOT READY"
    lines = [
        f"  {symbol} {entry['action']} ({entry.get('type', '?')}): {verdict}, "
        f"{change[entry.get('would_change')]}"
    ]
    lines.extend(f"      {line}" for line in _change_lines(entry))
    for problem in entry.get("problems", ()):
        label = "warning" if problem.get("severity") == "warning" else "problem"
        lines.append(f"      {label} [{problem['kind']}]: {problem['message']}")
    return lines


def plan(document: Json) -> str:
    """The plan like `terraform plan`: per region, each action's change and readiness."""
    if document.get("evaluated_at") is None:
        return "plan: not evaluated yet (the responder evaluates it at start, then every interval)"
    lines = [
        f"plan evaluated {document['evaluated_at']} ({document.get('age_seconds')} s ago)"
        f" by {document.get('evaluator', '?')}; active region {document.get('active_region')}"
    ]
    if document.get("stale"):
        lines.append(
            f"STALE: expected every {document.get('interval_seconds')} s; the evaluator may be "
            "stuck or dead (see the responder's log)"
        )
    for region, planned in document.get("regions", {}).items():
        actions = planned.get("actions", ())
        problems = sum(
            1 for a in actions for p in a.get("problems", ()) if p.get("severity") != "warning"
        )
        changes = sum(1 for a in actions if a.get("would_change"))
        verdict = "READY" if planned.get("ready") else f"NOT READY ({problems} problem(s))"
        lines.append("")
        lines.append(
            f"{planned.get('kind', 'failover')} to {region}: {verdict}; "
            f"{changes} action(s) would change"
        )
        for entry in actions:
            lines.extend(plan_action(entry))
    for region, witness in ((document.get("consistency") or {}).get("witnesses") or {}).items():
        lines += ["", f"witness {region}: never a target ({witness.get('why')})"]
    return "\n".join(lines)


def repeats(decision: Json) -> str:
    """How often a decision's notification came, when more than once."""
    count = decision.get("count", 1)
    return f"  (repeated {count} times, last at {decision['last_at']})" if count > 1 else ""


def _seconds(value: Json) -> str:
    return "unknown" if value is None else f"{value:g}s"


def switchover(report: Json) -> str:
    """A switchover's end in a few lines: result, RPO, write unavailability, the drain."""
    t = report["transition"]
    planned = report.get("switchover") or {}
    lines = [
        transition_line(t),
        f"  rpo_seconds: {_seconds(report.get('rpo_seconds'))}"
        f"  write_unavailable_seconds: {_seconds(report.get('write_unavailable_seconds'))}"
        f"  drain_seconds: {_seconds(report.get('drain_seconds'))}",
    ]
    for key in ("fence_started_at", "drained_at", "moved_at", "unfenced_at"):
        if planned.get(key):
            lines.append(f"  {key.removesuffix('_at').replace('_', ' ')}: {planned[key]}")
    lines.extend(f"  note: {note}" for note in report.get("notes", []))
    return "\n".join(lines)
