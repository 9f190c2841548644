"""`ddb-responder audit verify|export`: the audit chain, read from the store the config names.

They read the store directly (like init-state), not through a responder's API: a
responder cannot vouch for its own store, and an auditor may run them with read-only
credentials. `verify --file` checks an export on its own, without any store.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from ddb_failover.config import Config, ConfigError
from responder.cli.remote import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from responder.model.alerts import PayloadError, format_time, parse_time
from responder.records.audit import Verdict, parse_head, verify, walk
from responder.records.sealing import Seals, key_problems
from responder.state.backends import open_store
from responder.state.chain import Event, Head, canonical
from responder.state.keys import AuditKeys
from responder.state.store import StoreError

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """RFC 3339 (2024-05-01T00:00:00Z) or an age (90m, 24h, 7d) as Unix seconds."""
    span = _SPAN.match(text)
    if span:
        return now - float(span.group(1)) * _UNIT[span.group(2)]
    try:
        return parse_time(text, "--since").timestamp()
    except PayloadError:
        raise CliError(
            f"--since {text!r}: not an RFC 3339 time or an age like 24h or 7d", EXIT_USAGE
        ) from None


def add_commands(
    audit: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None] | None
) -> None:
    """audit verify and audit export, under the audit command."""
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    check = commands.add_parser(
        "verify", help="walk the audit chain; name the first record edited, inserted or removed"
    )
    check.add_argument(
        "--expect",
        metavar="SEQ:HASH",
        help="a head printed by an earlier verify: it must still be in the chain",
    )
    check.add_argument(
        "--retain-days",
        type=float,
        metavar="DAYS",
        help="every prune must have kept this much history (default: the config's"
        " responder.history.retain_days)",
    )
    check.add_argument(
        "--file",
        type=Path,
        help="check an `audit export` file's own chain instead of the store (needs the key:"
        " --config)",
    )
    export = commands.add_parser("export", help="write the audit events as JSON lines")
    export.add_argument(
        "--since", required=True, metavar="TIME", help="RFC 3339 time, or an age (24h, 7d)"
    )
    export.add_argument("--output", type=Path, help="write to this file (default: stdout)")
    if common is not None:
        for sub in (check, export):
            common(sub)


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Run audit verify or audit export."""
    if config is None:
        needs = "the audit key" if getattr(args, "file", None) else "the state store"
        raise CliError(f"audit reads {needs}: pass --config (or set the env)", EXIT_USAGE)
    try:
        keys = AuditKeys.from_config(config.responder.audit)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.audit_command == "verify" and args.file is not None:
        return _verify_file(args.file, args.json, keys)
    try:
        store = open_store(config)
        if args.audit_command == "verify":
            expect = _expected(args.expect)
            retain = args.retain_days or config.responder.history.retain_days
            return _report(verify(store.audit_log(), keys, expect, retain), args.json)
        since = parse_since(args.since, time.time())
        events = store.audit_events(since)
        if args.output is None:
            count = _write(events, sys.stdout)
        else:
            with args.output.open("w", encoding="utf-8") as out:
                count = _write(events, out)
        where = args.output or "stdout"
        print(
            f"exported {count} audit event(s) since {format_time(since)} to {where}",
            file=sys.stderr,
        )
        return EXIT_OK
    except StoreError as exc:
        raise CliError(f"audit: {exc}") from None


def _expected(text: str | None) -> Head | None:
    if text is None:
        return None
    try:
        return parse_head(text)
    except ValueError as exc:
        raise CliError(f"--expect: {exc}", EXIT_USAGE) from None


def _write(events: Iterable[Event], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(canonical(event.to_json()).decode("utf-8") + "\n")
        count += 1
    return count


def _report(verdict: Verdict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2))
        return EXIT_OK if verdict.ok else EXIT_FAILED
    head = f"{verdict.head.seq}:{verdict.head.hash}"
    anchor = verdict.anchor
    if verdict.ok:
        print(f"audit chain OK: {verdict.events} event(s), {verdict.records} record(s) checked")
    else:
        print(f"audit chain BROKEN: {verdict.problems[0]}")
        print(f"all problems ({len(verdict.problems)}), in chain order:")
        for problem in verdict.problems:
            print(f"  {problem}")
    print(f"head:   {head}")
    print("        (keep it elsewhere; `audit verify --expect` it later to prove the past kept)")
    began = "an empty store" if anchor.fresh else "a store with earlier history"
    print(f"began:  {format_time(anchor.genesis_at)}, on {began}")
    if anchor.pruned_before is not None:
        print(
            f"pruned: history before {format_time(anchor.pruned_before)}; "
            f"the chain starts after #{anchor.seq} ({anchor.hash})"
        )
    for note in verdict.notes:
        print(f"note:   {note}")
    return EXIT_OK if verdict.ok else EXIT_FAILED


def _verify_file(path: Path, as_json: bool, keys: AuditKeys) -> int:
    """An export checks with the key alone: each event's seal, each following the previous."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        events = [Event.from_json(json.loads(line)) for line in lines if line.strip()]
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"--file {path}: {exc}", EXIT_USAGE) from None
    if not events:
        raise CliError(f"--file {path}: no events", EXIT_USAGE)
    problems = walk(events, Head(events[0].seq - 1, events[0].prev), Seals(keys))
    problems += key_problems(events)[0]
    last = events[-1]
    if as_json:
        body = {"ok": not problems, "problems": [p.to_json() for p in problems]}
        print(json.dumps({**body, "head": {"seq": last.seq, "hash": last.hash}}, indent=2))
    elif problems:
        print(f"export BROKEN: {problems[0]}")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"export OK: events #{events[0].seq}..#{last.seq}; head {last.seq}:{last.hash}")
    return EXIT_FAILED if problems else EXIT_OK
