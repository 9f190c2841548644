"""`python -m sandbox up|chaos|demo`: the local stack on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ddb_failover import logs
from sandbox.control import CHAOS_OPS, send_chaos


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The sandbox's command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the stack in the foreground until SIGINT/SIGTERM")
    up.add_argument("--dir", required=True, type=Path, help="where config, secrets, logs go")
    up.add_argument("--only", type=_csv, help="start only these components (and their needs)")
    up.add_argument("--regions", type=_csv, help="region names, primary first")
    up.add_argument("--tables", type=_csv, help="table names")
    up.add_argument("--replication-delay-ms", type=int, default=500)
    up.add_argument(
        "--consistency",
        choices=("eventual", "strong"),
        default="eventual",
        help="the tables' multi-Region consistency; strong needs three members",
    )
    up.add_argument(
        "--witness", help="with --consistency strong and two regions: the witness's region"
    )
    up.add_argument(
        "--describe-interval-seconds",
        type=float,
        help="exporter.describe_interval_seconds (default 10 in the sandbox)",
    )
    up.add_argument(
        "--profile",
        choices=("shipped", "fast"),
        help="Prometheus files and probe timings of this profile (docs/alerting.md); "
        "default: the shipped Prometheus files with 2 s probes",
    )
    up.add_argument(
        "--extra-rules",
        type=Path,
        action="append",
        help="another Prometheus rule file to load beside the profile's (repeatable)",
    )
    up.add_argument("--probe-interval-seconds", type=float, help="default: the profile's, or 2")
    up.add_argument("--probe-timeout-seconds", type=float, help="default: the profile's, or 1")
    up.add_argument("--failback-window", default="1m", help="DynamoDBFailbackReady window")
    up.add_argument("--min-dwell-seconds", type=float, default=20.0)
    up.add_argument(
        "--transition-deadline-seconds",
        type=float,
        default=900.0,
        help="past it a transition in progress shows as stalled and pages",
    )
    up.add_argument("--alertmanager-replicas", type=int, default=1, choices=(1, 2, 3))
    up.add_argument(
        "--approval",
        choices=("none", "failover", "all"),
        default="none",
        help="responder.policy.approval: which transitions wait for a person",
    )
    up.add_argument(
        "--plan-interval-seconds", type=float, default=5.0, help="responder.plan.interval_seconds"
    )
    up.add_argument(
        "--action-timeout-seconds",
        type=float,
        help="every generated action's timeout_seconds (default: the config's, 60)",
    )
    up.add_argument(
        "--do-timeout-seconds",
        type=float,
        help="responder.digitalocean.timeout_seconds (default 5): above an action's timeout, "
        "a late DigitalOcean answer outlives the attempt that asked",
    )
    up.add_argument(
        "--max-transitions-per-hour",
        type=int,
        default=10,
        help="responder.policy.max_transitions_per_hour",
    )
    up.add_argument(
        "--drain-timeout-seconds",
        type=float,
        default=30.0,
        help="responder.switchover.drain_timeout_seconds",
    )
    up.add_argument(
        "--extra-actions",
        type=Path,
        help="a YAML list of responder actions to append to the generated ones",
    )

    chaos = sub.add_parser(
        "chaos",
        help="break or mend one region (its DynamoDB, or with site-down|site-up its WordPress) "
        "of a running stack, or restart the responder",
    )
    chaos.add_argument("--dir", required=True, type=Path)
    chaos.add_argument("region", help="a region's name, or `responder` (op restart)")
    chaos.add_argument("op", choices=CHAOS_OPS)
    chaos.add_argument("status", nargs="?", help="with replica-status: e.g. REGION_DISABLED")
    chaos.add_argument(
        "--delay-ms", type=int, help="latency to add (slow), or replication delay into the region"
    )

    sub.add_parser("demo", help="start everything and show an outage, failover and failback")
    return parser


def up(args: argparse.Namespace) -> int:
    """Start the stack and wait for a signal."""
    import sandbox.components.catalog  # noqa: F401  (registers the components)
    from sandbox import control
    from sandbox.components import responder, sites
    from sandbox.components.regions import chaos, check_options
    from sandbox.stack import Stack, plan, start

    try:
        order = plan(args.only)
        check_options(vars(args))
    except ValueError as exc:
        print(f"sandbox up: {exc}", file=sys.stderr)
        return 2
    options = {k: v for k, v in vars(args).items() if v is not None}
    stack = Stack(args.dir, options=options)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    server, url = control.serve(
        lambda request: (
            responder.restart(stack, request)
            if request.get("region") == "responder"
            else sites.chaos(stack, request)
            if request.get("op") in sites.SITE_OPS
            else chaos(stack, request)
        )
    )
    stack.on_close(server.shutdown)
    stack.published["supervisor"] = {"pid": os.getpid(), "url": url}
    try:
        start(stack, order)
        stack.save()
        print(f"sandbox up: {', '.join(stack.components)} running; state in {stack.state_path}")
        sys.stdout.flush()
        stopping.wait()
    except Exception as exc:
        print(f"sandbox up: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.close()
    return 0


def chaos_command(args: argparse.Namespace) -> int:
    """Break or mend one region."""
    request: dict[str, Any] = {"region": args.region, "op": args.op}
    if args.op in ("slow", "replication-delay"):
        if args.delay_ms is None:
            print(f"sandbox chaos: {args.op} needs --delay-ms N", file=sys.stderr)
            return 2
        request["delay_ms"] = args.delay_ms
    if args.op == "replica-status":
        if args.status is None:
            print("sandbox chaos: replica-status needs a STATUS", file=sys.stderr)
            return 2
        request["status"] = args.status
    try:
        result = send_chaos(args.dir, request)
    except RuntimeError as exc:
        print(f"sandbox chaos: {exc}", file=sys.stderr)
        return 1
    print(f"{result['region']}: {result['op']} done (pid {result['pid']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch a sandbox command."""
    logs.setup(os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return up(args)
    if args.command == "chaos":
        return chaos_command(args)
    from sandbox import demo

    return demo.main()
