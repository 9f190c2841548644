"""ddb-responder: serve the responder, or talk to a running one over its HTTP API (like amtool)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ddb_failover.config import CONFIG_ENV, Config, ConfigError, load
from ddb_failover.secret_files import exposed_secrets
from responder.cli import audit_cli, remote
from responder.cli.remote import (
    DEFAULT_URL,
    EXIT_FAILED,
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    URL_ENV,
    CliError,
)
from responder.secrets import Secrets
from responder.state.keys import AuditKeys

GUNICORN_CONF = Path(__file__).parents[1] / "gunicorn_conf.py"
WAIT_SECONDS = 120.0
# A switchover may wait for a person's approval first.
SWITCHOVER_WAIT_SECONDS = 900.0
# A practice run: two switchovers and the hold (the config's 1800 s by default).
PRACTICE_WAIT_SECONDS = 3600.0

COMMON_DEFAULTS = {
    "config": None,
    "url": None,
    "token_file": None,
    "json": False,
    "cacert": None,
    "cert": None,
    "key": None,
}


def _add_common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, on parser; only the top level sets their defaults.

    Each parser gets its own option objects: argparse parents share them, and a default
    set on one parser then overwrites, in a subcommand, the value given before it.
    """

    def default(name: str) -> object:
        return COMMON_DEFAULTS[name] if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config", default=default("config"), help=f"config file (default: ${CONFIG_ENV})"
    )
    parser.add_argument(
        "--url",
        default=default("url"),
        help=f"responder URL (default: ${URL_ENV}, config listen, or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=default("token_file"),
        help="bearer token file (default: the config's responder.webhook_token)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default("json"), help="print the raw JSON answer"
    )
    parser.add_argument(
        "--cacert",
        type=Path,
        default=default("cacert"),
        help="CA bundle to verify an https responder (default: the system's)",
    )
    parser.add_argument(
        "--cert", type=Path, default=default("cert"), help="client certificate, for mTLS"
    )
    parser.add_argument("--key", type=Path, default=default("key"), help="its private key")


def build_parser() -> argparse.ArgumentParser:
    """The command line; the common options work before or after the command."""
    parser = argparse.ArgumentParser(prog="ddb-responder", description=__doc__)
    _add_common(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _add_common(sub, defaults=False)
        return sub

    serve = command("serve", "run the responder under gunicorn")
    serve.add_argument("--listen", help="HOST:PORT, overriding responder.listen")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes")
    command("status", "show the responder's state")
    history = command("history", "show transitions and decisions")
    history.add_argument("--limit", type=int, default=20, help="entries of each kind (20)")
    failover = command("failover", "move traffic to a region")
    failover.add_argument("--to", required=True, metavar="REGION", help="the target region")
    failover.add_argument("--reason", default="", help="why, for the history")
    failover.add_argument(
        "--force",
        action="store_true",
        help="skip dwell and the hourly cap (readiness still applies)",
    )
    switchover = command(
        "switchover", "a planned move: fence writes, drain replication, move, unfence"
    )
    switchover.add_argument("--to", required=True, metavar="REGION", help="the target region")
    switchover.add_argument("--reason", required=True, help="why, for the history")
    forced = "move even when the drain times out (the report gives the data at risk)"
    switchover.add_argument("--force", action="store_true", help=forced)
    waits = f"wait for the end ({SWITCHOVER_WAIT_SECONDS:g} s unless given); exit 0 if completed"
    switchover.add_argument(
        "--wait", type=float, nargs="?", const=SWITCHOVER_WAIT_SECONDS, default=0.0, help=waits
    )
    practice = command("practice", "practice runs: a switchover there, a hold, and back")
    practice.add_argument("what", choices=("run", "status"), help="start one, or show them")
    practice.add_argument("--now", action="store_true", help="start outside the schedule too")
    practice.add_argument("--hold", type=float, metavar="SECONDS", help="the hold (config's)")
    practice.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=PRACTICE_WAIT_SECONDS,
        default=0.0,
        help=f"wait for the end ({PRACTICE_WAIT_SECONDS:g} s unless given); exit 0 if SUCCEEDED",
    )
    freeze = command("freeze", "stop automatic transitions, and any at its next step")
    freeze.add_argument("--reason", default="", help="why, for the status")
    unfreeze = command("unfreeze", "resume automatic transitions and a frozen one")
    unfreeze.add_argument("--reason", default="", help="why")
    retry = command("retry", "run the failing step of the transition in progress again")
    retry.add_argument("--reason", default="", help="why, for the history")
    skip = command("skip", "record the failing step as skipped and go on")
    skip.add_argument("action", metavar="ACTION", help="the failing action's name")
    skip.add_argument("--reason", required=True, help="why, for the history")
    abort = command("abort", "stop the transition in progress")
    abort.add_argument("--reason", required=True, help="why, for the history")
    abort.add_argument(
        "--rollback",
        action="store_true",
        help="first drive the steps already applied back to the source region",
    )
    abort.add_argument(
        "--wait",
        type=float,
        default=WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the transition to end ({WAIT_SECONDS:g}; 0: do not wait)",
    )
    repair = command(
        "repair", "put drifted actions back in the active region's state (a person decides)"
    )
    repair.add_argument("--reason", required=True, help="why, for the history")
    repair.add_argument("--action", metavar="NAME", help="only this action (default: all)")
    approve = command("approve", "say yes to the transition waiting for approval")
    approve.add_argument("id", metavar="ID", help="the transition's id (ddb-responder status)")
    approve.add_argument("--reason", default="", help="why, for the history")
    decline = command("decline", "say no to the transition waiting for approval")
    decline.add_argument("id", metavar="ID", help="the transition's id")
    decline.add_argument("--reason", required=True, help="why, for the history")
    plan = command(
        "plan",
        "show what a move to each other region would change and whether it is ready "
        f"(exit {EXIT_OK}: ready; {EXIT_NOT_READY}: not ready; {EXIT_UNKNOWN}: not evaluated "
        f"yet or stale; {EXIT_FAILED}: responder unreachable; {EXIT_USAGE}: usage)",
    )
    plan.add_argument("--to", metavar="REGION", help="only the move to this region")
    command("check-config", "validate the config and exit")
    command("init-state", "create the DynamoDB control table (idempotent)")
    report = command("report", "a transition's report: timeline, durations, evidence, links")
    report.add_argument("transition_id", metavar="ID", help="the transition (from history)")
    report.add_argument("--format", choices=("md", "json"), default="md", help="md (default)")
    audit = command("audit", "check or export the state store's audit chain (reads --config)")
    audit_cli.add_commands(audit, lambda sub: _add_common(sub, defaults=False))
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, parsed."""
    return build_parser().parse_args(argv)


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    if args.config is None and not os.environ.get(CONFIG_ENV) and not required:
        return None
    try:
        return load(args.config)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _serving_config(args: argparse.Namespace) -> Config:
    """The config, with every secret serving needs readable; CliError naming the problem."""
    config = _config(args, required=True)
    assert config is not None
    try:
        Secrets.from_config(config)
        AuditKeys.from_config(config.responder.audit)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    for warning in exposed_secrets(config):
        print(f"ddb-responder: warning: {warning}", file=sys.stderr)
    return config


def _table(config: Config, table: str) -> str:
    """A table's name, with its consistency and witness when it is strongly consistent."""
    spec = config.consistency_of(table)
    if spec.consistency == "eventual":
        return table
    witness = f", witness {spec.witness}" if spec.witness else ""
    return f"{table} (strong: RPO 0{witness})"


def check_config(args: argparse.Namespace) -> int:
    """Validate the config and the secrets the responder needs; print a summary."""
    config = _serving_config(args)
    responder = config.responder
    print(f"config OK: {args.config or os.environ.get(CONFIG_ENV)}")
    print(f"tables:  {', '.join(_table(config, t) for t in config.tables)}")
    print(f"regions: {', '.join(config.region_names)} (primary {config.primary})")
    print(f"listen:  {responder.listen}")
    print(f"state:   {responder.state.backend}")
    keys = AuditKeys.from_config(responder.audit)
    previous = f" (+{len(keys.previous)} previous)" if keys.previous else ""
    print(f"audit:   key {keys.current.id}{previous}")
    policy = responder.policy
    print(
        f"policy:  failback={policy.failback} min_dwell={policy.min_dwell_seconds:g}s "
        f"max_per_hour={policy.max_transitions_per_hour} rpo={policy.rpo_seconds:g}s "
        f"dry_run={str(policy.dry_run).lower()}"
    )
    print(f"actions: {len(responder.actions)}")
    for action in responder.actions:
        print(f"  {action.name} ({action.type})")
    tokens = ", ".join(f"{t.name} ({t.role})" for t in responder.auth.tokens)
    print(f"tokens:  alertmanager (webhook_token){', ' + tokens if tokens else ''}")
    print(f"public:  {', '.join(responder.auth.public) or 'nothing'}")
    print(f"tls:     {_tls_summary(config)}")
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    return EXIT_OK


def config_warnings(config: Config) -> list[str]:
    """What is valid but leaves a failover blind: each region without a site to check."""
    return [
        f"regions.{index}.site: not set: the responder cannot tell whether WordPress answers "
        f"in {region.name}, and would move traffic there on DynamoDB's readiness alone"
        for index, region in enumerate(config.regions)
        if region.site is None
    ]


def _tls_summary(config: Config) -> str:
    tls = config.responder.tls
    if tls is None:
        return "off (plain http: put it behind a TLS proxy, docs/security.md)"
    return "on, client certificates required" if tls.client_ca_file else "on"


def init_state(args: argparse.Namespace) -> int:
    """Create the DynamoDB control table the config names; never done implicitly."""
    from responder.state.dynamodb.create_table import create_control_table
    from responder.state.store import StoreError

    config = _config(args, required=True)
    assert config is not None
    try:
        AuditKeys.from_config(config.responder.audit)  # the genesis is sealed with it
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        created = create_control_table(config)
    except StoreError as exc:
        raise CliError(f"init-state: {exc}") from None
    state = config.responder.state
    print(f"control table {getattr(state, 'table', '?')}: {'created' if created else 'exists'}")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    """Validate, then exec gunicorn with the responder's settings; does not return."""
    _serving_config(args)  # fail here, with a clear message, not in every worker
    os.environ[CONFIG_ENV] = str(Path(args.config or os.environ[CONFIG_ENV]).resolve())
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    if args.listen:
        argv += ["--bind", args.listen]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return EXIT_FAILED  # not reached


def main(argv: list[str] | None = None) -> int:
    """Entry point of ddb-responder and python -m responder."""
    args = parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "check-config":
            return check_config(args)
        if args.command == "init-state":
            return init_state(args)
        if args.command == "audit":
            return audit_cli.run(args, _config(args, required=False))
        return remote.run(args, _config(args, required=False))
    except CliError as exc:
        print(f"ddb-responder: {exc}", file=sys.stderr)
        return exc.code
